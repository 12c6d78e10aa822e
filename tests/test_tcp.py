"""
Integration tests of the TCP connection plugin, L{txinferno.client.tcp}, against
the embedded registry and against misbehaving servers, over loopback TCP.
"""

import socket
from collections import deque

import pytest
import pytest_twisted
from support import bounded
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txinferno.client.event import EventClientFactory
from txinferno.client.tcp import TCPRegistryConnection, connectionFromString
from txinferno.errors import (
    MalformedAnswer,
    RegistrationLost,
    RegistrationRejected,
    RegistryTimeout,
)
from txinferno.interfaces import (
    IChangeObserver,
    IChangeStream,
    IRegistration,
    IRegistryConnection,
)
from txinferno.testing import EmbeddedRegistry


def connect(server, **options):
    options.setdefault("initialDelay", 0.05)
    return connectionFromString(reactor, server.description, **options)


@implementer(IChangeObserver)
class Events:
    """
    A change observer that queues what it is told, for a test to wait on.
    """

    def __init__(self):
        self._events = deque()
        self._waiting = deque()

    def _put(self, event):
        if self._waiting:
            self._waiting.popleft().callback(event)
        else:
            self._events.append(event)

    def streamReady(self):
        self._put(("ready",))

    def registryChanged(self, version):
        self._put(("changed", version))

    def streamLost(self, reason):
        self._put(("lost", reason))

    def next(self):
        """
        @return: a L{Deferred} firing with the next event.
        """
        if self._events:
            return defer.succeed(self._events.popleft())
        d = defer.Deferred()
        self._waiting.append(d)
        return bounded(d)

    async def until(self, kind):
        """
        Skip events up to the next of C{kind}, and return it.
        """
        while True:
            event = await self.next()
            if event[0] == kind:
                return event


@pytest_twisted.ensureDeferred
async def test_interfaces(registry_server):
    conn = connect(registry_server)
    assert verifyObject(IRegistryConnection, conn)
    assert conn.description == registry_server.description
    registration = await bounded(conn.register("svc", {"a": "1"}))
    assert verifyObject(IRegistration, registration)
    events = Events()
    stream = conn.watch(events)
    assert isinstance(stream, EventClientFactory)
    await events.until("ready")
    assert verifyObject(IChangeStream, stream)
    assert stream.connected
    await bounded(stream.stop())
    assert not stream.connected
    await bounded(registration.unregister())


@pytest_twisted.ensureDeferred
async def test_registerUpdateUnregister(registry_server):
    conn = connect(registry_server)
    registration = await bounded(
        conn.register("myservice", [("proto", "ssh"), ("descr", "an example")])
    )
    assert await bounded(conn.find({"proto": "ssh"})) == {
        "myservice": {"proto": "ssh", "descr": "an example"}
    }
    registration.update({"descr": "updated descr", "port": "22"})
    assert registration.attrs == {"proto": "ssh", "descr": "updated descr", "port": "22"}
    assert await bounded(conn.find({"port": "22"})) == {"myservice": registration.attrs}
    lost = registration.whenLost()
    await bounded(registration.unregister())
    assert await lost is None
    assert await bounded(conn.find({})) == {}
    with pytest.raises(RegistrationLost):
        registration.update({"a": "1"})


@pytest_twisted.ensureDeferred
async def test_keepalive(registry_server):
    """
    The registration connection has TCP keepalive on.
    """
    conn = connect(registry_server)
    registration = await bounded(conn.register("svc", {}))
    handle = registration._protocol.transport.getHandle()
    assert handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    await bounded(registration.unregister())


@pytest_twisted.ensureDeferred
async def test_persist(registry_server):
    conn = connect(registry_server)
    keeper = await bounded(conn.register("keeper", {"proto": "ssh", "persist": "1"}))
    gone = await bounded(conn.register("gone", {"proto": "ssh", "persist": "0"}))
    await bounded(keeper.unregister())
    await bounded(gone.unregister())
    assert await bounded(conn.find({"proto": "ssh"})) == {
        "keeper": {"proto": "ssh", "persist": "1"}
    }


@pytest_twisted.ensureDeferred
async def test_duplicate(registry_server):
    conn = connect(registry_server)
    first = await bounded(conn.register("svc", {"owner": "first"}))
    with pytest.raises(RegistrationRejected) as caught:
        await bounded(conn.register("svc", {"owner": "second"}))
    assert caught.value.name == "svc"
    assert caught.value.reason == "duplicate service name"
    assert await bounded(conn.find({})) == {"svc": {"owner": "first"}}
    await bounded(first.unregister())


