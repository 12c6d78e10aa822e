"""
How L{txinferno.web.view.RegistryView} sends changes to its event
streams: the changes of a flush interval go out as one C{changes} event,
encoded once, in order, none lost; an idle view sends nothing.  Time is a
L{MemoryReactorClock}; the streams are real twisted.web requests of the
web port's site on L{StringTransport}s.
"""

import gc
import json
import random
import weakref

from support import RegistryChangeRecorder, onStringTransport
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.testing import MemoryReactorClock, StringTransport

from txinferno.server.change import ChangeKind, RegistryChange
from txinferno.server.protocols import RegistryServer
from txinferno.server.registry import Registry
from txinferno.web.site import WebService
from txinferno.web.view import FLUSH_INTERVAL
from txinferno.wire.words import formatLine, splitWords


class Served:
    """
    A registry server and the view of its web port, on one clock.
    """

    def __init__(self, **viewOptions):
        self.clock = MemoryReactorClock()
        self.server = RegistryServer(Registry(), self.clock, idleTimeout=None)
        self.recorder = RegistryChangeRecorder()
        self.server.registry.addChangeObserver(self.recorder)
        endpoint = TCP4ServerEndpoint(self.clock, 0, interface="127.0.0.1")
        self.web = WebService(endpoint, server=self.server, reactor=self.clock, **viewOptions)
        self.view = self.web.view
        self.view.start()

    def open(self, query=b""):
        """
        @return: the transport of a new event stream of C{query}, read up
            to its C{ready} event.
        """
        channel = self.web.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /v1/events%s HTTP/1.0\r\n\r\n" % (query,))
        assert [kind for kind, _ in events(transport)][-1] == "ready"
        transport.clear()
        return transport

    def connection(self):
        return onStringTransport(self.server.newFactory)[0]


def events(transport):
    """
    @return: the events written to C{transport} since it was last cleared,
        C{(kind, data)}.
    """
    value = transport.value()
    if value.startswith(b"HTTP/"):
        value = value.split(b"\r\n\r\n", 1)[1]
    found = []
    for block in value.split(b"\n\n"):
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        if b"event" in fields:
            found.append((fields[b"event"].decode(), json.loads(fields[b"data"])))
    return found


def test_burstIsOneEvent():
    """
    The changes made within one flush interval reach a stream as one
    C{changes} event holding all of them, in order, each with C{shown}.
    """
    s = Served()
    stream = s.open()
    connections = [s.connection() for _ in range(50)]
    for i, c in enumerate(connections):
        c.dataReceived(b"svc%d proto tcp\n" % (i,))
    assert stream.value() == b""
    s.clock.advance(0)
    [(kind, data)] = events(stream)
    assert kind == "changes"
    assert [c["name"] for c in data["changes"]] == ["svc%d" % (i,) for i in range(50)]
    assert [c["version"] for c in data["changes"]] == list(range(1, 51))
    assert data["changes"][0]["line"] == "svc0 proto tcp"
    assert data["shown"] == "1" * 50


def test_changeEntries():
    """
    A change's entry is its time to the millisecond, kind, version, name
    and line (the service after the change, before it for a removal) in
    the registry's quoting, from which the registry's own word rules give
    back the name and the attributes in order, whatever characters they
    hold; a rejection has its reason instead of a line.  The JSON is ASCII.
    """
    s = Served()
    stream = s.open()
    s.clock.advance(1234.56789 - s.clock.seconds())
    stream.clear()
    conn = s.connection()
    words = ["sv\u00e9c", "10", "", "d\tescr", "it's 'mine'\nreally", "\u2603", "\x01"]
    conn.dataReceived(formatLine(words))
    conn.dataReceived(formatLine(["10", "ten"]))
    found = s.server.registry[words[0]].line()
    s.connection().dataReceived(formatLine([words[0], "a", "b"]))
    conn.connectionLost(None)
    s.clock.advance(0)
    raw = stream.value()
    raw.decode("ascii")
    [(_, data)] = events(stream)
    registered, updated, rejected, removed = data["changes"]
    assert set(registered) == {"time", "kind", "version", "name", "line"}
    assert (registered["time"], registered["kind"], registered["version"]) == (
        1234.568,
        "registered",
        1,
    )
    assert registered["name"] == words[0]
    # Newest first, as the registry lists them.
    assert splitWords(registered["line"]) == [words[0], *words[5:], *words[3:5], *words[1:3]]
    assert updated["kind"] == "updated"
    assert updated["line"] + "\n" == found.decode()
    assert splitWords(updated["line"]) == [words[0], *words[3:], "10", "ten"]
    assert rejected == {
        "time": 1234.568,
        "kind": "rejected",
        "version": 2,
        "name": words[0],
        "reason": "duplicate service name",
    }
    assert removed["kind"] == "removed"
    assert removed["line"] == updated["line"]
    assert data["shown"] == "1100"


