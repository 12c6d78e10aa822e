"""
txinferno: Inferno OS's service registry, registry(4), for Twisted programs.

The names most programs need are here::

    from txinferno import RegistryManager, ServiceTask, Monitor, Lookup

The rest lives in the packages named after each side: L{txinferno.wire}
(the protocol's rules, no I/O), L{txinferno.client}, L{txinferno.server}
and the test kit L{txinferno.testing}.
"""

from txinferno.client.event import EventClientFactory, EventClientProtocol
from txinferno.client.find import FindClientFactory, FindClientProtocol
from txinferno.client.lookup import Lookup
from txinferno.client.manager import RegistryManager
from txinferno.client.monitor import Monitor
from txinferno.client.new import NewClientFactory, NewClientProtocol
from txinferno.client.observers import ConnectionStateObserver, MonitorObserver
from txinferno.client.service import ServiceTask
from txinferno.client.tcp import TCPRegistryConnection, connectionFromString
from txinferno.errors import (
    AnswerTooLarge,
    MalformedAnswer,
    OpenFileLimit,
    RegistrationLost,
    RegistrationRejected,
    RegistryError,
    RegistryTimeout,
    RegistryUnavailable,
    TxInfernoError,
)

__version__ = "0.1.0"

__all__ = [
    "RegistryManager",
    "ServiceTask",
    "Monitor",
    "Lookup",
    "ConnectionStateObserver",
    "MonitorObserver",
    "TCPRegistryConnection",
    "connectionFromString",
    "NewClientProtocol",
    "NewClientFactory",
    "FindClientProtocol",
    "FindClientFactory",
    "EventClientProtocol",
    "EventClientFactory",
    "TxInfernoError",
    "RegistryError",
    "RegistrationRejected",
    "RegistrationLost",
    "MalformedAnswer",
    "AnswerTooLarge",
    "RegistryUnavailable",
    "RegistryTimeout",
    "OpenFileLimit",
    "__version__",
]
