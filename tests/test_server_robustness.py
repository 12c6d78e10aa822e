"""
The embedded registry server against hostile or careless clients, over real
loopback TCP: garbage, invalid UTF-8, huge lines, half-closes, resets,
silent connections and thousands of connections at once.
"""

import resource

import pytest
import pytest_twisted
from support import bounded
from twisted.internet import defer, reactor

from txinferno.testing import connectRaw, exchange


def connect(server, port):
    return bounded(connectRaw(reactor, server.host, port))


def find(server, query):
    return bounded(exchange(reactor, server.host, server.findPort, query))


async def register(server, line, events):
    """
    Register with C{line}, keep the connection and wait for the event.
    """
    conn = await connect(server, server.newPort)
    conn.send(line)
    await bounded(events.readLine())
    return conn


async def watcher(server):
    events = await connect(server, server.eventPort)
    assert await bounded(events.readLine()) == b"READY"
    return events


@pytest_twisted.ensureDeferred
async def test_invalidUtf8(registry_server):
    """
    Invalid UTF-8 becomes U+FFFD, in names, attributes and queries.
    """
    events = await watcher(registry_server)
    await register(registry_server, b"bad\xff k \xc3\n", events)
    assert await find(registry_server, b"\n") == b"bad\xef\xbf\xbd k \xef\xbf\xbd\n"
    assert await find(registry_server, b"k \xfe\n") == b"bad\xef\xbf\xbd k \xef\xbf\xbd\n"


@pytest_twisted.ensureDeferred
async def test_garbage(registry_server):
    """
    Control bytes in a name close the connection without a byte; the server
    goes on serving.
    """
    for garbage in (b"\x01\x02\x03\x00\xff\n", b"\x00\n", b"\x7f x\n", b"\r\n"):
        conn = await connect(registry_server, registry_server.newPort)
        conn.send(garbage)
        assert await bounded(conn.whenClosed()) == b""
    assert await find(registry_server, b"\x00\x01\xff\x7f\n") == b""
    assert registry_server.registry.version == 0


@pytest_twisted.ensureDeferred
async def test_hugeLines(registry_server):
    """
    A line longer than the limit (here 1 MB, with and without a newline,
    inside and outside quotes) closes its connection without a byte and
    without registering or answering anything.
    """
    events = await watcher(registry_server)
    held = await register(registry_server, b"held a 1\n", events)
    for data in (b"x" * 2**20 + b"\n", b"big v " + b"y" * 2**20, b"q '" + b"z\n" * 2**19):
        for port in (registry_server.newPort, registry_server.findPort):
            conn = await connect(registry_server, port)
            conn.send(data)
            assert await bounded(conn.whenClosed()) == b""
    limit = registry_server.server.maxLineLength
    longest = b"long v " + b"w" * (limit - len(b"long v ") - 1) + b"\n"
    await register(registry_server, longest, events)
    assert await find(registry_server, b"a 1\n") == b"held a 1\n"
    assert len(await find(registry_server, b"v *\n")) == limit
    held.send(b"b " + b"u" * limit + b"\n")
    assert await bounded(held.whenClosed()) == b""
    assert await bounded(events.readLine()) == b"00000003"
    assert await find(registry_server, b"a 1\n") == b""


@pytest_twisted.ensureDeferred
async def test_lineSplitAcrossSegments(registry_server):
    """
    Unlike the real bridge, the server assembles a line sent in pieces.
    """
    events = await watcher(registry_server)
    conn = await connect(registry_server, registry_server.newPort)
    conn.send(b"r4 a")
    find1 = await find(registry_server, b"\n")
    conn.send(b" 1 b 'x\ny' c ''\n")
    await bounded(events.readLine())
    assert find1 == b""
    assert await find(registry_server, b"a 1\n") == b"r4 c '' b 'x\ny' a 1\n"


@pytest_twisted.ensureDeferred
async def test_findHalfClose(registry_server):
    """
    A find client that shuts down its sending side without a newline gets
    the answer to what it sent; with nothing sent, every service.
    """
    events = await watcher(registry_server)
    await register(registry_server, b"svc k 1\n", events)
    for query in (b"k 1", b""):
        conn = await connect(registry_server, registry_server.findPort)
        conn.send(query)
        conn.transport.loseWriteConnection()
        assert await bounded(conn.whenClosed()) == b"svc k 1\n"


@pytest_twisted.ensureDeferred
async def test_resetUnregisters(registry_server):
    """
    A registration connection reset by its client unregisters the service;
    a reset find or event connection harms nothing.
    """
    events = await watcher(registry_server)
    conn = await register(registry_server, b"gone a 1\n", events)
    conn.transport.abortConnection()
    assert await bounded(events.readLine()) == b"00000002"
    for port in (registry_server.findPort, registry_server.eventPort):
        other = await connect(registry_server, port)
        other.send(b"a 1")
        other.transport.abortConnection()
    assert await find(registry_server, b"\n") == b""


@pytest_twisted.ensureDeferred
async def test_eventIgnoresClientBytes(registry_server):
    """
    Whatever an event client sends, it gets only READY and versions.
    """
    events = await watcher(registry_server)
    events.send(b"\xff\x00garbage\n" * 1000)
    await register(registry_server, b"svc\n", events)
    assert events.received == b"READY\n00000001\n"


@pytest_twisted.ensureDeferred
async def test_coalescedEvents(registry_server):
    """
    Changes made in one reactor turn give one report: three updates sent
    in one write.
    """
    events = await watcher(registry_server)
    conn = await register(registry_server, b"svc\n", events)
    conn.send(b"a 1\nb 2\nc 3\n")
    assert await bounded(events.readLine()) == b"00000004"
    conn.send(b"d 4\n")
    assert await bounded(events.readLine()) == b"00000005"


@pytest_twisted.ensureDeferred
async def test_silentConnectionsBlockNobody(registry_server):
    """
    Connections that never send anything do not delay anyone.
    """
    events = await watcher(registry_server)
    silent = []
    for port in (registry_server.newPort, registry_server.findPort, registry_server.eventPort):
        for _ in range(20):
            silent.append(await connect(registry_server, port))
    await register(registry_server, b"svc a 1\n", events)
    assert await find(registry_server, b"\n") == b"svc a 1\n"
    assert all(
        c.lost is None and c.received in (b"", b"READY\n", b"READY\n00000001\n") for c in silent
    )


@pytest.fixture
def manyFiles():
    """
    Raise the soft limit of open files to the hard limit for the test.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 5000:
        pytest.skip("the hard limit of open files (%d) is too low" % (hard,))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest_twisted.ensureDeferred
async def test_thousandsOfConnections(manyFiles, registry_server):
    """
    2,000 registrations held open at once are all listed; closing them all
    removes them all.
    """
    count = 2000
    conns = await defer.gatherResults(
        [connect(registry_server, registry_server.newPort) for _ in range(count)]
    )
    for i, conn in enumerate(conns):
        conn.send(b"s%d n %d\n" % (i, i))
    events = await watcher(registry_server)
    while len(registry_server.registry) < count:
        await bounded(events.readLine())
    answer = await find(registry_server, b"\n")
    assert len(answer.splitlines()) == count
    assert await find(registry_server, b"n 1234\n") == b"s1234 n 1234\n"
    await bounded(defer.gatherResults([c.close() for c in conns]))
    while len(registry_server.registry):
        await bounded(events.readLine())
    assert await find(registry_server, b"\n") == b""
