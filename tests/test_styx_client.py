"""
Tests for the Styx client: L{txinferno.client.styx} (the protocol and its
factory) in memory, and L{txinferno.client.styxconnection} (the connection
plugin) against the embedded registry's Styx server over loopback.
"""

import dataclasses

import pytest
import pytest_twisted
from support import (
    Greeter,
    Reader,
    bounded,
    failureResultOf,
    managerFor,
    registryServices,
    tapOptions,
    turnUntil,
    whenRegistry,
)
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, DeferredList, gatherResults
from twisted.internet.endpoints import (
    TCP4ServerEndpoint,
    clientFromString,
    quoteStringArgument,
    serverFromString,
)
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from zope.interface.verify import verifyObject

from txinferno.client.manager import RegistryManager
from txinferno.client.monitor import Monitor
from txinferno.client.service import ServiceTask
from txinferno.client.styx import _DECODERS, _ENCODERS, StyxClientProtocol
from txinferno.client.styxconnection import StyxRegistryConnection
from txinferno.client.tcp import connectionFromString
from txinferno.errors import (
    AnswerTooLarge,
    AuthenticationRequired,
    MalformedAnswer,
    RegistrationLost,
    RegistrationRejected,
    RegistryError,
    RegistryTimeout,
    RegistryUnavailable,
)
from txinferno.interfaces import IChangeStream, IRegistration, IRegistryConnection
from txinferno.regquery import ERROR, FOUND, run
from txinferno.tap import makeService
from txinferno.testing.faultproxy import FaultProxy
from txinferno.testing.recorders import MonitorRecorder
from txinferno.testing.sockets import clientSockets
from txinferno.wire.styx import (
    NOFID,
    NOTAG,
    OWRITE,
    FrameSplitter,
    Qid,
    Rattach,
    Rclunk,
    Rerror,
    Rflush,
    Ropen,
    Rread,
    Rversion,
    Rwalk,
    Rwrite,
    Tattach,
    Tclunk,
    Tflush,
    Topen,
    Tread,
    Tremove,
    Tstat,
    Tversion,
    Twalk,
    Twrite,
    decode,
)

ROOT = Qid(0x80, 0, 0)
FILE = Qid(0, 0, 1)


class FakeServer:
    """
    The server end of a L{StyxClientProtocol} on a L{StringTransport}:
    decodes what the client sent and feeds it answers.
    """

    def __init__(self, protocol, clock):
        self.protocol = protocol
        self.clock = clock
        self.transport = StringTransport()
        self._splitter = FrameSplitter(1 << 20)
        protocol.makeConnection(self.transport)

    def received(self):
        """
        @return: the messages the client sent since the last call (those
        it holds until the next turn of its clock included).
        """
        self.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        return [decode(frame) for frame in self._splitter.feed(data)]

    def answer(self, *messages):
        self.protocol.dataReceived(b"".join(m.encode() for m in messages))

    def handshake(self, msize=8192):
        [version] = self.received()
        self.answer(Rversion(version.tag, msize, "9P2000"))
        [attach] = self.received()
        self.answer(Rattach(attach.tag, ROOT))
        return version, attach

    def lose(self, reason=None):
        self.protocol.connectionLost(Failure(reason or ConnectionLost("gone")))


def connected(user="alice", **options):
    clock = Clock()
    protocol = StyxClientProtocol(user, clock, **options)
    return FakeServer(protocol, clock)


def ready(**options):
    server = connected(**options)
    server.handshake()
    assert server.protocol.state == "ready"
    return server


def results(d):
    """
    @return: a list that gets C{d}'s result, or its L{Failure}.
    """
    got = []
    d.addBoth(got.append)
    return got


# The handshake.


def test_handshake():
    """
    The client proposes its maximum message size and 9P2000 with NOTAG,
    takes the server's smaller size, and attaches the root fid as its
    user with no auth fid.
    """
    server = connected(user="alice", maxMessageSize=8216)
    got = results(server.protocol.ready)
    [version] = server.received()
    assert version == Tversion(NOTAG, 8216, "9P2000")
    server.answer(Rversion(NOTAG, 4096, "9P2000"))
    [attach] = server.received()
    assert attach == Tattach(attach.tag, 0, NOFID, "alice", "")
    assert got == []
    server.answer(Rattach(attach.tag, ROOT))
    assert got == [server.protocol]
    assert server.protocol.msize == 4096
    assert server.protocol.maxIO == 4096 - 24


@pytest.mark.parametrize(
    "answer, message",
    [
        (Rversion(NOTAG, 8192, "unknown"), "answered Tversion"),
        (Rversion(NOTAG, 100000, "9P2000"), "message size 100000"),
        (Rversion(NOTAG, 64, "9P2000"), "message size 64"),
        (Rerror(NOTAG, "message size too small"), "refused Tversion: message size too small"),
    ],
)
def test_versionRefused(answer, message):
    """
    A Tversion answered with another version, a size out of range or an
    error fails the handshake with what the server said, and drops the
    connection.
    """
    server = connected()
    got = results(server.protocol.ready)
    server.received()
    server.answer(answer)
    assert server.transport.disconnecting
    server.lose()
    assert got[0].check(MalformedAnswer)
    assert message in str(got[0].value)


def test_attachRefused():
    server = connected()
    got = results(server.protocol.ready)
    [version] = server.received()
    server.answer(Rversion(NOTAG, 8192, "9P2000"))
    [attach] = server.received()
    server.answer(Rerror(attach.tag, "permission denied"))
    server.lose()
    assert got[0].check(MalformedAnswer)
    assert "refused Tattach: permission denied" in str(got[0].value)


def test_handshakeTimeout():
    """
    A server that never answers Tversion fails the handshake after the
    timeout, and the error tells of listen -A.
    """
    server = connected(timeout=5)
    got = results(server.protocol.ready)
    server.clock.advance(4.9)
    assert got == []
    server.clock.advance(0.2)
    assert server.transport.disconnecting
    server.lose()
    assert got[0].check(RegistryTimeout)
    assert "listen -A" in str(got[0].value)


