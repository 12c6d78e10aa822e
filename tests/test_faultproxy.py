"""
Tests for L{txinferno.testing.faultproxy}, over real loopback connections to a
small recording server.
"""

import pytest
import pytest_twisted
from support import bounded, turnUntil
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol

from txinferno.testing.faultproxy import FaultProxy


class TargetProtocol(Protocol):
    """
    Records what it receives, echoes what it is told to, and fires
    C{closed} when its connection ends.
    """

    def __init__(self):
        self.chunks = []
        self.closed = Deferred()
        self.waiting = []

    def dataReceived(self, data):
        self.chunks.append(data)
        waiting, self.waiting = self.waiting, []
        for n, d in waiting:
            self.whenReceived(n).chainDeferred(d)

    def received(self):
        return b"".join(self.chunks)

    def whenReceived(self, n):
        d = Deferred()
        if len(self.received()) >= n:
            d.callback(self.received())
        else:
            self.waiting.append((n, d))
        return bounded(d)

    def connectionLost(self, reason):
        self.closed.callback(None)


class Target:
    """
    A listening server whose connections are L{TargetProtocol}s.
    """

    def __init__(self):
        self.accepted = []
        self.nextAccepted = Deferred()

    def build(self):
        protocol = TargetProtocol()
        self.accepted.append(protocol)
        d, self.nextAccepted = self.nextAccepted, Deferred()
        reactor.callLater(0, d.callback, protocol)
        return protocol


@pytest.fixture
def proxied():
    target = Target()
    port = pytest_twisted.blockon(
        TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(target.build)
        )
    )
    proxy = FaultProxy(reactor, "127.0.0.1", port.getHost().port)
    pytest_twisted.blockon(proxy.start())
    yield target, proxy
    pytest_twisted.blockon(proxy.stop())
    for protocol in target.accepted:
        if protocol.transport.connected:
            protocol.transport.abortConnection()
    pytest_twisted.blockon(port.stopListening())


async def connect(proxy):
    """
    Connect a L{TargetProtocol} through C{proxy}, and wait for the target to have
    accepted the proxied connection.
    """
    client = TargetProtocol()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port)
    await bounded(endpoint.connect(Factory.forProtocol(lambda: client)))
    return client


@pytest_twisted.ensureDeferred
async def test_forwardsBothWays(proxied):
    target, proxy = proxied
    accepted = target.nextAccepted
    client = await connect(proxy)
    server = await bounded(accepted)
    client.transport.write(b"ping\n")
    assert await server.whenReceived(5) == b"ping\n"
    server.transport.write(b"pong\n")
    assert await client.whenReceived(5) == b"pong\n"
    assert proxy.connections == 1
    client.transport.loseConnection()
    await bounded(server.closed)


@pytest_twisted.ensureDeferred
async def test_oneByteChunks(proxied):
    target, proxy = proxied
    proxy.oneByteChunks = True
    accepted = target.nextAccepted
    client = await connect(proxy)
    server = await bounded(accepted)
    data = b"a line of some forty bytes, more or less\n"
    client.transport.write(data)
    assert await server.whenReceived(len(data)) == data
    assert len(server.chunks) > len(data) // 4


@pytest_twisted.ensureDeferred
async def test_blackholeDropsWithoutClosing(proxied):
    target, proxy = proxied
    accepted = target.nextAccepted
    client = await connect(proxy)
    server = await bounded(accepted)
    proxy.blackhole = True
    client.transport.write(b"lost\n")
    server.transport.write(b"lost too\n")
    await turnUntil(lambda: proxy.dropped == 14, 0.001)
    proxy.blackhole = False
    client.transport.write(b"after\n")
    assert await server.whenReceived(6) == b"after\n"
    server.transport.write(b"back\n")
    assert await client.whenReceived(5) == b"back\n"
    assert not server.closed.called and not client.closed.called


@pytest_twisted.ensureDeferred
async def test_refuseThenAccept(proxied):
    target, proxy = proxied
    port = proxy.port
    await proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)
    await proxy.accept()
    assert proxy.port == port
    accepted = target.nextAccepted
    await connect(proxy)
    await bounded(accepted)


@pytest_twisted.ensureDeferred
async def test_resetAll(proxied):
    target, proxy = proxied
    accepted = target.nextAccepted
    client = await connect(proxy)
    server = await bounded(accepted)
    await bounded(proxy.resetAll())
    await bounded(client.closed)
    await bounded(server.closed)
    assert proxy.connections == 0


@pytest_twisted.ensureDeferred
async def test_cutMidLine(proxied):
    target, proxy = proxied
    accepted = target.nextAccepted
    client = await connect(proxy)
    server = await bounded(accepted)
    proxy.cutNextChunk()
    client.transport.write(b"hello world\nsecond line\n")
    await bounded(server.closed)
    await bounded(client.closed)
    assert server.received() == b"hello "


@pytest_twisted.ensureDeferred
async def test_delay(proxied):
    target, proxy = proxied
    proxy.delay = 0.05
    accepted = target.nextAccepted
    client = await connect(proxy)
    server = await bounded(accepted)
    started = reactor.seconds()
    client.transport.write(b"slow\n")
    assert await server.whenReceived(5) == b"slow\n"
    assert reactor.seconds() - started >= 0.05
