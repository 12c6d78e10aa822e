"""
The embedded registry server over real loopback TCP: every vector of the
protocol notes' table (section 7), byte for byte.
"""

import io

import pytest_twisted
from support import bounded
from twisted.internet import reactor

from txinferno.testing import EmbeddedRegistry, connectRaw, exchange


class Harness:
    """
    A running registry, an event watcher E opened first and helpers that
    talk raw bytes to the three ports.
    """

    def __init__(self, server):
        self.server = server
        self.events = None

    async def open(self):
        self.events = await self.connect(self.server.eventPort)
        assert await self.nextEvent() == b"READY"
        return self

    async def connect(self, port):
        d = connectRaw(reactor, self.server.host, port)
        return await bounded(d)

    async def nextEvent(self):
        return await bounded(self.events.readLine())

    async def find(self, query):
        d = exchange(reactor, self.server.host, self.server.findPort, query)
        return await bounded(d)

    async def new(self, line, event=None):
        """
        Register with C{line} and keep the connection; check the event.
        """
        conn = await self.connect(self.server.newPort)
        conn.send(line)
        if event is not None:
            assert await self.nextEvent() == event
        return conn

    async def rejected(self, line):
        """
        Send C{line} on a fresh C{new} connection: the server closes it
        without a byte.
        """
        conn = await self.connect(self.server.newPort)
        conn.send(line)
        assert await bounded(conn.whenClosed()) == b""

    async def closeAndWait(self, conn, event):
        await bounded(conn.close())
        assert await self.nextEvent() == event


async def harness(server):
    return await Harness(server).open()


@pytest_twisted.ensureDeferred
async def test_vectors1to12(registry_server):
    """
    Steps 1 to 12: READY, the empty registry, registration, queries,
    duplicate names, updates, attribute order, unregistering on close,
    persistence.
    """
    h = await harness(registry_server)
    assert await h.find(b"\n") == b""
    c3 = await h.new(b"myservice proto ssh descr 'an example'\n", b"00000001")
    expected = b"myservice descr 'an example' proto ssh\n"
    for query in (b"\n", b"proto ssh\n", b"proto *\n", b"descr 'an example'\n"):
        assert await h.find(query) == expected
    assert await h.find(b"proto tcp\n") == b""
    assert await h.find(b"proto\n") == expected

    await h.rejected(b"myservice proto tcp\n")
    assert registry_server.registry.version == 1

    c3.send(b"descr 'updated descr' port 22\n")
    assert await h.nextEvent() == b"00000002"
    assert await h.find(b"\n") == b"myservice port 22 descr 'updated descr' proto ssh\n"
    c3.send(b"proto udp\n")
    assert await h.nextEvent() == b"00000003"
    assert await h.find(b"\n") == b"myservice descr 'updated descr' port 22 proto udp\n"

    c10 = await h.new(b"other proto tcp addr 'tcp!host!22'\n", b"00000004")
    assert await h.find(b"addr tcp!host!22\n") == b"other addr tcp!host!22 proto tcp\n"

    await h.closeAndWait(c3, b"00000005")
    assert c3.received == b""
    assert await h.find(b"\n") == b"other addr tcp!host!22 proto tcp\n"

    c12 = await h.new(b"keeper proto ssh persist 1\n", b"00000006")
    await bounded(c12.close())
    c13 = await h.new(b"later x 1\n", b"00000007")
    assert await h.find(b"\n") == (
        b"other addr tcp!host!22 proto tcp\nkeeper persist 1 proto ssh\nlater x 1\n"
    )
    assert c10.received == c12.received == c13.received == b""


@pytest_twisted.ensureDeferred
async def test_vectors13and14Quoting(registry_server):
    """
    Steps 13 and 14: quoting on output, queries with quoted values, partial
    quoting and an unbalanced quote closed by the end of the write.
    """
    h = await harness(registry_server)
    await h.new(
        b"q1 descr 'it''s a test' empty '' eq a=b uni \xc3\xbc tab 'a\tb' nl 'x\ny'\n",
        b"00000001",
    )
    expected = b"q1 nl 'x\ny' tab 'a\tb' uni \xc3\xbc eq a=b empty '' descr 'it''s a test'\n"
    assert await h.find(b"\n") == expected
    for query in (b"descr 'it''s a test'\n", b"empty ''\n", b"uni \xc3\xbc\n"):
        assert await h.find(query) == expected
    await h.new(b"q2 v1 it''s v2 'unbalanced\n", b"00000002")
    assert await h.find(b"v1 its\n") == b"q2 v2 'unbalanced\n' v1 its\n"


@pytest_twisted.ensureDeferred
async def test_vectors15to17Rejections(registry_server):
    """
    Steps 15 to 17: bad names are closed without a byte or an event; a name
    followed by an odd number of words is taken then removed (one event);
    an odd update closes the connection and removes the service.
    """
    h = await harness(registry_server)
    for line in (b"\n", b"new x 1\n", b"index x 1\n", b"a/b x 1\n", b"'q 5' x 1\n"):
        await h.rejected(line)
    assert registry_server.registry.version == 0
    await h.rejected(b"r1 proto\n")
    assert await h.nextEvent() == b"00000001"
    r2 = await h.new(b"r2 a 1\n", b"00000002")
    r2.send(b"r2 b 2\n")
    assert await bounded(r2.whenClosed()) == b""
    assert await h.nextEvent() == b"00000003"
    assert await h.find(b"\n") == b""