@pytest.mark.parametrize(
    "data",
    [
        b"0023\n" + b"x" * 23,
        b"!012\nremote: bad",
        b"0000\n",
    ],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_authenticationDetected(data, chunked):
    """
    A server that speaks Inferno's authentication protocol (C{listen}
    without C{-A}) fails the handshake with L{AuthenticationRequired},
    telling to export with C{listen -A}, even one byte at a time.
    """
    server = connected()
    got = results(server.protocol.ready)
    server.received()
    if chunked:
        for i in range(len(data)):
            server.protocol.dataReceived(data[i : i + 1])
    else:
        server.protocol.dataReceived(data)
    assert server.transport.disconnecting
    server.lose()
    assert got[0].check(AuthenticationRequired)
    assert "listen -A" in str(got[0].value)
    assert "authentication protocol" in str(got[0].value)


def test_closedBeforeVersion():
    """
    A server that closes the connection without answering Tversion (as
    Inferno's authentication does on bytes it cannot read) fails the
    handshake with L{AuthenticationRequired}.
    """
    server = connected()
    got = results(server.protocol.ready)
    server.received()
    server.protocol.dataReceived(b"00")
    server.lose(ConnectionDone("closed"))
    assert got[0].check(AuthenticationRequired)
    assert "listen -A" in str(got[0].value)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"HTTP/1.1 400 Bad Request\r\n", "not Styx"),
        (b"\x05\x00\x00\x00\x65\xff\xff", "not Styx"),
        (Rwrite(NOTAG, 1).encode(), "answered Tversion"),
    ],
)
def test_notStyx(data, message):
    """
    Bytes that are neither Styx nor authentication fail the handshake
    with L{MalformedAnswer}: never a hang or a garbage parse.
    """
    server = connected()
    got = results(server.protocol.ready)
    server.received()
    server.protocol.dataReceived(data)
    assert server.transport.disconnecting
    server.lose()
    assert got[0].check(MalformedAnswer)
    assert message in str(got[0].value)


def test_versionInOneByteChunks():
    server = connected()
    got = results(server.protocol.ready)
    server.received()
    data = Rversion(NOTAG, 8192, "9P2000").encode()
    for i in range(len(data)):
        server.protocol.dataReceived(data[i : i + 1])
    [attach] = server.received()
    server.answer(Rattach(attach.tag, ROOT))
    assert got == [server.protocol]


# Tags.


def test_tagsDistinctAndAnswersByTag():
    """
    Requests outstanding together have distinct tags, and each answer goes
    to the request of its tag, in whatever order they come.
    """
    server = ready()
    p = server.protocol
    a = results(p.read(1, 0, 10))
    b = results(p.read(2, 0, 10))
    ta, tb = server.received()
    assert ta.tag != tb.tag
    assert NOTAG not in (ta.tag, tb.tag)
    server.answer(Rread(tb.tag, b"bee"), Rread(ta.tag, b"ay"))
    assert (a, b) == ([b"ay"], [b"bee"])


def test_tagReused():
    server = ready()
    p = server.protocol
    p.read(1, 0, 10)
    [first] = server.received()
    server.answer(Rread(first.tag, b""))
    p.read(1, 0, 10)
    [second] = server.received()
    assert second.tag == first.tag


def test_rerror():
    server = ready()
    got = results(server.protocol.write(3, 0, b"x"))
    [write] = server.received()
    server.answer(Rerror(write.tag, "duplicate service name"))
    assert got[0].check(RegistryError)
    assert got[0].value.text == "duplicate service name"


def test_answerOfTheWrongType():
    """
    An answer whose type is not the request's drops the connection.
    """
    server = ready()
    got = results(server.protocol.read(1, 0, 10))
    [read] = server.received()
    server.answer(Rwrite(read.tag, 3))
    assert server.transport.disconnecting
    server.lose()
    assert got[0].check(MalformedAnswer)
    assert "answered Tread with" in str(got[0].value)


def test_answerOfNoRequest():
    server = ready()
    server.answer(Rclunk(77))
    assert server.transport.disconnecting


def test_maxOutstanding():
    """
    Beyond C{maxOutstanding} requests wait, in order, for a tag.
    """
    server = ready(maxOutstanding=2)
    p = server.protocol
    got = [results(p.read(fid, 0, 10)) for fid in (1, 2, 3)]
    first, second = server.received()
    assert [m.fid for m in (first, second)] == [1, 2]
    server.answer(Rread(first.tag, b"one"))
    [third] = server.received()
    assert third.fid == 3 and third.tag == first.tag
    server.answer(Rread(second.tag, b"two"), Rread(third.tag, b"three"))
    assert got == [[b"one"], [b"two"], [b"three"]]


# Flush, timeouts, the connection's loss.


def test_flushOnCancel():
    """
    Cancelling a request sends a Tflush of its tag; the caller gets
    L{CancelledError} at once; the tag is not reused until the Rflush.
    """
    server = ready()
    p = server.protocol
    d = p.read(1, 0, 10, timeout=None)
    got = results(d)
    [read] = server.received()
    d.cancel()
    assert got[0].check(CancelledError)
    [flush] = server.received()
    assert flush == Tflush(flush.tag, read.tag)
    other = results(p.read(2, 0, 10))
    [second] = server.received()
    assert second.tag not in (read.tag, flush.tag)
    server.answer(Rflush(flush.tag))
    server.answer(Rread(second.tag, b"x"))
    assert other == [b"x"]
    p.read(3, 0, 10)
    p.read(4, 0, 10)
    reused = {m.tag for m in server.received()}
    assert read.tag in reused


def test_answerBeforeRflush():
    """
    The answer of a flushed request, arriving before the Rflush, is
    dropped; the Rflush that follows is taken.
    """
    server = ready()
    p = server.protocol
    d = p.read(1, 0, 10, timeout=None)
    [read] = server.received()
    d.cancel()
    failureResultOf(d, CancelledError)
    [flush] = server.received()
    server.answer(Rread(read.tag, b"late"), Rflush(flush.tag))
    assert not server.transport.disconnecting
    assert p._outstanding == {}


def test_cancelWaiting():
    """
    A request cancelled before it had a tag is never sent.
    """
    server = ready(maxOutstanding=1)
    p = server.protocol
    p.read(1, 0, 10)
    waiting = p.read(2, 0, 10)
    got = results(waiting)
    [first] = server.received()
    waiting.cancel()
    assert got[0].check(CancelledError)
    server.answer(Rread(first.tag, b""))
    assert server.received() == []


def test_timeout():
    """
    A request not answered within the timeout fails with
    L{RegistryTimeout} and is flushed; a Tflush not answered either drops
    the connection.
    """
    server = ready(timeout=3)
    p = server.protocol
    got = results(p.read(1, 0, 10))
    [read] = server.received()
    server.clock.advance(3)
    assert got[0].check(RegistryTimeout)
    assert "did not answer Tread within 3 s" in str(got[0].value)
    [flush] = server.received()
    assert isinstance(flush, Tflush) and flush.oldtag == read.tag
    assert not server.transport.disconnecting
    server.clock.advance(3)
    assert server.transport.disconnecting


def test_noTimeout():
    server = ready(timeout=3)
    got = results(server.protocol.read(1, 0, 10, timeout=None))
    server.clock.advance(1000)
    assert got == []


