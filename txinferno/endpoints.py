"""
Twisted endpoints that use a registry, and their string parsers.

C{inferno:} is a client endpoint that dials a service found in the registry
by its attributes::

    clientFromString(reactor, r"inferno:registry=tcp\\:127.0.0.1:proto=ssh")

C{registered:} is a server endpoint that registers what it listens on, for
as long as it listens::

    serverFromString(reactor, r"registered:tcp\\:0:registry=tcp\\:127.0.0.1:name=web:proto=http")

In both, C{registry} is a registry description (see
L{txinferno.wire.description}; colons escaped with a backslash), by default
C{$TXINFERNO_REGISTRY} or C{tcp:127.0.0.1:6701}.  The keywords not listed
below are attributes: the query of C{inferno:}, the service's attributes for
C{registered:}.
"""

import random
import socket

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import (
    IListeningPort,
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from txinferno.wire.description import defaultRegistry
from txinferno.wire.dialaddress import dialAddressEndpoint, formatDialAddress
from txinferno.wire.rules import checkName, normaliseAttrs, queryLine

__all__ = [
    "InfernoClientEndpoint",
    "RegisteredServerEndpoint",
    "RegisteredPort",
    "InfernoClientParser",
    "RegisteredServerParser",
]

ADDRESS_ATTRIBUTE = "addr"
CHOICES = ("first", "random")


def serviceAddress(name, attrs):
    """
    The dial address of a service found in a registry: its C{addr}
    attribute if it has one, else its name (by Inferno's custom, services
    are often named by their address, such as C{tcp!host!22}).
    """
    return attrs.get(ADDRESS_ATTRIBUTE, name)


@implementer(IStreamClientEndpoint)
class InfernoClientEndpoint:
    """
    Connects to a service found in a registry by its attributes.

    Each connection looks the services up anew, then tries them in turn
    (in the registry's order, or shuffled) until one accepts.
    """

    _log = Logger()

    def __init__(self, reactor, connection, query, choose="first", timeout=30):
        """
        @param reactor: the reactor to connect with.
        @param connection: how to reach the registry.
        @type connection: L{txinferno.interfaces.IRegistryConnection}
        @param query: the attributes the service must have, a mapping or
            C{(attr, value)} pairs; C{*} matches any value.
        @param choose: C{first} or C{random}: the order in which the
            services found are tried.
        @param timeout: seconds each connection attempt may take.
        @raise ValueError: for an invalid query or choice.
        """
        if choose not in CHOICES:
            raise ValueError("choose must be one of %s, not %r" % (", ".join(CHOICES), choose))
        self._query = queryLine(query)[1]
        self._reactor = reactor
        self._connection = connection
        self._choose = choose
        self._timeout = timeout

    def __repr__(self):
        return "<InfernoClientEndpoint %s %r>" % (self._connection.description, self._query)

    def connect(self, protocolFactory):
        """
        Look the services up and connect to the first that accepts.

        @return: a L{Deferred} that fires with the connected protocol, or
            fails with L{ConnectError} when no service matches or none
            accepts (or with the registry's error when the lookup fails).
        """
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _connect(self, protocolFactory):
        services = await self._connection.find(self._query)
        candidates = list(services.items())
        if self._choose == "random":
            random.shuffle(candidates)
        failures = []
        for name, attrs in candidates:
            address = serviceAddress(name, attrs)
            try:
                endpoint = dialAddressEndpoint(self._reactor, address, self._timeout)
            except ValueError as e:
                self._log.warn("service {name}: {error}", name=name, error=str(e))
                failures.append("%s: %s" % (name, e))
                continue
            try:
                return await endpoint.connect(protocolFactory)
            except ConnectError as e:
                self._log.info("service {name} at {address} refused: {error}",
                               name=name, address=address, error=str(e))
                failures.append("%s at %s: %s" % (name, address, e))
        query = " ".join("%s=%s" % pair for pair in self._query) or "(everything)"
        if not failures:
            raise ConnectError(string="no service matching %s in registry %s"
                               % (query, self._connection.description))
        raise ConnectError(string="no service matching %s accepted: %s"
                           % (query, "; ".join(failures)))


@implementer(IListeningPort)
class RegisteredPort:
    """
    A listening port whose address is registered while it listens.

    @ivar service: the task keeping the registration.
    @type service: L{txinferno.client.service.ServiceTask}
    @ivar manager: the manager running it.
    @type manager: L{txinferno.client.manager.RegistryManager}
    """

    def __init__(self, port, manager, service):
        self._port = port
        self.manager = manager
        self.service = service

    def whenRegistered(self):
        """
        @return: a L{Deferred} that fires with the service task once the
            registry holds it (see L{txinferno.client.service.ServiceTask.whenRegistered}).
        """
        return self.service.whenRegistered()

    def startListening(self):
        """
        Listening starts when the endpoint's C{listen} does; nothing to do.
        """

    def stopListening(self):
        """
        Unregister the service, then stop listening.

        @return: a L{Deferred} that fires once both are done.
        """
        d = self.manager.stopService()
        d.addCallback(lambda _: self._port.stopListening())
        return d

    def getHost(self):
        """
        @return: the address of the listening port.
        """
        return self._port.getHost()


@implementer(IStreamServerEndpoint)
class RegisteredServerEndpoint:
    """
    Listens on another server endpoint and keeps the address it listens on
    registered, across registry restarts, until the port stops listening.

    The service's name is C{name} if given (its dial address then goes in
    its C{addr} attribute), else the dial address itself, C{tcp!HOST!PORT}.
    """

    def __init__(self, reactor, inner, connection, attrs=(), name=None, host=None):
        """
        @param inner: the endpoint to listen on.
        @type inner: L{IStreamServerEndpoint}
        @param connection: how to reach the registry.
        @type connection: L{txinferno.interfaces.IRegistryConnection}
        @param attrs: the service's attributes.
        @param name: the service's name, or L{None} for its dial address.
        @param host: the host in the dial address; by default the address
            listened on, or this machine's name when listening on all.
        @raise ValueError: for invalid attributes or name.
        """
        self._attrs = normaliseAttrs(attrs)
        if name is not None:
            checkName(name)
        self._reactor = reactor
        self._inner = inner
        self._connection = connection
        self._name = name
        self._host = host

    def _dialAddress(self, address):
        host = self._host
        if host is None:
            host = address.host
            if host in ("0.0.0.0", "::", ""):
                host = socket.getfqdn()
        return formatDialAddress(host, address.port)

    async def _listen(self, protocolFactory):
        from txinferno.client.manager import RegistryManager
        from txinferno.client.service import ServiceTask

        port = await self._inner.listen(protocolFactory)
        address = self._dialAddress(port.getHost())
        attrs = dict(self._attrs)
        if self._name is None:
            name = address
        else:
            name = self._name
            attrs[ADDRESS_ATTRIBUTE] = address
        try:
            service = ServiceTask(name, attrs)
        except ValueError:
            await port.stopListening()
            raise
        manager = RegistryManager(self._connection, clock=self._reactor)
        manager.attach(service)
        manager.startService()
        return RegisteredPort(port, manager, service)

    def listen(self, protocolFactory):
        """
        Listen, and register the service.

        @return: a L{Deferred} that fires with a L{RegisteredPort} once
            listening; the registration proceeds (and is kept) from then on,
            see L{RegisteredPort.whenRegistered}.
        """
        return Deferred.fromCoroutine(self._listen(protocolFactory))


def _split(kwargs, options):
    taken = {k: kwargs.pop(k) for k in options if k in kwargs}
    return taken, list(kwargs.items())


def _connection(reactor, registry):
    from txinferno.client.tcp import connectionFromString

    return connectionFromString(reactor, registry or defaultRegistry())


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class InfernoClientParser:
    """
    The parser of C{inferno:} client endpoint strings:
    C{inferno:[registry=DESC:][choose=first|random:][timeout=S:]ATTR=VALUE...}
    (positional C{ATTR:VALUE} pairs are accepted too).
    """

    prefix = "inferno"

    def parseStreamClient(self, reactor, *args, **kwargs):
        options, pairs = _split(kwargs, ("registry", "choose", "timeout"))
        if len(args) % 2:
            raise ValueError("inferno: positional arguments must be ATTR:VALUE pairs")
        pairs = list(zip(args[::2], args[1::2])) + pairs
        return InfernoClientEndpoint(
            reactor,
            _connection(reactor, options.get("registry")),
            pairs,
            choose=options.get("choose", "first"),
            timeout=float(options.get("timeout", 30)),
        )


@implementer(IPlugin, IStreamServerEndpointStringParser)
class RegisteredServerParser:
    """
    The parser of C{registered:} server endpoint strings:
    C{registered:INNER:[registry=DESC:][name=NAME:][host=HOST:]ATTR=VALUE...},
    where INNER is a server endpoint string with its colons escaped
    (C{tcp\\:0}).
    """

    prefix = "registered"

    def parseStreamServer(self, reactor, *args, **kwargs):
        if len(args) != 1:
            raise ValueError(
                "registered: needs exactly one inner endpoint, such as registered:tcp\\:0:...")
        options, pairs = _split(kwargs, ("registry", "name", "host"))
        return RegisteredServerEndpoint(
            reactor,
            serverFromString(reactor, args[0]),
            _connection(reactor, options.get("registry")),
            pairs,
            name=options.get("name"),
            host=options.get("host"),
        )