@pytest_twisted.ensureDeferred
async def test_manyRegistrations(registry_server):
    """
    Registrations made at once are confirmed by a handful of finds, none of
    them a full listing: with 5,000 other services in the registry, a
    connection that takes answers of at most 64 KiB confirms 300 at once.
    """
    for i in range(5000):
        registry_server.registry.register("another client", ["other%d" % i, "filler", "x" * 20])
    conn = connect(registry_server, maxAnswerSize=64 * 1024)
    statistics = registry_server.server.statistics
    findsBefore, sentBefore = statistics.finds, statistics.bytesOut["find"]
    registrations = await bounded(
        defer.gatherResults([conn.register("s%d" % i, {"i": str(i)}) for i in range(300)])
    )
    assert statistics.finds - findsBefore <= 5
    # A full listing alone would be over 150,000 bytes.
    assert statistics.bytesOut["find"] - sentBefore < 50_000
    found = await bounded(conn.find({"i": "*"}))
    assert found == {"s%d" % i: {"i": str(i)} for i in range(300)}
    await bounded(defer.gatherResults([r.unregister() for r in registrations]))


VALUES = {
    "space": "two words",
    "quote": "it's a 'test'",
    "newline": "x\ny\n",
    "tab": "a\tb",
    "cr": "v\r",
    "empty": "",
    "uni": "\u00fc\u4e2d\U0001f600",
    "star": "*",
    "equals": "a=b",
    "two words": "attr with a space",
}


@pytest_twisted.ensureDeferred
async def test_roundTrip(registry_server):
    """
    Values and attribute names with spaces, quotes, newlines, control and
    non-ASCII characters come back as sent, and queries on them match.
    """
    conn = connect(registry_server)
    registration = await bounded(conn.register("q1\u00fc", VALUES))
    assert await bounded(conn.find({})) == {"q1\u00fc": VALUES}
    for attr, value in VALUES.items():
        assert list(await bounded(conn.find({attr: value}))) == ["q1\u00fc"]
    await bounded(registration.unregister())


@pytest_twisted.ensureDeferred
async def test_findStar(registry_server):
    conn = connect(registry_server)
    registrations = [
        await bounded(conn.register(name, attrs))
        for name, attrs in [
            ("fa", [("k", "1"), ("z", "two words")]),
            ("fb", [("k", "2"), ("z", "y")]),
            ("fc", [("k", "1")]),
        ]
    ]
    assert set(await bounded(conn.find({"k": "*"}))) == {"fa", "fb", "fc"}
    assert set(await bounded(conn.find({"k": "1", "z": "*"}))) == {"fa"}
    assert await bounded(conn.find([("k", "1"), ("k", "2")])) == {}
    assert await bounded(conn.find({"nothing": "*"})) == {}
    for registration in registrations:
        await bounded(registration.unregister())


@pytest_twisted.ensureDeferred
async def test_changes(registry_server):
    """
    The stream reports each change with the registry's version.
    """
    conn = connect(registry_server)
    events = Events()
    stream = conn.watch(events)
    assert await events.next() == ("ready",)
    registration = await bounded(conn.register("svc", {"a": "1"}))
    assert await events.next() == ("changed", 1)
    registration.update({"a": "2"})
    assert await events.next() == ("changed", 2)
    await bounded(registration.unregister())
    assert await events.next() == ("changed", 3)
    await bounded(stream.stop())
    assert (await events.next())[0] == "lost"


@pytest_twisted.ensureDeferred
async def test_restart(registry_server):
    """
    When the registry restarts, the stream is lost, reopened, and ready
    again; a registration is lost.
    """
    conn = connect(registry_server)
    events = Events()
    stream = conn.watch(events)
    await events.until("ready")
    registration = await bounded(conn.register("svc", {}))
    lost = registration.whenLost()
    assert await events.next() == ("changed", 1)
    await bounded(registry_server.restart())
    assert (await events.next())[0] == "lost"
    await events.until("ready")
    assert stream.connected
    with pytest.raises(RegistrationLost):
        await bounded(lost)
    again = await bounded(conn.register("svc", {}))
    assert (await events.next()) == ("changed", 1)
    await bounded(again.unregister())
    await bounded(stream.stop())


async def freePorts(count):
    """
    @return: C{count} loopback ports that were free a moment ago.
    """
    ports = [
        await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory())
        for i in range(count)
    ]
    numbers = [p.getHost().port for p in ports]
    for p in ports:
        await p.stopListening()
    return numbers


@pytest_twisted.ensureDeferred
async def test_firstConnectionRefused():
    """
    Nothing listens at first: a query fails with the refusal, the stream
    retries, and once the registry is up the stream becomes ready.
    """
    server = EmbeddedRegistry(reactor)
    server.newPort, server.findPort, server.eventPort = await freePorts(3)
    conn = connect(server)
    with pytest.raises(ConnectionRefusedError):
        await bounded(conn.find({}))
    events = Events()
    stream = conn.watch(events)
    ready = events.next()
    await bounded(server.start())
    try:
        assert await ready == ("ready",)
        assert stream.connected
    finally:
        await bounded(stream.stop())
        await bounded(server.stop())