def test_connectionLostErrbacksOutstanding():
    """
    Every request outstanding, and every one waiting for a tag, fails with
    the reason the connection was lost; requests made afterwards fail at
    once.
    """
    server = ready(maxOutstanding=1)
    p = server.protocol
    sent = results(p.read(1, 0, 10, timeout=None))
    waiting = results(p.read(2, 0, 10))
    server.lose(ConnectionLost("cable cut"))
    assert sent[0].check(ConnectionLost) and waiting[0].check(ConnectionLost)
    after = results(p.read(3, 0, 10))
    assert after[0].check(ConnectionLost)


def test_usable():
    """
    A protocol is usable from the end of its handshake until it is aborted
    (before the loss that follows is delivered) or lost.
    """
    server = connected()
    assert not server.protocol.usable
    server.handshake()
    assert server.protocol.usable
    server.protocol.abort(MalformedAnswer("nonsense"))
    assert server.transport.disconnecting and not server.protocol.usable
    other = ready()
    other.lose()
    assert not other.protocol.usable


def test_handshakeLost():
    server = connected()
    got = results(server.protocol.ready)
    server.received()
    server.answer(Rversion(NOTAG, 8192, "9P2000"))
    server.lose(ConnectionLost("cable cut"))
    assert got[0].check(ConnectionLost)


# Sizes.


def test_readCutToMsize():
    server = ready()
    server.protocol.read(1, 0, 1 << 20)
    [read] = server.received()
    assert read.count == 8192 - 24


def test_writeOverMsize():
    """
    A write longer than one message carries is refused before anything is
    sent: the registry reads each Twrite by itself.
    """
    server = ready()
    server.protocol.write(1, 0, b"x" * (8192 - 24))
    server.received()
    with pytest.raises(ValueError, match="over the 8168"):
        server.protocol.write(1, 0, b"x" * (8192 - 23))
    assert server.received() == []


def test_messageOverMsize():
    """
    An answer longer than the negotiated size drops the connection.
    """
    server = ready()
    got = results(server.protocol.read(1, 0, 100))
    [read] = server.received()
    server.answer(Rread(read.tag, b"x" * 8192))
    assert server.transport.disconnecting
    server.lose()
    assert got[0].check(MalformedAnswer)


def test_minimumSize():
    with pytest.raises(ValueError, match="under the minimum"):
        StyxClientProtocol("u", Clock(), maxMessageSize=255)


# Fids.


def test_fids():
    """
    Fids are distinct from the root and each other; a clunked fid is free
    once the server answers; a walk that fails or stops part way frees its
    new fid.
    """
    server = ready()
    p = server.protocol
    a, b = p.allocateFid(), p.allocateFid()
    assert len({p.rootFid, a, b}) == 3
    p.clunk(a)
    [clunk] = server.received()
    assert clunk == Tclunk(clunk.tag, a)
    assert p.allocateFid() not in (a, b)
    server.answer(Rclunk(clunk.tag))
    assert p.allocateFid() == a

    c = p.allocateFid()
    got = results(p.walk(p.rootFid, c, ["nope"]))
    [walk] = server.received()
    assert walk == Twalk(walk.tag, p.rootFid, c, ("nope",))
    server.answer(Rerror(walk.tag, "file does not exist"))
    assert got[0].value.text == "file does not exist"
    assert p.allocateFid() == c

    d = p.allocateFid()
    got = results(p.walk(p.rootFid, d, ["a", "b"]))
    [walk] = server.received()
    server.answer(Rwalk(walk.tag, (ROOT,)))
    assert got[0].check(RegistryError)
    assert p.allocateFid() == d


def test_walkGivenUp():
    """
    A walk given up may still be made by the server: its fid is clunked and
    never used again on the connection.
    """
    server = ready()
    p = server.protocol
    fid = p.allocateFid()
    d = p.walk(p.rootFid, fid, ["new"])
    server.received()
    d.cancel()
    failureResultOf(d, CancelledError)
    kinds = {type(m) for m in server.received()}
    assert kinds == {Tflush, Tclunk}
    assert fid not in [p.allocateFid() for _ in range(5)]


def test_openWriteClunkSequence():
    """
    The file operations send the messages they name.
    """
    server = ready()
    p = server.protocol
    got = results(p.open(5, OWRITE))
    [open_] = server.received()
    assert open_ == Topen(open_.tag, 5, OWRITE)
    server.answer(Ropen(open_.tag, FILE, 0))
    assert got[0].iounit == 0
    got = results(p.write(5, 0, b"svc a b"))
    [write] = server.received()
    assert write == Twrite(write.tag, 5, 0, b"svc a b")
    server.answer(Rwrite(write.tag, 7))
    assert got == [7]
    assert isinstance(p.read(5, 9, 100), object)
    [read] = server.received()
    assert read == Tread(read.tag, 5, 9, 100)


# Requests without a Deferred, pipelines, batched writes, the fast codecs.


def test_callAnswered():
    """
    L{StyxClientProtocol.call} gives its callable the answer, or a
    L{Failure} of the server's error text; a walk that stops part way
    fails as C{file does not exist} and frees its new fid.
    """
    server = ready()
    p = server.protocol
    got = []
    p.call(Twrite, (5, 0, b"svc a b"), got.append)
    fid = p.allocateFid()
    p.call(Twalk, (p.rootFid, fid, ("a", "b")), got.append)
    p.call(Topen, (6, OWRITE), got.append)
    write, walk, open_ = server.received()
    assert write == Twrite(write.tag, 5, 0, b"svc a b")
    assert walk == Twalk(walk.tag, p.rootFid, fid, ("a", "b"))
    server.answer(Rwrite(write.tag, 7), Rwalk(walk.tag, (ROOT,)), Rerror(open_.tag, "bad argument"))
    assert got[0] == Rwrite(write.tag, 7)
    assert got[1].value.text == "file does not exist"
    assert got[2].value.text == "bad argument"
    assert p.allocateFid() == fid
    assert p._outstanding == {}


def test_callGivenUp():
    """
    A request given up is flushed and its callable never called, even if
    its answer still comes before the Rflush; a walk given up is clunked,
    and its fid not used again.
    """
    server = ready()
    p = server.protocol
    got = []
    fid = p.allocateFid()
    walking = p.call(Twalk, (p.rootFid, fid, ("new",)), got.append)
    p.call(Tread, (1, 0, 10), got.append)
    walk, read = server.received()
    p.giveUp(walking)
    p.giveUp(walking)
    flush, clunk = server.received()
    assert flush == Tflush(flush.tag, walk.tag) and clunk == Tclunk(clunk.tag, fid)
    server.answer(Rwalk(walk.tag, (FILE,)), Rflush(flush.tag), Rclunk(clunk.tag))
    server.answer(Rread(read.tag, b"x"))
    assert got == [Rread(read.tag, b"x")]
    assert server.received() == []
    assert fid not in [p.allocateFid() for _ in range(3)]


