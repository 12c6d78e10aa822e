"""
A test kit for programs that use a registry: an embedded registry on
loopback and its pytest fixture (L{embedded}), and a fault proxy
(L{faultproxy}).
"""

from txinferno.testing.embedded import EmbeddedRegistry, RawConnection, connectRaw, exchange

__all__ = ["EmbeddedRegistry", "RawConnection", "connectRaw", "exchange"]

try:
    from txinferno.testing.embedded import registry_server
except ImportError:  # pragma: no cover - without pytest-twisted, no fixture
    pass
else:
    __all__.append("registry_server")
