"""
A test kit for programs that use a registry: an embedded registry on
loopback and its pytest fixture (L{embedded}), an in-memory connection
plugin for deterministic unit tests (L{memory}), recording observers
(L{recorders}), and a fault proxy (L{faultproxy}).
"""

from txinferno.testing.embedded import EmbeddedRegistry, RawConnection, connectRaw, exchange
from txinferno.testing.memory import MemoryConnection
from txinferno.testing.recorders import ChangeRecorder, ConnectionStateRecorder, MonitorRecorder

__all__ = [
    "EmbeddedRegistry",
    "RawConnection",
    "connectRaw",
    "exchange",
    "MemoryConnection",
    "MonitorRecorder",
    "ChangeRecorder",
    "ConnectionStateRecorder",
]

try:
    from txinferno.testing.embedded import registry_server  # noqa: F401
except ImportError:  # pragma: no cover - without pytest-twisted, no fixture
    pass
else:
    __all__.append("registry_server")