def test_callGivenUpWaiting():
    """
    A request given up while it waits for a tag is never sent.
    """
    server = ready(maxOutstanding=1)
    p = server.protocol
    got = []
    p.call(Tread, (1, 0, 10), got.append)
    waiting = p.call(Tread, (2, 0, 10), got.append)
    [read] = server.received()
    p.giveUp(waiting)
    server.answer(Rread(read.tag, b""))
    assert got == [Rread(read.tag, b"")]
    assert server.received() == []


def test_callTimeout():
    server = ready(timeout=2)
    p = server.protocol
    got = []
    p.call(Twrite, (5, 0, b"x"), got.append)
    [write] = server.received()
    server.clock.advance(2)
    assert got[0].check(RegistryTimeout)
    assert "did not answer Twrite within 2 s" in str(got[0].value)
    [flush] = server.received()
    assert flush == Tflush(flush.tag, write.tag)
    server.answer(Rwrite(write.tag, 1), Rflush(flush.tag))
    assert len(got) == 1
    assert not server.transport.disconnecting


def registrationsInFlight(server, count):
    """
    Start C{count} registrations, each a walk to C{new}, an open and a
    write sent as the answer before comes, all side by side.

    @return: what each one ended with, by its index.
    """
    p = server.protocol
    ended = {}

    def register(i):
        fid = p.allocateFid()

        def walked(result):
            if isinstance(result, Failure):
                ended[i] = result
            else:
                p.call(Topen, (fid, OWRITE), opened)

        def opened(result):
            if isinstance(result, Failure):
                ended[i] = result
            else:
                p.call(Twrite, (fid, 0, b"svc%d" % (i,)), written)

        def written(result):
            ended[i] = result

        p.call(Twalk, (p.rootFid, fid, ("new",)), walked)

    for i in range(count):
        register(i)
    return ended


def test_pipelineLostMidway():
    """
    Registrations in flight side by side, each at another step, and more
    waiting for a tag: when the connection is lost every one of them ends
    with the loss, once, and none is sent afterwards.
    """
    server = ready(maxOutstanding=8)
    ended = registrationsInFlight(server, 6)
    walks = server.received()
    assert [type(m) for m in walks] == [Twalk] * 6
    server.answer(*[Rwalk(m.tag, (FILE,)) for m in walks[:3]])
    opens = server.received()
    assert [type(m) for m in opens] == [Topen] * 3
    server.answer(Ropen(opens[0].tag, FILE, 0))
    [write] = server.received()
    assert isinstance(write, Twrite)
    ended.update(registrationsInFlight(server, 6))
    assert len(server.received()) == 2
    assert len(server.protocol._waiting) == 4
    server.lose(ConnectionLost("cable cut"))
    assert len(ended) == 6
    assert all(r.check(ConnectionLost) for r in ended.values())
    assert server.received() == []


def test_pipelineRejectedWrite():
    """
    A write the registry rejects, among others in flight, fails with its
    text; the others are answered as they come.
    """
    server = ready()
    ended = registrationsInFlight(server, 3)
    walks = server.received()
    server.answer(*[Rwalk(m.tag, (FILE,)) for m in walks])
    opens = server.received()
    server.answer(*[Ropen(m.tag, FILE, 0) for m in opens])
    writes = server.received()
    assert [m.data for m in writes] == [b"svc0", b"svc1", b"svc2"]
    server.answer(
        Rwrite(writes[0].tag, 4),
        Rerror(writes[1].tag, "duplicate service name"),
        Rwrite(writes[2].tag, 4),
    )
    assert ended[0] == Rwrite(writes[0].tag, 4) and ended[2] == Rwrite(writes[2].tag, 4)
    assert ended[1].value.text == "duplicate service name"
    assert server.protocol._outstanding == {}


class CountingTransport(StringTransport):
    def __init__(self):
        StringTransport.__init__(self)
        self.writes = 0

    def write(self, data):
        self.writes += 1
        StringTransport.write(self, data)


def test_writesBatched():
    """
    Requests made together go out in one write, on the next turn of the
    clock; those the answers of one read cause, in one write at its end;
    what is held is written before the connection is closed.
    """
    clock = Clock()
    protocol = StyxClientProtocol("alice", clock)
    server = FakeServer(protocol, clock)
    server.handshake()
    transport = server.transport = CountingTransport()
    protocol.transport = transport
    for fid in range(1, 11):
        protocol.call(Tread, (fid, 0, 10), lambda _: None)
    assert transport.writes == 0
    clock.advance(0)
    assert transport.writes == 1
    reads = server.received()
    assert [m.fid for m in reads] == list(range(1, 11))

    def again(result):
        protocol.call(Tclunk, (int(result.data),), lambda _: None)

    for m in reads:
        protocol._outstanding[m.tag].answered = again
    protocol.dataReceived(b"".join(Rread(m.tag, b"%d" % m.fid).encode() for m in reads))
    assert transport.writes == 2
    assert [m.fid for m in server.received()] == list(range(1, 11))
    protocol.call(Tclunk, (20,), lambda _: None)
    protocol.flush()
    assert transport.writes == 3
    assert protocol._flushCall is None


@pytest.mark.parametrize(
    "message",
    [
        Twalk(3, 0, 7, ("new",)),
        Twalk(4, 1, 2, ()),
        Twalk(5, 1, 2, ("a", "ünï", "c" * 300)),
        Topen(6, 9, OWRITE),
        Twrite(7, 9, 2**40, b"svc a b"),
        Twrite(8, 9, 0, b""),
        Tread(9, 9, 17, 8192),
        Tclunk(10, 2**32 - 1),
        Tremove(11, 3),
        Tstat(12, 0),
        Tflush(13, 12),
    ],
)
def test_encodersAsTheCodec(message):
    """
    The client's own encoders give the codec's bytes.
    """
    fields = tuple(getattr(message, f.name) for f in dataclasses.fields(message))
    assert _ENCODERS[type(message)](*fields) == message.encode()


@pytest.mark.parametrize(
    "fields",
    [(0, 2**32, ("new",)), (0, 1, ("x",) * 17)],
)
def test_encoderRangeChecked(fields):
    """
    A field out of range is a L{ValueError} before anything is sent, and
    takes no tag.
    """
    server = ready()
    p = server.protocol
    with pytest.raises(ValueError):
        p.call(Twalk, fields, lambda _: None)
    assert server.received() == [] and p._outstanding == {}