class _List(list):
    pass


def test_streamedChangeNotKept():
    """
    While streams are open, a change is kept until its flush as text only,
    not as the change and its attributes: objects held that long would
    outlive collections of the youngest generation and bring on full
    collections of a busy registry.
    """
    s = Served()
    stream = s.open(b"?proto=tcp")
    conn = s.connection()
    conn.dataReceived(b"svc proto tcp\n")
    s.clock.advance(FLUSH_INTERVAL)
    stream.clear()
    # A list of one's own, to be weakly referenced.
    change = RegistryChange(ChangeKind.updated, "svc", _List([("proto", "tcp")]), 2)
    told = weakref.ref(change)
    attributes = weakref.ref(change.attributes)
    s.view.registryChanged(change)
    del change
    assert (told(), attributes()) == (None, None)
    assert not any(gc.is_tracked(entry) for entry in s.view._unsent)
    s.clock.advance(FLUSH_INTERVAL)
    [(_, data)] = events(stream)
    assert (data["changes"][0]["line"], data["shown"]) == ("svc proto tcp", "1")


def test_flushInterval():
    """
    A change after a quiet time goes out at the end of the reactor's turn;
    the changes after it wait until a flush interval has passed since.
    """
    s = Served()
    stream = s.open()
    conn = s.connection()
    conn.dataReceived(b"svc a 0\n")
    s.clock.advance(0)
    assert [len(d["changes"]) for _, d in events(stream)] == [1]
    stream.clear()
    s.clock.advance(FLUSH_INTERVAL / 5)
    conn.dataReceived(b"a 1\n")
    s.clock.advance(FLUSH_INTERVAL / 5)
    conn.dataReceived(b"a 2\n")
    s.clock.advance(0)
    assert stream.value() == b""
    s.clock.advance(FLUSH_INTERVAL * 3 / 5 - 1e-6)
    assert stream.value() == b""
    s.clock.advance(2e-6)
    [(_, data)] = events(stream)
    assert [c["line"] for c in data["changes"]] == ["svc a 1", "svc a 2"]


def test_sameBytesForEveryStream():
    """
    Every stream of a query gets the same bytes; a stream of another query
    gets the same changes, with its own C{shown}.
    """
    s = Served()
    streams = [s.open() for _ in range(3)]
    filtered = s.open(b"?proto=http")
    web, ssh = s.connection(), s.connection()
    web.dataReceived(b"web proto http\n")
    ssh.dataReceived(b"ssh proto tcp\n")
    web.dataReceived(b"proto ftp\n")
    s.clock.advance(0)
    assert len({t.value() for t in streams}) == 1
    [(_, data)] = events(streams[0])
    [(_, mine)] = events(filtered)
    assert mine["changes"] == data["changes"]
    assert data["shown"] == "111"
    assert mine["shown"] == "100"


def test_noChangeLostOrReordered():
    """
    Whatever the timing of the changes and of the flushes, a stream gets
    every change of the registry once, in the registry's order.
    """
    rng = random.Random(13)
    s = Served()
    stream = s.open()
    held = {}
    received = []
    for step in range(2000):
        action = rng.random()
        name = b"svc%d" % (rng.randrange(40),)
        if action < 0.4 and name not in held:
            held[name] = s.connection()
            held[name].dataReceived(name + b" n %d\n" % (step,))
        elif action < 0.7 and name in held:
            held[name].dataReceived(b"n %d\n" % (step,))
        elif action < 0.8 and name in held:
            held.pop(name).connectionLost(None)
        else:
            s.clock.advance(rng.choice([0, FLUSH_INTERVAL / 3, FLUSH_INTERVAL]))
            received.extend(events(stream))
            stream.clear()
    s.clock.advance(FLUSH_INTERVAL)
    received.extend(events(stream))
    received = [(kind, data) for kind, data in received if kind != "sample"]
    assert {kind for kind, _ in received} == {"changes"}
    sent = [c for _, data in received for c in data["changes"]]
    told = s.recorder.changes
    assert len(told) > 1000
    assert [(c["kind"], c["name"], c["version"]) for c in sent] == [
        (c.kind.name, c.name, c.version) for c in told
    ]
    assert len(received) < len(told) / 2


