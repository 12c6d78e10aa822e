"""
The embedded registry server under heavy or hostile clients, over real
loopback TCP: find readers that never read a large answer, event watchers
that never read, persistent services left by one address, and the TCP
keepalive of accepted connections.
"""

import socket
import sys
import time

import pytest_twisted
from support import TIMEOUT, assertKeepAlive, bounded, logLines, turnUntil
from twisted.internet import defer, reactor, task
from twisted.logger import LogLevel

from txinferno.server.connections import _INHERITED
from txinferno.server.protocols import (
    FIND_BUFFER,
    FIND_CHUNKS,
    EventServerProtocol,
    FindServerProtocol,
)
from txinferno.testing import EmbeddedRegistry, connectRaw, exchange


def buffered(transport):
    """
    @return: the bytes a Twisted TCP transport holds that its socket has
        not taken.
    """
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def neverReading(port, receiveBuffer=2048):
    """
    A blocking loopback socket with a small receive buffer, connected to
    C{port}, that the test never reads from.
    """
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
    s.connect(("127.0.0.1", port))
    return s


def protocols(server, kind):
    return [p for p in server.server._connections if isinstance(p, kind)]


@pytest_twisted.ensureDeferred
async def test_findAnswersStreamWithBoundedBuffers():
    """
    Ten clients ask for a 4 MB listing and never read: the server holds at
    most about C{findBufferSize} and a chunk for each, streams at most
    C{maxFinds} answers at once, and a small find completes meanwhile.
    When the readers go, nothing of theirs is left.
    """
    server = EmbeddedRegistry(reactor, maxFinds=3)
    await server.start()
    sockets = []
    try:
        for i in range(2000):
            server.registry.register(None, ["svc%d" % i, "id", str(i), "blob", "x" * 2000])
        sockets = [neverReading(server.findPort) for _ in range(10)]
        for s in sockets:
            s.sendall(b"\n")
        await turnUntil(
            lambda: len([p for p in protocols(server, FindServerProtocol) if p._done]) == 10
        )
        answer = await bounded(exchange(reactor, server.host, server.findPort, b"id 5\n"))
        assert answer == server.registry["svc5"].line()
        finds = protocols(server, FindServerProtocol)
        assert len(finds) == 10
        bound = FIND_BUFFER + FIND_BUFFER // FIND_CHUNKS + len(server.registry["svc0"].line())
        assert max(buffered(p.transport) for p in finds) <= bound
        assert len([p for p in finds if getattr(p, "_services", None) is not None]) <= 3
    finally:
        for s in sockets:
            s.close()
        await turnUntil(lambda: not protocols(server, FindServerProtocol))
        assert not server.server._streaming and not server.server._waiting
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_waitingFindsAreAnsweredInTurn():
    """
    Finds beyond C{maxFinds} wait, and each is answered whole once the
    answers before it are read.
    """
    server = EmbeddedRegistry(reactor, maxFinds=1)
    await server.start()
    try:
        for i in range(200):
            server.registry.register(None, ["svc%d" % i, "blob", "y" * 1000])
        expected = b"".join(s.line() for s in server.registry)
        answers = await bounded(
            defer.gatherResults(
                [exchange(reactor, server.host, server.findPort, b"\n") for _ in range(5)]
            )
        )
        assert answers == [expected] * 5
        assert not server.server._streaming and not server.server._waiting
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_watcherThatNeverReadsIsDropped(logged):
    """
    A watcher whose socket does not drain is dropped after
    C{watcherTimeout} seconds, logged once; until then the server holds at
    most one report for it; a reading watcher gets every change up to the
    last and stays connected.
    """
    server = EmbeddedRegistry(reactor, watcherTimeout=0.5)
    await server.start()
    stuck = neverReading(server.eventPort)
    try:
        reader = await connectRaw(reactor, server.host, server.eventPort)
        assert await bounded(reader.readLine()) == b"READY"
        await turnUntil(lambda: len(server.server._watchers) == 2)
        [slow] = [
            w
            for w in server.server._watchers
            if w.transport.getPeer().port == stuck.getsockname()[1]
        ]
        service = server.registry.register(None, ["tick"])
        deadline = time.monotonic() + TIMEOUT
        most = 0
        while slow.transport.connected and time.monotonic() < deadline:
            server.registry.update(service, ["n", str(server.registry.version)])
            await task.deferLater(reactor, 0, lambda: None)
            most = max(most, buffered(slow.transport))
        assert not slow.transport.connected, "the watcher was not dropped"
        assert most <= 9
        last = b"%08d" % (server.registry.version,)
        await turnUntil(lambda: reader.received.endswith(last + b"\n"))
        assert reader.lost is None
        assert server.server._watchers == {w for w in server.server._watchers if w is not slow}
        assert len(server.server._watchers) == 1
        assert logLines(logged, LogLevel.warn, "dropped") == [
            "event watcher 127.0.0.1:%d dropped: its socket has not drained for 0.5 seconds"
            % (stuck.getsockname()[1],)
        ]
        assert server.server.statistics.watchersDropped == 1
    finally:
        stuck.close()
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_persistentServicesPerAddress(logged):
    """
    The registry counts the persistent services a peer address leaves
    behind; past its limit, a service that says C{persist} goes with its
    connection, and that is logged.
    """
    server = EmbeddedRegistry(reactor)
    await server.start()
    server.registry.maxPersistentPerOrigin = 2
    try:
        for i in range(3):
            conn = await connectRaw(reactor, server.host, server.newPort)
            conn.send(b"p%d persist 1\n" % (i,))
            await turnUntil(lambda: "p%d" % (i,) in server.registry)
            await bounded(conn.close())
            await turnUntil(
                lambda: (
                    server.registry["p%d" % (i,)].owner is None
                    if "p%d" % (i,) in server.registry
                    else True
                )
            )
        assert sorted(s.name for s in server.registry) == ["p0", "p1"]
        assert server.registry["p0"].origin == "127.0.0.1"
        assert logLines(logged, LogLevel.warn, "removed instead of persisting") == [
            "service p2 removed instead of persisting: 127.0.0.1 already left 2 persistent services"
        ]
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_keepAliveOnAcceptedConnections():
    """
    Every connection the server accepts, on each port, has TCP keepalive
    with the server's short timers: by default 20 s idle, then 4 probes
    10 s apart.
    """
    server = EmbeddedRegistry(reactor)
    await server.start()
    held = []
    try:
        for port in (server.newPort, server.findPort, server.eventPort):
            held.append(await connectRaw(reactor, server.host, port))
        await turnUntil(lambda: len(server.server._connections) == 3)
        for p in server.server._connections:
            assertKeepAlive(p.transport.getHandle())
        assert {type(p) for p in server.server._connections} >= {
            EventServerProtocol,
            FindServerProtocol,
        }
    finally:
        for conn in held:
            conn.transport.abortConnection()
        await server.stop()