def test_encoderRangeCheckedWaiting():
    """
    A request that cannot be encoded, sent once a tag is free, fails with
    the L{ValueError}; the others go on.
    """
    server = ready(timeout=2, maxOutstanding=1)
    p = server.protocol
    got = []
    p.call(Tread, (1, 0, 10), got.append)
    p.call(Twalk, (0, 1, ("x",) * 17), got.append)
    p.call(Tread, (2, 0, 10), got.append)
    [first] = server.received()
    server.answer(Rread(first.tag, b"a"))
    [second] = server.received()
    assert second.fid == 2
    [failed] = [r for r in got if isinstance(r, Failure)]
    assert failed.check(ValueError)
    assert Rread(first.tag, b"a") in got
    server.answer(Rread(second.tag, b"b"))
    server.clock.advance(3)
    assert len(got) == 3
    assert not server.transport.disconnecting


@pytest.mark.parametrize(
    "message",
    [
        Rwalk(1, ()),
        Rwalk(2, (FILE, ROOT, Qid(0, 7, 2**60))),
        Ropen(3, Qid(0, 1, 0x15), 8168),
        Rwrite(4, 2**32 - 1),
    ],
)
def test_decodersAsTheCodec(message):
    data = message.encode()
    assert _DECODERS[message.TYPE](message.tag, data) == decode(data)


@pytest.mark.parametrize(
    "cls, frame",
    [
        (Twalk, Rwalk(0, (FILE,)).encode()[:-1]),
        (Twalk, Rwalk(0, (FILE,)).encode() + b"x"),
        (Twalk, b"\x09\x00\x00\x00\x6f\x00\x00\x11\x00"),
        (Twalk, b"\x08\x00\x00\x00\x6f\x00\x00\x00"),
        (Topen, Ropen(0, FILE, 0).encode()[:-1]),
        (Twrite, Rwrite(0, 1).encode() + b"\x00"),
    ],
)
def test_malformedAnswer(cls, frame):
    """
    A malformed answer of a request the client decodes itself drops the
    connection with L{MalformedAnswer}, and the request fails with it.
    """
    server = ready()
    got = []
    fields = {Twalk: (0, 1, ("new",)), Topen: (1, OWRITE), Twrite: (1, 0, b"x")}[cls]
    server.protocol.call(cls, fields, got.append)
    [sent] = server.received()
    frame = (
        len(frame).to_bytes(4, "little") + frame[4:5] + sent.tag.to_bytes(2, "little") + frame[7:]
    )
    server.protocol.dataReceived(frame)
    assert server.transport.disconnecting
    server.lose()
    assert got[0].check(MalformedAnswer)
    assert "malformed message" in str(got[0].value)


# The connection plugin, over loopback against the embedded registry.


def styxDescription(server, user=None):
    host, port = server.styxAddress
    description = "styx:%s:%d" % (host, port)
    return description + (":user=%s" % (user,) if user else "")


def styxConnection(server, user=None, **options):
    options.setdefault("initialDelay", 0.05)
    return connectionFromString(reactor, styxDescription(server, user), **options)


class StreamRecorder(MonitorRecorder):
    """
    Records what a change stream reports: C{("ready",)},
    C{("changed", version)} and C{("lost", reason)}.
    """

    def streamReady(self):
        self._record(("ready",))

    def registryChanged(self, version):
        self._record(("changed", version))

    def streamLost(self, reason):
        self._record(("lost", reason))


def styxSockets(server):
    return clientSockets(server.styxAddress[1])


async def whenSockets(server, count):
    """
    Wait until this process holds C{count} client sockets to the Styx port.
    """
    await turnUntil(lambda: styxSockets(server) == count, 0.02)


def test_verifyObject(registry_server):
    conn = styxConnection(registry_server)
    verifyObject(IRegistryConnection, conn)
    assert isinstance(conn, StyxRegistryConnection)
    assert conn.description == styxDescription(registry_server)


@pytest_twisted.ensureDeferred
async def test_registerUpdateUnregister(registry_server):
    """
    A registration is in the registry when its Deferred fires; updates
    reach it; unregistering removes it.
    """
    conn = styxConnection(registry_server, user="alice")
    reg = await bounded(conn.register("svc1", {"proto": "ssh", "port": "22"}))
    verifyObject(IRegistration, reg)
    assert registryServices(registry_server)["svc1"] == {"proto": "ssh", "port": "22"}
    reg.update({"port": "2222", "x": "a b"})
    await whenRegistry(registry_server, lambda r: r["svc1"].get("x") == "a b")
    assert reg.attrs == {"proto": "ssh", "port": "2222", "x": "a b"}
    lost = reg.whenLost()
    await bounded(reg.unregister())
    assert "svc1" not in registryServices(registry_server)
    assert await bounded(lost) is None
    with pytest.raises(RegistrationLost):
        reg.update({"a": "b"})


@pytest_twisted.ensureDeferred
async def test_rejectedAtOnce(registry_server):
    """
    A duplicate fails at once with the registry's own text, and leaves
    nothing behind.
    """
    tcp = connectionFromString(reactor, registry_server.description)
    held = await bounded(tcp.register("dup", {"a": "1"}))
    conn = styxConnection(registry_server)
    with pytest.raises(RegistrationRejected) as e:
        await bounded(conn.register("dup", {"a": "2"}), 2)
    assert e.value.reason == "duplicate service name"
    assert registryServices(registry_server) == {"dup": {"a": "1"}}
    await bounded(held.unregister())


@pytest_twisted.ensureDeferred
async def test_findAndMixedUse(registry_server):
    """
    A service registered over Styx is found over TCP and the other way
    round; a query matches as the find port's does; an answer longer than
    one read is read whole.
    """
    tcp = connectionFromString(reactor, registry_server.description)
    styx = styxConnection(registry_server)
    a = await bounded(styx.register("viaStyx", {"proto": "ssh"}))
    b = await bounded(tcp.register("viaTCP", {"proto": "http"}))
    assert set(await bounded(tcp.find({}))) == {"viaStyx", "viaTCP"}
    assert await bounded(styx.find({"proto": "http"})) == {"viaTCP": {"proto": "http"}}
    assert await bounded(styx.find({"proto": "*"})) == await bounded(tcp.find({"proto": "*"}))
    assert await bounded(styx.find({"nothing": "x"})) == {}
    many = [
        await bounded(styx.register("bulk%03d" % i, {"descr": "x" * 60, "n": str(i)}))
        for i in range(200)
    ]
    found = await bounded(styx.find({"descr": "*"}))
    assert len(found) == 200 and found["bulk123"] == {"descr": "x" * 60, "n": "123"}
    for reg in many + [a]:
        await bounded(reg.unregister())
    await bounded(b.unregister())


@pytest_twisted.ensureDeferred
async def test_answerTooLarge(registry_server):
    conn = styxConnection(registry_server, maxAnswerSize=100)
    regs = [await bounded(conn.register("big%d" % i, {"descr": "y" * 50})) for i in range(5)]
    with pytest.raises(AnswerTooLarge):
        await bounded(conn.find({}))
    for reg in regs:
        await bounded(reg.unregister())