class Servers:
    """
    Three listening ports served by C{protocol}, closed by L{close}.
    """

    async def listen(self, protocol):
        self.factory = Factory.forProtocol(protocol)
        self.factory.connections = 0
        self.factory.waiting = []
        self.ports = [
            await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(self.factory)
            for i in range(3)
        ]
        return "tcp:host=127.0.0.1:new=%d:find=%d:event=%d" % tuple(
            p.getHost().port for p in self.ports
        )

    def connections(self, count):
        """
        @return: a L{Deferred} that fires once C{count} connections came.
        """
        d = defer.Deferred()
        self.factory.waiting.append((count, d))
        return bounded(d)

    async def close(self):
        for p in self.ports:
            await p.stopListening()


class Counted(Protocol):
    def connectionMade(self):
        self.factory.connections += 1
        for count, d in list(self.factory.waiting):
            if self.factory.connections >= count:
                self.factory.waiting.remove((count, d))
                d.callback(None)


class Silent(Counted):
    """
    Accepts and never answers.
    """


class Garbage(Counted):
    """
    Answers anything with garbage and closes.
    """

    def connectionMade(self):
        Counted.connectionMade(self)
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\nno newline at the end")
        self.transport.loseConnection()


@pytest.mark.logs_errors
@pytest_twisted.ensureDeferred
async def test_silentRegistry():
    """
    A registry that accepts and never answers: a query and a registration
    time out with a clear error, and the stream never becomes ready.
    """
    servers = Servers()
    description = await servers.listen(Silent)
    conn = connectionFromString(reactor, description, findTimeout=0.3, initialDelay=0.05)
    with pytest.raises(RegistryTimeout, match="did not answer the query 'k 1' within 0.3 s"):
        await bounded(conn.find({"k": "1"}))
    with pytest.raises(RegistryTimeout):
        await bounded(conn.register("svc", {}))
    events = Events()
    stream = conn.watch(events)
    await servers.connections(servers.factory.connections + 2)
    assert not stream.connected
    await bounded(stream.stop())
    await servers.close()


@pytest.mark.logs_errors
@pytest_twisted.ensureDeferred
async def test_garbageRegistry():
    """
    A server that sends garbage on each port: the query and the
    registration fail with L{MalformedAnswer}; the stream is dropped and
    retried, never ready.
    """
    servers = Servers()
    description = await servers.listen(Garbage)
    conn = connectionFromString(reactor, description, initialDelay=0.05)
    with pytest.raises(MalformedAnswer, match="not a complete line"):
        await bounded(conn.find({}))
    with pytest.raises(MalformedAnswer, match="on the registration connection"):
        await bounded(conn.register("svc", {}))
    events = Events()
    stream = conn.watch(events)
    await servers.connections(servers.factory.connections + 2)
    assert not stream.connected
    await bounded(stream.stop())
    await servers.close()


@pytest_twisted.ensureDeferred
async def test_probeDeclaresLoss(registry_server):
    """
    With a probe, a registry whose find port stops answering is declared
    lost although its event connection stays open.
    """
    servers = Servers()
    await servers.listen(Silent)
    conn = TCPRegistryConnection(
        reactor,
        "tcp:host=127.0.0.1:port=%d" % registry_server.newPort,
        "tcp:host=127.0.0.1:port=%d" % servers.ports[1].getHost().port,
        "tcp:host=127.0.0.1:port=%d" % registry_server.eventPort,
        probeInterval=0.1,
        probeTimeout=0.2,
        initialDelay=5,
    )
    assert conn.description.startswith("new=tcp:host=127.0.0.1")
    events = Events()
    stream = conn.watch(events)
    await events.until("ready")
    kind, reason = await events.next()
    assert kind == "lost"
    assert "liveness probe failed" in str(reason.value)
    assert not stream.connected
    await bounded(stream.stop())
    await servers.close()


@pytest.mark.parametrize(
    "option", ["findTimeout", "maxAnswerSize", "initialDelay", "maxDelay", "probeInterval"]
)
def test_badOptions(option):
    with pytest.raises(ValueError, match="%s must be positive and finite" % (option,)):
        connectionFromString(reactor, "tcp", **{option: 0})


def test_badDescription():
    with pytest.raises(ValueError, match="unknown scheme"):
        connectionFromString(reactor, "udp:host")


def test_validatesBeforeSending():
    conn = connectionFromString(reactor, "tcp:127.0.0.1:1")
    with pytest.raises(ValueError, match="bad character in service name"):
        conn.register("a/b", {})
    with pytest.raises(ValueError, match="odd attribute set"):
        conn.find(["a"])