def test_idleViewSendsNothing():
    """
    A view with open streams and no changes writes nothing and keeps no
    flush waiting.
    """
    s = Served()
    conn = s.connection()
    conn.dataReceived(b"svc a 0\n")
    stream = s.open()
    s.clock.advance(FLUSH_INTERVAL)
    for _ in range(10):
        s.clock.advance(FLUSH_INTERVAL)
    assert stream.value() == b""
    assert s.view._flushCall is None


def test_noStreamsNoFlush():
    """
    Without streams a view keeps no flush waiting, and keeps only the
    last changes (L{RegistryView.maxChanges}), made when they are read.
    """
    s = Served()
    calls = len(s.clock.getDelayedCalls())
    conn = s.connection()
    conn.dataReceived(b"svc a 0\n")
    for i in range(1000):
        conn.dataReceived(b"a %d\n" % (i,))
    assert len(s.clock.getDelayedCalls()) == calls
    assert len(s.view._pending) <= 2 * s.view.maxChanges
    assert [c["line"] for c in s.view.changes] == ["svc a %d" % (i,) for i in range(800, 1000)]
    assert s.view._pending == []


def test_joiningStream():
    """
    The changes told before a stream opens are in its snapshot and not
    sent to it again; the streams open before get them at once.
    """
    s = Served()
    first = s.open()
    conn = s.connection()
    conn.dataReceived(b"svc a 0\n")
    second = s.open()
    [(_, data)] = events(first)
    assert [c["name"] for c in data["changes"]] == ["svc"]
    first.clear()
    s.clock.advance(FLUSH_INTERVAL)
    assert second.value() == b"" and first.value() == b""
    conn.dataReceived(b"a 1\n")
    s.clock.advance(FLUSH_INTERVAL)
    assert first.value() == second.value() != b""


def test_oneLargeEventKept():
    """
    A stream that cannot write keeps one event larger than its buffer's
    bound (a burst's changes, shared by the streams) and sends it once it
    can; a second event past the bound starts it again from a snapshot.
    """
    s = Served(maxBuffer=4096)
    transport = s.open()
    [stream] = s.view.streams
    stream.pauseProducing()
    connections = [s.connection() for _ in range(100)]
    for i, c in enumerate(connections):
        c.dataReceived(b"svc%d proto tcp\n" % (i,))
    s.clock.advance(0)
    assert stream._pendingBytes > stream.maxBuffer
    assert s.view.streamsResynced == 0
    stream.resumeProducing()
    [(_, data)] = events(transport)
    assert len(data["changes"]) == 100
    transport.clear()
    stream.pauseProducing()
    for c in connections[:60]:
        c.dataReceived(b"a 1\n")
    s.clock.advance(FLUSH_INTERVAL)
    for c in connections[60:]:
        c.dataReceived(b"a 1\n")
    s.clock.advance(FLUSH_INTERVAL)
    assert s.view.streamsResynced == 1
    stream.resumeProducing()
    assert [kind for kind, _ in events(transport)][0] == "snapshot"


def test_resyncsShareTheSnapshot():
    """
    Streams falling behind the same burst start again together, from one
    snapshot of their query, made once for all of them (each of another
    query from its own).
    """
    s = Served(maxBuffer=4096)
    for query in (b"", b"", b"?proto=tcp"):
        s.open(query)
    streams = sorted(s.view.streams, key=lambda stream: stream.words)
    for stream in streams:
        stream.pauseProducing()
    connections = [s.connection() for _ in range(100)]
    for i, c in enumerate(connections):
        c.dataReceived(b"svc%d proto tcp\n" % (i,))
    s.clock.advance(0)
    for c in connections:
        c.dataReceived(b"a 1\n")
    s.clock.advance(FLUSH_INTERVAL)
    assert s.view.streamsResynced == 3
    first, second, other = [next(stream._services) for stream in streams]
    assert first is second
    assert first.startswith(b"event: snapshot\n")
    assert json.loads(first.split(b"data: ", 1)[1])["query"] == []
    assert json.loads(other.split(b"data: ", 1)[1])["query"] == ["proto", "tcp"]