@pytest_twisted.ensureDeferred
async def test_watch(registry_server):
    """
    The stream is ready once its event fid is open, and reports each
    change, made over Styx or over TCP.
    """
    conn = styxConnection(registry_server)
    observer = StreamRecorder()
    stream = conn.watch(observer)
    verifyObject(IChangeStream, stream)
    await observer.waitUntil(lambda o: o.count("ready"))
    assert stream.connected
    tcp = connectionFromString(reactor, registry_server.description)
    reg = await bounded(tcp.register("seen", {"a": "b"}))
    await observer.waitUntil(lambda o: o.count("changed"))
    version = observer.events[-1][1]
    assert version == registry_server.registry.version
    await bounded(reg.unregister())
    await observer.waitUntil(lambda o: o.events[-1] == ("changed", version + 1))
    await bounded(stream.stop())
    assert not stream.connected
    assert observer.count("lost") == 0


@pytest_twisted.ensureDeferred
async def test_oneConnectionClosedWhenUnused(registry_server):
    """
    Registrations, queries and the stream share one connection, closed
    once nothing uses it.
    """
    conn = styxConnection(registry_server)
    observer = StreamRecorder()
    stream = conn.watch(observer)
    regs = [await bounded(conn.register("one%d" % i, {"a": "b"})) for i in range(20)]
    await bounded(conn.find({}))
    assert styxSockets(registry_server) == 1
    for reg in regs:
        await bounded(reg.unregister())
    await bounded(stream.stop())
    await whenSockets(registry_server, 0)


@pytest_twisted.ensureDeferred
async def test_persistentRemoved(registry_server):
    """
    A persistent service stays after its fid is clunked; one removed
    (Tremove) is gone, which the TCP plugin can never do.
    """
    conn = styxConnection(registry_server)
    kept = await bounded(conn.register("kept", {"persist": "1"}))
    await bounded(kept.unregister())
    assert "kept" in registryServices(registry_server)
    gone = await bounded(conn.register("gone", {"persist": "1"}))
    assert await bounded(gone.remove()) is None
    assert "gone" not in registryServices(registry_server)
    assert await bounded(gone.whenLost()) is None


@pytest_twisted.ensureDeferred
async def test_owners(registry_server):
    """
    Services are owned by the attach name.
    """
    alice = styxConnection(registry_server, user="alice")
    await bounded(alice.register("hers", {"a": "b"}))
    assert registry_server.registry["hers"].uid == "alice"


@pytest_twisted.ensureDeferred
async def test_managerTasks(registry_server):
    """
    The plugin works unchanged under the manager: a service task over
    Styx is seen by a monitor over TCP, and the other way round.
    """
    styx = RegistryManager(styxConnection(registry_server), clock=reactor)
    tcp = managerFor(registry_server)
    seenOverTCP, seenOverStyx = MonitorRecorder(), MonitorRecorder()
    tcp.attach(Monitor({"side": "*"}, seenOverTCP))
    styx.attach(Monitor({"side": "*"}, seenOverStyx))
    styx.attach(ServiceTask("fromStyx", {"side": "styx"}))
    tcp.attach(ServiceTask("fromTCP", {"side": "tcp"}))
    styx.startService()

    def both(r):
        return set(r.view) == {"fromStyx", "fromTCP"}

    await seenOverTCP.waitUntil(both)
    await seenOverStyx.waitUntil(both)
    await bounded(styx.stopService())
    await seenOverTCP.waitUntil(lambda r: set(r.view) == {"fromTCP"})
    await bounded(tcp.stopService())
    await whenSockets(registry_server, 0)


# Reconnection and faults, through the fault proxy.


async def proxied(server):
    host, port = server.styxAddress
    proxy = FaultProxy(reactor, host, port)
    await proxy.start()
    return proxy


def proxiedConnection(proxy, **options):
    options.setdefault("initialDelay", 0.05)
    options.setdefault("maxDelay", 0.2)
    return connectionFromString(reactor, "styx:%s:%d" % (proxy.host, proxy.port), **options)


@pytest_twisted.ensureDeferred
async def test_cutInMidMessage(registry_server):
    """
    A connection cut in the middle of a message: the query in progress
    fails with the connection's loss, and the registration and the stream
    come back on the new connection.
    """
    proxy = await proxied(registry_server)
    conn = proxiedConnection(proxy)
    observer = StreamRecorder()
    stream = conn.watch(observer)
    reg = await bounded(conn.register("cut", {"a": "b"}))
    await observer.waitUntil(lambda o: o.count("ready"))
    proxy.cutNextChunk()
    with pytest.raises((ConnectionLost, ConnectionDone, RegistryUnavailable)):
        await bounded(conn.find({"a": "b"}))
    await observer.waitUntil(lambda o: o.count("ready") == 2)
    assert observer.count("lost") == 1
    await whenRegistry(registry_server, lambda r: "cut" in r)
    # The Rwrite comes before the answer of a later query.
    assert await bounded(conn.find({"a": "b"})) == {"cut": {"a": "b"}}
    assert reg.state == "registered"
    await bounded(reg.unregister())
    await bounded(stream.stop())
    await proxy.stop()


@pytest_twisted.ensureDeferred
async def test_findDuringReconnectWaits(registry_server):
    """
    A query or a registration made while the connection is being lost
    (here by the errback of the query the loss failed, which runs as the
    protocol is told of the loss) waits for the next connection and is
    answered there, instead of being sent on the closed one and failing
    with its loss.
    """
    proxy = await proxied(registry_server)
    conn = proxiedConnection(proxy)
    reg = await bounded(conn.register("held", {"a": "b"}))
    proxy.blackhole = True
    first = conn.find({"a": "b"})
    again = []

    def retry(reason):
        again.append(conn.find({"x": "y"}))
        again.append(conn.register("during", {"a": "c"}))
        return reason

    first.addErrback(retry)
    proxy.blackhole = False
    await proxy.resetAll()
    with pytest.raises((ConnectionLost, ConnectionDone)):
        await bounded(first)
    assert await bounded(again[0]) == {}
    during = await bounded(again[1])
    await whenRegistry(registry_server, lambda r: "held" in r and "during" in r)
    await bounded(reg.unregister())
    await bounded(during.unregister())
    await proxy.stop()


@pytest_twisted.ensureDeferred
async def test_oneByteChunks(registry_server):
    proxy = await proxied(registry_server)
    proxy.oneByteChunks = True
    conn = proxiedConnection(proxy)
    observer = StreamRecorder()
    stream = conn.watch(observer)
    reg = await bounded(conn.register("slow", {"descr": "z" * 300}))
    await observer.waitUntil(lambda o: o.count("ready"))
    assert await bounded(conn.find({})) == {"slow": {"descr": "z" * 300}}
    reg.update({"more": "1"})
    await observer.waitUntil(lambda o: o.count("changed") >= 1)
    await bounded(reg.unregister())
    await bounded(stream.stop())
    await proxy.stop()


