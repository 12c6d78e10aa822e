"""
Tests for L{txinferno.endpoints}: the C{inferno:} client endpoint and the
C{registered:} server endpoint, over loopback against the embedded registry.
"""

import pytest
import pytest_twisted
from support import TIMEOUT, whenRegistry
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ServerEndpoint,
    clientFromString,
    quoteStringArgument,
    serverFromString,
)
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Factory, Protocol

from txinferno.client.tcp import connectionFromString
from txinferno.endpoints import InfernoClientEndpoint, RegisteredServerEndpoint


class Greeter(Protocol):
    def connectionMade(self):
        self.transport.write(b"hello\n")
        self.transport.loseConnection()


class Reader(Protocol):
    def __init__(self):
        self.data = b""
        self.closed = Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.closed.callback(self.data)


@pytest.fixture
def greeter():
    port = pytest_twisted.blockon(
        TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(Greeter)))
    yield port.getHost().port
    pytest_twisted.blockon(port.stopListening())


async def deadPort():
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory())
    number = port.getHost().port
    await port.stopListening()
    return number


async def register(server, name, attrs):
    connection = connectionFromString(reactor, server.description)
    return await connection.register(name, attrs).addTimeout(TIMEOUT, reactor)


async def dial(description):
    reader = Reader()
    endpoint = clientFromString(reactor, description)
    assert isinstance(endpoint, InfernoClientEndpoint)
    await endpoint.connect(Factory.forProtocol(lambda: reader)).addTimeout(TIMEOUT, reactor)
    return await reader.closed.addTimeout(TIMEOUT, reactor)


@pytest_twisted.ensureDeferred
async def test_dialByAttributes(registry_server, greeter):
    """
    C{inferno:} finds the service by its attributes and connects to the
    address in its C{addr} attribute.
    """
    await register(registry_server, "greeter", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % greeter})
    registry = quoteStringArgument(registry_server.description)
    assert await dial("inferno:registry=%s:proto=greet" % registry) == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_dialByName(registry_server, greeter):
    """
    A service without C{addr} is dialled by its name, given positionally.
    """
    await register(registry_server, "tcp!127.0.0.1!%d" % greeter, {"proto": "greet"})
    registry = quoteStringArgument(registry_server.description)
    assert await dial("inferno:proto:greet:registry=%s" % registry) == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_nextWhenRefused(registry_server, greeter):
    """
    When the first service found refuses, the next one is tried.
    """
    await register(registry_server, "a-dead", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % await deadPort()})
    await register(registry_server, "b-live", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % greeter})
    connection = connectionFromString(reactor, registry_server.description)
    assert list(await connection.find({"proto": "greet"})) == ["a-dead", "b-live"]
    registry = quoteStringArgument(registry_server.description)
    assert await dial("inferno:registry=%s:choose=first:proto=greet" % registry) == b"hello\n"
    assert await dial("inferno:registry=%s:choose=random:proto=greet" % registry) == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_noMatch(registry_server):
    registry = quoteStringArgument(registry_server.description)
    endpoint = clientFromString(reactor, "inferno:registry=%s:proto=none" % registry)
    with pytest.raises(ConnectError, match="no service matching proto=none"):
        await endpoint.connect(Factory.forProtocol(Reader)).addTimeout(TIMEOUT, reactor)


@pytest_twisted.ensureDeferred
async def test_noneAccepts(registry_server):
    dead = await deadPort()
    await register(registry_server, "gone", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % dead})
    registry = quoteStringArgument(registry_server.description)
    endpoint = clientFromString(reactor, "inferno:registry=%s:proto=greet" % registry)
    with pytest.raises(ConnectError, match="accepted: gone at tcp!127.0.0.1!%d" % dead):
        await endpoint.connect(Factory.forProtocol(Reader)).addTimeout(TIMEOUT, reactor)


def test_clientParserErrors():
    with pytest.raises(ValueError, match="choose must be one of"):
        clientFromString(reactor, "inferno:choose=best:proto=x")
    with pytest.raises(ValueError, match="ATTR:VALUE pairs"):
        clientFromString(reactor, "inferno:proto")


def test_serverParserErrors():
    with pytest.raises(ValueError, match="exactly one inner endpoint"):
        serverFromString(reactor, "registered:proto=x")
    with pytest.raises(ValueError, match="bad character"):
        serverFromString(reactor, r"registered:tcp\:0:name=a b")


@pytest_twisted.ensureDeferred
async def test_registeredWhileListening(registry_server):
    """
    C{registered:} registers the address it listens on, keeps it registered
    across a registry restart, and unregisters on C{stopListening}.
    """
    registry = quoteStringArgument(registry_server.description)
    endpoint = serverFromString(
        reactor,
        r"registered:tcp\:0\:interface\=127.0.0.1:registry=%s:name=web:proto=http" % registry)
    assert isinstance(endpoint, RegisteredServerEndpoint)
    port = await endpoint.listen(Factory.forProtocol(Greeter)).addTimeout(TIMEOUT, reactor)
    address = "tcp!127.0.0.1!%d" % port.getHost().port
    await port.whenRegistered().addTimeout(TIMEOUT, reactor)
    expected = {"addr": address, "proto": "http"}
    assert dict(registry_server.registry["web"].attributes()) == expected
    assert await dial("inferno:registry=%s:proto=http" % registry) == b"hello\n"

    await registry_server.restart()
    await whenRegistry(registry_server, lambda r: "web" in r)
    assert dict(registry_server.registry["web"].attributes()) == expected

    await port.stopListening()
    await whenRegistry(registry_server, lambda r: "web" not in r)
    endpoint = clientFromString(reactor, "inferno:registry=%s:proto=http" % registry)
    with pytest.raises(ConnectError):
        await endpoint.connect(Factory.forProtocol(Reader)).addTimeout(TIMEOUT, reactor)


@pytest_twisted.ensureDeferred
async def test_registeredByAddress(registry_server):
    """
    Without C{name}, the service is named by its dial address.
    """
    registry = quoteStringArgument(registry_server.description)
    endpoint = serverFromString(
        reactor, r"registered:tcp\:0\:interface\=127.0.0.1:registry=%s:proto=x" % registry)
    port = await endpoint.listen(Factory.forProtocol(Greeter)).addTimeout(TIMEOUT, reactor)
    await port.whenRegistered().addTimeout(TIMEOUT, reactor)
    name = "tcp!127.0.0.1!%d" % port.getHost().port
    assert dict(registry_server.registry[name].attributes()) == {"proto": "x"}
    await port.stopListening()