@pytest_twisted.ensureDeferred
async def test_vector18AttributeOrder(registry_server):
    """
    Step 18: newest-first, and setting an existing attribute reverses those
    in front of it.
    """
    h = await harness(registry_server)
    conn = await h.new(b"svc1 a 1 b 2 c 3\n", b"00000001")
    assert await h.find(b"\n") == b"svc1 c 3 b 2 a 1\n"
    conn.send(b"a 9\n")
    assert await h.nextEvent() == b"00000002"
    assert await h.find(b"\n") == b"svc1 b 2 c 3 a 9\n"
    conn.send(b"d 4 b 7\n")
    assert await h.nextEvent() == b"00000003"
    assert await h.find(b"\n") == b"svc1 d 4 b 7 c 3 a 9\n"


@pytest_twisted.ensureDeferred
async def test_vectors19and20CarriageReturnAndNul(registry_server):
    """
    Steps 19 and 20: C{\\r} is part of a word; a value prints up to its NUL.
    """
    h = await harness(registry_server)
    await h.new(b"qb k v\r\n", b"00000001")
    await h.new(b"ql k v\x00w\n", b"00000002")
    assert await h.find(b"\n") == b"qb k 'v\r'\nql k v\n"


@pytest_twisted.ensureDeferred
async def test_vector21Matching(registry_server):
    """
    Step 21: every pair must match, C{*} needs the attribute, the name is
    not an attribute.
    """
    h = await harness(registry_server)
    await h.new(b"fa k 1 z 'two words'\n", b"00000001")
    await h.new(b"fb k 2 z y\n", b"00000002")
    await h.new(b"fc k 1\n", b"00000003")
    fa = b"fa z 'two words' k 1\n"
    assert await h.find(b"k 1\n") == fa + b"fc k 1\n"
    assert await h.find(b"k 1 z *\n") == fa
    assert await h.find(b"k 1 k 2\n") == b""
    assert await h.find(b"k *\n") == fa + b"fb z y k 2\nfc k 1\n"
    assert await h.find(b"name fa\n") == b""


@pytest_twisted.ensureDeferred
async def test_vector22SlotOrder(registry_server):
    """
    Step 22: removing a service moves the last one into its slot.
    """
    h = await harness(registry_server)
    conns = []
    for i, name in enumerate([b"A", b"B", b"C", b"D"], 1):
        conns.append(await h.new(name + b"\n", b"%08d" % i))
    await h.closeAndWait(conns[0], b"00000005")
    assert await h.find(b"\n") == b"D\nB\nC\n"


@pytest_twisted.ensureDeferred
async def test_vector23PersistValues(registry_server):
    """
    Step 23: C{persist} follows C{strtol}: non-zero keeps the service.
    """
    h = await harness(registry_server)
    kept = [b"1", b"-1", b"' 1'", b"1x", b"+2"]
    removed = [b"0", b"00", b"abc", b"0x1", b"''"]
    version = 0
    for i, value in enumerate(kept + removed):
        version += 1
        conn = await h.new(b"p%d persist %s\n" % (i, value), b"%08d" % version)
        await bounded(conn.close())
        if value in removed:
            version += 1
            assert await h.nextEvent() == b"%08d" % version
    version += 1
    await h.new(b"marker\n", b"%08d" % version)
    names = [line.split(b" ")[0] for line in (await h.find(b"\n")).splitlines()]
    assert sorted(names) == [b"marker", b"p0", b"p1", b"p2", b"p3", b"p4"]


@pytest_twisted.ensureDeferred
async def test_vector24PersistByUpdate(registry_server):
    """
    Step 24: C{persist} set by an update is read at close; the name stays
    taken.
    """
    h = await harness(registry_server)
    conn = await h.new(b"ps1 a 1\n", b"00000001")
    conn.send(b"persist 1\n")
    assert await h.nextEvent() == b"00000002"
    await bounded(conn.close())
    await h.new(b"marker\n", b"00000003")
    assert await h.find(b"a 1\n") == b"ps1 persist 1 a 1\n"
    await h.rejected(b"ps1 b 2\n")
    assert registry_server.registry.version == 3


@pytest_twisted.ensureDeferred
async def test_vector25StaticFile():
    """
    Step 25: a static attrdb entry is a persistent service; no event.
    """
    db = io.StringIO(
        "# static services\nservice=net!click!1234\n\tdescription='snapshot service' auth=none\n"
    )
    server = await EmbeddedRegistry(static=db).start()
    try:
        h = await harness(server)
        assert await h.find(b"\n") == b"net!click!1234 auth none description 'snapshot service'\n"
        assert server.registry.version == 0
        await h.rejected(b"net!click!1234 a 1\n")
        await server.restart()
        assert (
            await h.find(b"auth none\n")
            == b"net!click!1234 auth none description 'snapshot service'\n"
        )
    finally:
        await server.stop()