@pytest_twisted.ensureDeferred
async def test_blackHole(registry_server):
    """
    A path that swallows everything: a query fails with
    L{RegistryTimeout}, the unanswered Tflush drops the connection, and
    once the path is back everything is restored.
    """
    proxy = await proxied(registry_server)
    conn = proxiedConnection(proxy, findTimeout=0.3)
    observer = StreamRecorder()
    stream = conn.watch(observer)
    reg = await bounded(conn.register("hole", {"a": "b"}))
    await observer.waitUntil(lambda o: o.count("ready"))
    proxy.blackhole = True
    with pytest.raises(RegistryTimeout):
        await bounded(conn.find({}))
    await observer.waitUntil(lambda o: o.count("lost"))
    assert reg.state in ("disconnected", "restoring")
    proxy.blackhole = False
    await observer.waitUntil(lambda o: o.count("ready") == 2)
    await whenRegistry(registry_server, lambda r: "hole" in r)
    assert await bounded(conn.find({})) == {"hole": {"a": "b"}}
    await bounded(reg.unregister())
    await bounded(stream.stop())
    await proxy.stop()


@pytest_twisted.ensureDeferred
async def test_pipelinedRejectedAmongAccepted(registry_server):
    """
    Registrations made together run side by side on the one connection:
    those the registry rejects fail with its text while the others are
    accepted, and nothing is left held once they are unregistered.
    """
    tcp = connectionFromString(reactor, registry_server.description)
    held = [await bounded(tcp.register(name, {"via": "tcp"})) for name in ("p3", "p7")]
    conn = styxConnection(registry_server)
    attempts = [conn.register("p%d" % i, {"n": str(i)}) for i in range(50)]
    results = await bounded(DeferredList(attempts, consumeErrors=True))
    rejected = {i for i, (ok, _) in enumerate(results) if not ok}
    assert rejected == {3, 7}
    for i in rejected:
        assert results[i][1].check(RegistrationRejected)
        assert results[i][1].value.reason == "duplicate service name"
    services = registryServices(registry_server)
    assert len(services) == 50
    assert services["p3"] == {"via": "tcp"} and services["p4"] == {"n": "4"}
    await bounded(gatherResults([r.unregister() for ok, r in results if ok]))
    await whenSockets(registry_server, 0)
    assert set(registryServices(registry_server)) == {"p3", "p7"}
    await bounded(gatherResults([r.unregister() for r in held]))


@pytest_twisted.ensureDeferred
async def test_pipelinedLost(registry_server):
    """
    Registrations in flight when the connection is lost fail with the
    loss, each once; the one held before is restored on the next
    connection, and none of the lost attempts is left in the registry.
    """
    proxy = await proxied(registry_server)
    conn = proxiedConnection(proxy)
    first = await bounded(conn.register("first", {"a": "b"}))
    proxy.stall()
    attempts = [conn.register("lost%d" % i, {}) for i in range(200)]
    gone = whenRegistry(registry_server, lambda r: "first" not in r)
    await bounded(proxy.resetAll())
    results = await bounded(DeferredList(attempts, consumeErrors=True))
    assert all(not ok for ok, _ in results)
    assert all(r.check(ConnectionLost, ConnectionDone) for _, r in results)
    await gone
    proxy.resume()
    await whenRegistry(registry_server, lambda r: "first" in r)
    assert await bounded(conn.find({})) == {"first": {"a": "b"}}
    assert first.state == "registered"
    assert set(registryServices(registry_server)) == {"first"}
    await bounded(first.unregister())
    await proxy.stop()


@pytest_twisted.ensureDeferred
async def test_restartWith500Registrations(registry_server):
    """
    500 registrations on one connection, through the proxy: after the
    registry restarts, all are back, none twice, and the connection holds
    one fid per registration; unregistered, it holds none and closes.
    """
    proxy = await proxied(registry_server)
    conn = proxiedConnection(proxy)
    observer = StreamRecorder()
    stream = conn.watch(observer)
    names = ["r%03d" % i for i in range(500)]
    regs = await bounded(gatherResults([conn.register(n, {"n": n}) for n in names]))
    assert len(registryServices(registry_server)) == 500
    assert proxy.connections == 1
    await observer.waitUntil(lambda o: o.count("ready"))
    await registry_server.restart()
    await observer.waitUntil(lambda o: o.count("ready") == 2)
    await whenRegistry(registry_server, lambda r: len(r) == 500)
    assert registryServices(registry_server) == {n: {"n": n} for n in names}
    protocol = conn._factory.protocol
    inUse = protocol._nextFid - 1 - len(protocol._freeFids)
    assert inUse == 501  # the registrations and the stream
    await bounded(conn.find({}))
    assert all(reg.state == "registered" for reg in regs)
    assert proxy.connections == 1
    versionBefore = registry_server.registry.version
    await bounded(gatherResults([reg.unregister() for reg in regs]))
    assert registryServices(registry_server) == {}
    assert registry_server.registry.version == versionBefore + 500
    assert protocol._nextFid - 1 - len(protocol._freeFids) == 1
    assert [r.cls for r in protocol._outstanding.values()] == [Tread]  # the event read
    await bounded(stream.stop())
    await whenSockets(registry_server, 0)
    await proxy.stop()


@pytest_twisted.ensureDeferred
async def test_managerRestart(registry_server):
    """
    Under the manager, 500 service tasks on one Styx connection come back
    after a restart of the registry, as a monitor over TCP sees.
    """
    proxy = await proxied(registry_server)
    styx = RegistryManager(proxiedConnection(proxy), clock=reactor)
    for i in range(500):
        styx.attach(ServiceTask("m%03d" % i, {"kind": "m"}))
    seen = MonitorRecorder()
    tcp = managerFor(registry_server)
    tcp.attach(Monitor({"kind": "m"}, seen))
    styx.startService()
    await seen.waitUntil(lambda r: len(r.view) == 500, timeout=30)
    await registry_server.restart()
    await whenRegistry(registry_server, lambda r: len(r) == 500)
    assert proxy.connections == 1
    await bounded(styx.stopService())
    await whenRegistry(registry_server, lambda r: len(r) == 0)
    await bounded(tcp.stopService())
    await proxy.stop()


