"""
Tests for L{txinferno.wire.description}: the registry description string.
"""

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import TCP4ClientEndpoint, clientFromString, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor

from txinferno.wire.description import (
    RegistryEndpoints,
    clientStringFor,
    parseRegistryDescription,
    tcpAddress,
)


def _hostAndPorts(endpoints):
    """
    Build each endpoint as Twisted would and give its host and port.
    """
    built = [clientFromString(MemoryReactor(), e) for e in endpoints]
    assert all(isinstance(e, TCP4ClientEndpoint) for e in built)
    return [(e._host, e._port) for e in built]


@pytest.mark.parametrize(
    "description, host, ports",
    [
        ("tcp", "127.0.0.1", (6701, 6702, 6703)),
        ("tcp:", "127.0.0.1", (6701, 6702, 6703)),
        ("tcp:registry.example", "registry.example", (6701, 6702, 6703)),
        ("tcp:192.0.2.1:7000", "192.0.2.1", (7000, 7001, 7002)),
        ("tcp::7000", "127.0.0.1", (7000, 7001, 7002)),
        ("tcp:host=h:new=1:find=2:event=3", "h", (1, 2, 3)),
        ("tcp:find=9000", "127.0.0.1", (6701, 9000, 6703)),
        ("tcp:h:7000:event=9", "h", (7000, 7001, 9)),
        ("tcp:\\:\\:1:7000", "::1", (7000, 7001, 7002)),
        ("tcp:host=fe80\\:\\:1:new=5", "fe80::1", (5, 6702, 6703)),
    ],
)
def test_forms(description, host, ports):
    """
    Every form gives the three client endpoints of the host's ports, and
    Twisted's endpoint parser reads them back.
    """
    endpoints = parseRegistryDescription(description)
    assert isinstance(endpoints, RegistryEndpoints)
    assert _hostAndPorts(endpoints) == [(host, p) for p in ports]
    new, find, event = endpoints
    assert (new, find, event) == (endpoints.new, endpoints.find, endpoints.event)


@pytest.mark.parametrize(
    "description, message",
    [
        ("udp:h", "unknown scheme 'udp'"),
        ("h:6701", "unknown scheme 'h'"),
        ("", "unknown scheme ''"),
        ("tcp:h:70000", "bad base port '70000'"),
        ("tcp:h:0", "bad base port '0'"),
        ("tcp:h:-1", "bad base port '-1'"),
        ("tcp:h:65534", "leave room"),
        ("tcp:h:x", "bad base port 'x'"),
        ("tcp:find=abc", "bad find port 'abc'"),
        ("tcp:event=65536", "bad event port '65536'"),
        ("tcp:a:1:c", "too many parts"),
        ("tcp:port=1", "unknown keyword 'port'"),
        ("tcp:host=a:host=b", "host given twice"),
        ("tcp:a:host=b", "host given twice"),
        ("tcp:new=1:new=2", "new given twice"),
    ],
)
def test_errors(description, message):
    """
    A bad description raises L{ValueError} saying what is wrong.
    """
    with pytest.raises(ValueError, match=message):
        parseRegistryDescription(description)


def test_notAString():
    with pytest.raises(ValueError, match="is a str, not bytes"):
        parseRegistryDescription(b"tcp")


@pytest.mark.parametrize("description", ["tcp", "tcp:reg.example:7000", "tcp:\\:\\:1", "tcp:a\\=b"])
def test_tcpAddressReadsBack(description):
    """
    L{tcpAddress} reads back the host and port of every endpoint string
    L{parseRegistryDescription} writes.
    """
    endpoints = parseRegistryDescription(description)
    assert [tcpAddress(e) for e in endpoints] == _hostAndPorts(endpoints)


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp:h:1",
        "tcp:host=h",
        "tcp:host=h:port=1:timeout=3",
        "tcp:host=h:port=x",
        "tcp:host=h:host=i",
        "tcp6:host=\\:\\:1:port=1",
        "unix:path=/x",
    ],
)
def test_tcpAddressOthers(endpoint):
    assert tcpAddress(endpoint) is None


@pytest.mark.parametrize(
    "address, host",
    [
        (IPv4Address("TCP", "127.0.0.5", 7000), "127.0.0.5"),
        (IPv4Address("TCP", "0.0.0.0", 7000), "127.0.0.1"),
        (IPv6Address("TCP", "::", 7000), "::1"),
        (IPv6Address("TCP", "fe80::1", 7000), "fe80::1"),
    ],
)
def test_clientStringForTCP(address, host):
    """
    A TCP listening address, IPv6 included, gives the plain C{tcp:} string
    that L{tcpAddress} reads back (so that the connection takes the
    C{connectTCP} path); a wildcard address is reached on loopback.
    """
    endpoint = clientStringFor(address)
    assert endpoint.startswith("tcp:host=")
    assert tcpAddress(endpoint) == (host, 7000)


@pytest_twisted.ensureDeferred
async def test_clientStringForUNIX(tmp_path):
    """
    A UNIX listening address gives a C{unix:} string that reaches it,
    however many colons, equals signs and backslashes its path holds.
    """
    path = str(tmp_path / "a:b=c\\d")
    port = reactor.listenUNIX(path, Factory.forProtocol(Protocol))
    try:
        endpoint = clientStringFor(port.getHost())
        assert endpoint.startswith("unix:path=")
        protocol = await connectProtocol(clientFromString(reactor, endpoint), Protocol())
        assert protocol.transport.getPeer().name in (path, path.encode())
        protocol.transport.loseConnection()
    finally:
        await port.stopListening()


def test_clientStringForOthers():
    with pytest.raises(ValueError, match="no client endpoint string reaches"):
        clientStringFor(object())