def sendBufferSetTo(size):
    """
    @return: what C{SO_SNDBUF} reads back on this platform once set to
        C{size} (Linux doubles it).
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


@pytest_twisted.ensureDeferred
async def test_acceptedSocketOptionsWhateverTheAcceptOrder():
    """
    Keepalive (and, on the event port, the small send buffer) is on every
    accepted socket: those accepted first, those whose connections were
    made before any was accepted (which cannot inherit what the listening
    socket got since), and those that come later, which inherit it; once
    one has inherited them, later ones are not touched.
    """
    server = EmbeddedRegistry(reactor)
    await server.start()
    ports = server.server.ports[:3]
    for port in ports:
        port.stopReading()
    early = [socket.create_connection((server.host, server.eventPort)) for _ in range(3)]
    early += [socket.create_connection((server.host, server.newPort)) for _ in range(3)]
    held = early[:]
    try:
        for port in ports:
            port.startReading()
        await turnUntil(lambda: len(server.server._connections) == 6)
        held += [socket.create_connection((server.host, server.eventPort)) for _ in range(2)]
        held += [socket.create_connection((server.host, server.newPort)) for _ in range(2)]
        await turnUntil(lambda: len(server.server._connections) == 10)
        expected = sendBufferSetTo(server.server.watcherSendBuffer)
        for p in server.server._connections:
            handle = p.transport.getHandle()
            assertKeepAlive(handle)
            if isinstance(p, EventServerProtocol):
                assert handle.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == expected
            else:
                assert handle.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) != expected
        if sys.platform.startswith("linux"):
            for name, port in zip(("new", "event"), (ports[0], ports[2])):
                [options] = [o for _, o in [server.server._acceptedOptions[name]]]
                assert options._ports[port] is _INHERITED, name
    finally:
        for s in held:
            s.close()
        await server.stop()