@pytest_twisted.ensureDeferred
async def test_restoreWaitsForTheOldConnectionsServices(registry_server):
    """
    A registration refused as a duplicate while being restored is tried
    again: the registry may still hold it for the lost connection.
    """
    proxy = await proxied(registry_server)
    conn = proxiedConnection(proxy)
    reg = await bounded(conn.register("again", {"a": "b"}))
    tcp = connectionFromString(reactor, registry_server.description)
    await proxy.resetAll()
    await whenRegistry(registry_server, lambda r: "again" not in r)
    squatter = await bounded(tcp.register("again", {"held": "by tcp"}))
    await deferLater(reactor, 0.2)
    assert reg.state in ("disconnected", "restoring")
    await bounded(squatter.unregister())
    await whenRegistry(registry_server, lambda r: "again" in r and r["again"].get("a") == "b")
    await bounded(conn.find({}))
    assert reg.state == "registered"
    await bounded(reg.unregister())
    await proxy.stop()


# Authentication, and what is not Styx at all.


class SpeaksFirst(Protocol):
    """
    What Inferno's listen without -A does: starts its authentication
    protocol.
    """

    def connectionMade(self):
        self.transport.write(b"0010\n1\nsha1/rc4")


class ClosesOnGarbage(Protocol):
    def dataReceived(self, data):
        self.transport.loseConnection()


@pytest.fixture(params=[SpeaksFirst, ClosesOnGarbage])
def authServer(request):
    port = pytest_twisted.blockon(
        TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(request.param)
        )
    )
    yield port.getHost().port
    pytest_twisted.blockon(port.stopListening())


@pytest_twisted.ensureDeferred
async def test_authenticationOverLoopback(authServer):
    """
    Against a server that wants Inferno's authentication, a query and a
    registration fail at once with L{AuthenticationRequired} telling to
    export with listen -A; so does C{regquery}.
    """
    conn = connectionFromString(reactor, "styx:127.0.0.1:%d" % authServer)
    with pytest.raises(AuthenticationRequired, match="listen -A"):
        await bounded(conn.find({}))
    with pytest.raises(AuthenticationRequired, match="listen -A"):
        await bounded(conn.register("x", {"a": "b"}))
    status, out, err = await regquery("-r", "styx:127.0.0.1:%d" % authServer, "proto", "ssh")
    assert status == ERROR
    assert "listen -A" in err


# The other ways in: regquery, twistd regmgr, inferno: and registered:.


@pytest_twisted.ensureDeferred
async def test_regquery(registry_server):
    tcp = connectionFromString(reactor, registry_server.description)
    reg = await bounded(tcp.register("q1", {"proto": "ssh"}))
    status, out, err = await regquery("-r", styxDescription(registry_server), "proto", "ssh")
    assert (status, out, err) == (FOUND, "q1 proto ssh\n", "")
    await bounded(reg.unregister())


@pytest_twisted.ensureDeferred
async def test_regmgrAgent(registry_server):
    """
    C{twistd regmgr --registry styx:...} keeps its services registered
    over Styx, owned by the attach name.
    """
    options = tapOptions(
        "--registry", styxDescription(registry_server, user="agent"), "--service", "svc a 1"
    )
    service = makeService(options, reactor)
    service.startService()
    try:
        await whenRegistry(registry_server, lambda r: "svc" in r)
        assert registry_server.registry["svc"].uid == "agent"
    finally:
        await bounded(service.stopService())
    await whenRegistry(registry_server, lambda r: "svc" not in r)


def test_regmgrBadStyxDescription():
    with pytest.raises(UsageError, match="unknown keyword 'bogus'"):
        tapOptions("--registry", "styx:bogus=1", "--service", "svc a 1")


@pytest_twisted.ensureDeferred
async def test_endpoints(registry_server):
    """
    C{registered:} registers over Styx, and C{inferno:} finds over Styx.
    """
    registry = quoteStringArgument(styxDescription(registry_server))
    endpoint = serverFromString(
        reactor,
        r"registered:tcp\:0\:interface\=127.0.0.1:registry=%s:name=web:proto=greet" % registry,
    )
    port = await bounded(endpoint.listen(Factory.forProtocol(Greeter)))
    await bounded(port.whenRegistered())
    assert registry_server.registry["web"].get("proto") == "greet"
    reader = Reader()
    client = clientFromString(reactor, "inferno:registry=%s:proto=greet" % registry)
    await bounded(client.connect(Factory.forProtocol(lambda: reader)))
    assert await bounded(reader.closed) == b"hello\n"
    await port.stopListening()
    await whenRegistry(registry_server, lambda r: "web" not in r)


async def regquery(*argv):
    out, err = _Text(), _Text()
    status = await bounded(run(reactor, list(argv), None, out, err, Deferred()))
    return status, out.text, err.text


class _Text:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


@pytest_twisted.ensureDeferred
async def test_persistentTakenOver(registry_server):
    """
    A persistent service outlives its connection; restored on the next
    one, the registration takes it over by name (its owner may write it),
    and updates and removes it; another user cannot take it.
    """
    proxy = await proxied(registry_server)
    conn = proxiedConnection(proxy)
    observer = StreamRecorder()
    stream = conn.watch(observer)
    reg = await bounded(conn.register("pers", {"persist": "1", "a": "1"}))
    await observer.waitUntil(lambda o: o.count("ready"))
    await proxy.resetAll()
    await observer.waitUntil(lambda o: o.count("ready") == 2)
    # The take-over is three more round trips: each query is one or more.
    for _ in range(20):
        if reg.state == "registered":
            break
        await bounded(conn.find({}))
    assert reg.state == "registered"
    reg.update({"a": "2"})
    await whenRegistry(registry_server, lambda r: "pers" in r and r["pers"].get("a") == "2")
    other = styxConnection(registry_server, user="mallory")
    with pytest.raises(RegistrationRejected, match="cannot be taken over: permission denied"):
        await bounded(other.register("pers", {"persist": "1"}))
    again = StyxRegistryConnection(
        reactor, "tcp:host=%s:port=%d" % registry_server.styxAddress, conn.user
    )
    taken = await bounded(again.register("pers", {"persist": "1", "b": "3"}))
    assert registry_server.registry["pers"].get("b") == "3"
    await bounded(taken.remove())
    assert "pers" not in registryServices(registry_server)
    await bounded(reg.unregister())
    await bounded(stream.stop())
    await proxy.stop()


@pytest_twisted.ensureDeferred
async def test_probe(registry_server):
    """
    With a probe, a black hole is noticed while nothing else is asked: the
    stream is lost, and comes back when the path does.
    """
    proxy = await proxied(registry_server)
    conn = proxiedConnection(proxy, probeInterval=0.1, probeTimeout=0.2, findTimeout=0.5)
    observer = StreamRecorder()
    stream = conn.watch(observer)
    await observer.waitUntil(lambda o: o.count("ready"))
    proxy.blackhole = True
    await observer.waitUntil(lambda o: o.count("lost"))
    assert "liveness probe failed" in str(observer.events[-1][1].value)
    proxy.blackhole = False
    await observer.waitUntil(lambda o: o.count("ready") == 2)
    await bounded(stream.stop())
    await proxy.stop()
