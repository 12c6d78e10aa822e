"""
Tests for L{txinferno.server.styx}: the registry served over Styx, answered
as the protocol notes (section 9) say the real one answers through
Inferno's export, in memory (L{StringTransport}) and over loopback.
"""

import socket
import struct

import pytest
import pytest_twisted
from support import LOOPBACK_PORTS, assertKeepAlive, bounded
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from txinferno.server.registry import Registry
from txinferno.server.styx import MAX_MSIZE, StyxRegistryServer
from txinferno.testing import EmbeddedRegistry, connectRaw, exchange
from txinferno.wire import styx
from txinferno.wire.styx import (
    DMDIR,
    NOFID,
    NOTAG,
    ORCLOSE,
    ORDWR,
    OREAD,
    OTRUNC,
    OWRITE,
    QTDIR,
    FrameSplitter,
    Qid,
    Rerror,
    decode,
    decodeDirectory,
)

T0 = 1_700_000_000


class Peer:
    """
    One in-memory Styx connection to a server: send messages, get the
    decoded replies.
    """

    def __init__(self, server, port=1):
        self.protocol = server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        self.protocol.makeConnection(self.transport)
        self.splitter = FrameSplitter(1 << 24)

    def sendBytes(self, data):
        self.protocol.dataReceived(data)
        return self.replies()

    def replies(self):
        out = self.transport.value()
        self.transport.clear()
        return [decode(f) for f in self.splitter.feed(out)]

    def send(self, *messages):
        return self.sendBytes(b"".join(m.encode() for m in messages))

    def call(self, message):
        (reply,) = self.send(message)
        return reply

    @property
    def closed(self):
        return self.transport.disconnecting

    def lose(self):
        self.protocol.connectionLost(None)

    # The usual sequences

    def version(self, msize=8216):
        return self.call(styx.Tversion(NOTAG, msize, "9P2000"))

    def attach(self, fid=0, uname="glenda"):
        return self.call(styx.Tattach(1, fid, NOFID, uname, ""))

    def walk(self, fid, newfid, *names):
        return self.call(styx.Twalk(1, fid, newfid, names))

    def open(self, fid, mode):
        return self.call(styx.Topen(1, fid, mode))

    def read(self, fid, offset=0, count=8192, tag=1):
        return self.call(styx.Tread(tag, fid, offset, count))

    def write(self, fid, data, offset=0):
        return self.call(styx.Twrite(1, fid, offset, data))

    def clunk(self, fid):
        return self.call(styx.Tclunk(1, fid))

    def readAll(self, fid, count=8192):
        data = b""
        while True:
            r = self.read(fid, len(data), count)
            assert isinstance(r, styx.Rread), r
            if not r.data:
                return data
            data += r.data

    def register(self, fid, text, mode=ORDWR):
        """
        Twalk [new], Topen, Twrite; return the Rwrite or Rerror.
        """
        assert isinstance(self.walk(0, fid, "new"), styx.Rwalk)
        assert isinstance(self.open(fid, mode), styx.Ropen)
        return self.write(fid, text)

    def index(self, fid=900):
        self.walk(0, fid, "index")
        self.open(fid, OREAD)
        data = self.readAll(fid)
        self.clunk(fid)
        return data


def error(text):
    return Rerror(1, text)


@pytest.fixture
def clock():
    c = Clock()
    c.advance(T0)
    return c


@pytest.fixture
def server(clock):
    return StyxRegistryServer(Registry(clock), clock)


@pytest.fixture
def peer(server):
    p = Peer(server)
    p.version()
    p.attach()
    return p


# 9.2 Tversion


@pytest.mark.parametrize(
    "msize, version, answer",
    [
        (8192, "9P2000", (8192, "9P2000")),
        (65536, "9P2000", (65536, "9P2000")),
        (1048576, "9P2000", (65560, "9P2000")),
        (65561, "9P2000", (65560, "9P2000")),
        (256, "9P2000", (256, "9P2000")),
        (255, "9P2000", (255, "9P2000")),
        (64, "9P2000", (64, "9P2000")),
        (63, "9P2000", "message size too small"),
        (0, "9P2000", "message size too small"),
        (8192, "9P2000.u", (8192, "9P2000")),
        (8192, "9P2000.L", (8192, "9P2000")),
        (8192, "9P2001", (8192, "9P2000")),
        (8192, "9P3", (8192, "9P2000")),
        (8192, "9Px", (8192, "9P2000")),
        (8192, "9P1999", (8192, "unknown")),
        (8192, "9P", (8192, "unknown")),
        (8192, "XYZ", (8192, "unknown")),
        (8192, "", (8192, "unknown")),
        (8192, "9p2000", (8192, "unknown")),
    ],
)
def test_version(server, msize, version, answer):
    p = Peer(server)
    reply = p.call(styx.Tversion(NOTAG, msize, version))
    if isinstance(answer, str):
        assert reply == Rerror(NOTAG, answer)
    else:
        assert reply == styx.Rversion(NOTAG, *answer)
    # The connection stays open and serves what follows.
    assert p.attach() == styx.Rattach(1, Qid(QTDIR, 0, 0))
    assert not p.closed


def test_version_bytes(server):
    """
    The bytes of 9.2; the tag is echoed.
    """
    p = Peer(server)
    assert p.sendBytes(bytes.fromhex("1300000064ffff002000000600395032303030")) == [
        styx.Rversion(NOTAG, 8192, "9P2000")
    ]
    p.transport.clear()
    p.protocol.dataReceived(styx.Tversion(1, 8192, "9P2000").encode())
    assert p.transport.value() == bytes.fromhex(
        "1300000065 0100 00200000 0600 395032303030".replace(" ", "")
    )


def test_second_version_keeps_fids(peer):
    """
    A second Tversion answers the new msize and keeps every fid.
    """
    assert peer.register(5, b"svc a 1") == styx.Rwrite(1, 7)
    assert peer.version(65536) == styx.Rversion(NOTAG, 65536, "9P2000")
    assert peer.index() == b"svc a 1\n"
    assert peer.read(5) == styx.Rread(1, b"svc a 1\n")


def test_before_version(server):
    """
    Requests before any Tversion are served; Ropen's iounit is then
    4294967272.
    """
    p = Peer(server)
    p.attach()
    assert p.walk(0, 1, "index") == styx.Rwalk(1, (Qid(0, 0, 2),))
    assert p.open(1, OREAD) == styx.Ropen(1, Qid(0, 0, 2), 4294967272)


# 9.3 Tauth, Tattach


def test_auth(peer):
    peer.transport.clear()
    peer.protocol.dataReceived(styx.Tauth(1, 1, "glenda", "").encode())
    assert peer.transport.value() == bytes.fromhex(
        "240000006b01001b0061757468656e7469636174696f6e206e6f74207265717569726564"
    )


def test_attach(server):
    p = Peer(server)
    p.version()
    assert p.call(styx.Tattach(2, 0, 1, "", "xyz")) == styx.Rattach(2, Qid(QTDIR, 0, 0))
    assert p.call(styx.Tattach(2, NOFID, NOFID, "bob", "")) == styx.Rattach(2, Qid(QTDIR, 0, 0))
    assert p.attach(0) == error("fid in use")
    assert p.call(styx.Tstat(1, NOFID)).stat.qid == Qid(QTDIR, 0, 0)


# 9.4 The file tree, 9.7 directory reads


def test_ls_l(peer, server):
    """
    C{ls -l dir} (9.16): Tstat of the root, Twalk clone, Topen 0x00, Tread
    count 2048 until 0, Tclunk; the entries of 9.4.
    """
    peer.register(5, b"svc1 port 22")
    root = peer.call(styx.Tstat(1, 0)).stat
    assert root == styx.Stat(
        0x4D, 0, Qid(QTDIR, 1, 0), DMDIR | 0o777, T0, T0, 0, ".", "registry", "registry", ""
    )
    assert peer.walk(0, 1) == styx.Rwalk(1, ())
    assert peer.open(1, OREAD) == styx.Ropen(1, Qid(QTDIR, 1, 0), 8192)
    entries = decodeDirectory(peer.readAll(1, 2048))
    assert [(e.name, e.qid, e.mode, e.uid, e.gid) for e in entries] == [
        ("new", Qid(0, 0, 1), 0o666, "registry", "registry"),
        ("index", Qid(0, 0, 2), 0o444, "registry", "registry"),
        ("find", Qid(0, 0, 4), 0o666, "registry", "registry"),
        ("event", Qid(0, 0, 3), 0o444, "registry", "registry"),
        ("svc1", Qid(0, 1, 5), 0o644, "glenda", "glenda"),
    ]
    assert [len(e.encode()) for e in entries[:4]] == [68, 70, 69, 70]
    assert all(e.length == 0 and e.muid == "" for e in entries)
    assert peer.clunk(1) == styx.Rclunk(1)
    # ls -l dir/svc: Twalk, Tstat, Tclunk
    peer.walk(0, 2, "svc1")
    assert peer.call(styx.Tstat(1, 2)).stat.name == "svc1"
    assert peer.clunk(2) == styx.Rclunk(1)


def test_directory_whole_entries(peer):
    """
    Count 10 returns 0 bytes; an offset other than 0 or the end of the last
    read is C{can't seek on a directory}.
    """
    peer.walk(0, 1)
    peer.open(1, OREAD)
    assert peer.read(1, 0, 10) == styx.Rread(1, b"")
    first = peer.read(1, 0, 100).data
    assert len(first) == 68
    assert peer.read(1, 10, 100) == error("can't seek on a directory")
    assert len(peer.read(1, 68, 140).data) == 139


def test_service_ids_and_times(peer, clock):
    """
    Ids count up per open of C{new}; vers counts accepted writes; mtime is
    the last write, atime the last read at offset 0.
    """
    assert peer.walk(0, 5, "new") == styx.Rwalk(1, (Qid(0, 0, 1),))
    assert peer.open(5, ORDWR) == styx.Ropen(1, Qid(0, 0, 0x5), 8192)
    peer.walk(0, 6, "new")
    assert peer.open(6, OWRITE | OTRUNC) == styx.Ropen(1, Qid(0, 0, 0x15), 8192)
    # Anonymous: name '', not listed.
    assert peer.call(styx.Tstat(1, 5)).stat.name == ""
    assert peer.index() == b""
    clock.advance(10)
    peer.write(5, b"s a 1")
    clock.advance(10)
    peer.write(5, b"b 2")
    assert peer.walk(0, 7, "s") == styx.Rwalk(1, (Qid(0, 2, 0x5),))
    clock.advance(10)
    peer.open(7, OREAD)
    peer.read(7)
    stat = peer.call(styx.Tstat(1, 7)).stat
    assert (stat.qid.vers, stat.mtime, stat.atime) == (2, T0 + 20, T0 + 30)


# 9.5 Twalk


def test_walk_errors(peer):
    assert peer.walk(0, 1, "nothere") == error("file does not exist")
    assert peer.walk(0, 1, ".") == error("file does not exist")
    assert peer.walk(0, 1, "NEW") == error("file does not exist")
    assert peer.walk(0, 1, "index", "x") == styx.Rwalk(1, (Qid(0, 0, 2),))
    assert peer.walk(1, 2) == error("no such fid")  # newfid 1 not created
    assert peer.walk(0, 1, "index") == styx.Rwalk(1, (Qid(0, 0, 2),))
    assert peer.walk(1, 2, "..") == error("not a directory")
    assert peer.walk(0, 1, "find") == error("fid in use")
    assert peer.walk(0, 2, "..", "") == styx.Rwalk(1, (Qid(QTDIR, 0, 0),) * 2)
    assert peer.walk(7, 8) == error("no such fid")
    # In place, failing part way: the fid stays where it was.
    assert peer.walk(2, 2, "event", "x") == styx.Rwalk(1, (Qid(0, 0, 3),))
    assert peer.walk(2, 2, "event") == styx.Rwalk(1, (Qid(0, 0, 3),))
    peer.open(1, OREAD)
    assert peer.walk(1, 3) == error("walk of open fid")
    assert peer.walk(0, 3, *["index"] * 0, *[".."] * 16).qids == (Qid(QTDIR, 0, 0),) * 16


def test_walk_17_names_closes(peer, server):
    """
    17 names: the connection is closed with no reply; other connections are
    served.
    """
    body = struct.pack("<IIH", 0, 1, 17) + b"\x02\x00.." * 17
    assert peer.sendBytes(struct.pack("<IBH", 7 + len(body), 110, 1) + body) == []
    assert peer.closed
    other = Peer(server, 2)
    other.version()
    assert other.attach() == styx.Rattach(1, Qid(QTDIR, 0, 0))


# 9.6 Topen


def test_open_modes(peer):
    for mode in (3, 4, 0x80):
        peer.walk(0, 1, "find")
        assert peer.open(1, mode) == error("bad argument")
        peer.clunk(1)
    for name, mode in [
        ("index", OWRITE),
        ("index", ORDWR),
        ("event", OWRITE),
        (None, OWRITE),
        (None, ORDWR),
    ]:
        peer.walk(0, 1, *([name] if name else []))
        assert peer.open(1, mode) == error("permission denied")
        peer.clunk(1)
    for mode in (OREAD, OWRITE, ORDWR):
        peer.walk(0, 1, "find")
        assert peer.open(1, mode) == styx.Ropen(1, Qid(0, 0, 4), 8192)
        assert peer.open(1, mode) == error("open/create -- unknown mode")
        peer.clunk(1)


def test_iounit(server):
    for msize, iounit in [(8192, 8168), (8216, 8192), (65536, 8192)]:
        p = Peer(server)
        p.version(msize)
        p.attach()
        p.walk(0, 1, "new")
        reply = p.open(1, OWRITE)
        assert reply.iounit == iounit


def test_ropen_bytes(peer):
    """
    The [E] Ropen of 9.6, with the iounit of msize 8216.
    """
    peer.walk(0, 3, "new")
    peer.transport.clear()
    peer.protocol.dataReceived(styx.Topen(3, 3, ORDWR).encode())
    assert peer.transport.value() == bytes.fromhex(
        "18000000 71 0300 00 00000000 0500000000000000 00200000".replace(" ", "")
    )


# Registration (9.8), clunk and persist (9.11)


def test_echo_into_new(peer):
    """
    C{echo 'svc a v' > dir/new}: Topen 0x11, one Twrite with a newline,
    Tclunk: the service comes and goes.
    """
    assert peer.register(5, b"svc a v\n", OWRITE | OTRUNC) == styx.Rwrite(1, 8)
    assert peer.index() == b"svc a v\n"
    assert peer.clunk(5) == styx.Rclunk(1)
    assert peer.index() == b""
    assert peer.protocol.server.registry.version == 2


def test_registration_errors(peer):
    cases = [
        (b"new x 1", "bad service name"),
        (b"'a b' x 1", "bad character in service name"),
        (b"x/y 1 2", "bad character in service name"),
        (b"del\x7f x 1", "bad character in service name"),
        (b"'nl\nx' 1 2", "bad character in service name"),
        (b"'' x 1", "bad service name"),
        (b"", "bad syntax"),
        (b"\n", "bad syntax"),
        (b" \t ", "bad syntax"),
    ]
    for fid, (data, text) in enumerate(cases, 10):
        assert peer.register(fid, data) == error(text), data
    peer.register(5, b"dup k 1 k 2")
    assert peer.register(6, b"dup x 1") == error("duplicate service name")
    assert peer.index() == b"dup k 2\n"


def test_odd_pairs_keep_the_name(peer):
    assert peer.register(5, b"odd1 proto") == error("odd attribute/value pairs")
    assert peer.index() == b"odd1\n"
    assert peer.write(5, b"proto ssh") == styx.Rwrite(1, 9)
    assert peer.index() == b"odd1 proto ssh\n"
    assert peer.write(5, b"lonely") == error("odd attribute/value pairs")
    assert peer.write(5, b"") == error("bad syntax")
    assert peer.index() == b"odd1 proto ssh\n"
    assert peer.register(6, b"a\tb x 1") == error("odd attribute/value pairs")
    assert b"a\n" in peer.index()


def test_nothing_carried_between_writes(peer):
    assert peer.register(5, b"two pro") == error("odd attribute/value pairs")
    assert peer.write(5, b"to ssh") == styx.Rwrite(1, 6)
    assert peer.index() == b"two to ssh\n"


def test_update_order_and_bytes(peer):
    peer.register(5, b"ord a 1 b 2 c 3")
    peer.write(5, b"a 9")
    peer.write(5, b"d 4 b 7")
    peer.register(6, b"cr x 1\r\n")
    peer.register(7, b"nul x v\0w")
    assert peer.register(8, b"inv\xff x \xc3") == error("odd attribute/value pairs")
    assert peer.index().decode() == "ord d 4 b 7 c 3 a 9\ncr x '1\r'\nnul x v\ninv\ufffd\n"


def test_service_file_reads(peer, server):
    peer.register(5, b"svc1 proto ssh port 22")
    assert peer.read(5) == styx.Rread(1, b"svc1 port 22 proto ssh\n")
    peer.walk(0, 6, "svc1")
    peer.open(6, OREAD)
    assert peer.read(6, 5, 4) == styx.Rread(1, b"port")
    assert peer.write(6, b"x 1") == error("read/write -- not open in suitable mode")
    # Another user may read but not write.
    bob = Peer(server, 2)
    bob.version()
    bob.attach(uname="bob")
    bob.walk(0, 1, "svc1")
    assert bob.open(1, OWRITE) == error("permission denied")
    assert bob.open(1, OREAD).qid == Qid(0, 1, 5)
    # The owner may update through another fid opened for writing.
    peer.walk(0, 7, "svc1")
    peer.open(7, OWRITE)
    assert peer.write(7, b"k v") == styx.Rwrite(1, 3)
    assert peer.read(7) == error("read/write -- not open in suitable mode")
    peer.clunk(7)
    assert peer.index() == b"svc1 k v port 22 proto ssh\n"


@pytest.mark.parametrize(
    "value, kept",
    [
        ("1", True),
        ("-1", True),
        ("' 1'", True),
        ("1x", True),
        ("+2", True),
        ("'\t5'", True),
        ("2147483648", True),
        ("0", False),
        ("00", False),
        ("abc", False),
        ("0x1", False),
        ("''", False),
    ],
)
def test_persist(peer, value, kept):
    peer.register(5, b"p persist " + value.encode())
    peer.clunk(5)
    assert (peer.index() != b"") == kept


def test_persist_by_update_and_orclose(peer):
    peer.register(5, b"p1 a 1")
    peer.write(5, b"persist 1")
    peer.register(6, b"p2 persist 1", ORDWR | ORCLOSE)
    peer.walk(0, 7, "p1")
    peer.clunk(7)  # not the creating fid
    peer.clunk(5)
    peer.clunk(6)
    assert peer.index() == b"p1 persist 1 a 1\n"


def test_write_size(server):
    """
    Count > msize-24 is C{count too big}; with a larger msize a write is
    applied in pieces of 8192 bytes.
    """
    p = Peer(server)
    p.version(8192)
    p.attach()
    p.walk(0, 1, "new")
    p.open(1, ORDWR)
    assert p.write(1, b"x" * 8169) == error("read/write -- count too big")
    assert p.read(1, 0, 8169) == error("read/write -- count too big")
    assert p.read(1, 1 << 63, 10) == error("negative i/o offset")
    p.version(65536)
    text = b"big a " + b"v" * 8186 + b" b 2 c"
    assert p.write(1, text) == error("odd attribute/value pairs")
    assert p.index() == b"big a " + b"v" * 8186 + b"\n"


def test_unopened_and_removed(peer):
    peer.walk(0, 1, "index")
    assert peer.read(1) == error("open/create -- unknown mode")
    assert peer.write(1, b"x") == error("open/create -- unknown mode")
    peer.open(1, OREAD)
    assert peer.write(1, b"x") == error("read/write -- not open in suitable mode")


# Snapshots (9.7)


def test_index_snapshot(peer):
    peer.register(5, b"alpha desc one")
    peer.walk(0, 1, "index")
    peer.open(1, OREAD)
    assert peer.read(1, 0, 10) == styx.Rread(1, b"alpha desc")
    peer.register(6, b"beta x 1")
    assert peer.read(1, 10, 100) == styx.Rread(1, b" one\n")
    assert peer.read(1, 15, 100) == styx.Rread(1, b"")
    assert peer.read(1, 0, 0) == styx.Rread(1, b"")
    assert peer.read(1, 0, 100).data == b"alpha desc one\nbeta x 1\n"


# find (9.9) and ndb/regquery (9.16)


def test_regquery(peer):
    """
    C{ndb/regquery -m dir proto ssh} and C{-n}: Twalk [find], Topen 0x02,
    Twrite of the query (0 bytes for none), Tread from 0 until 0, Tclunk.
    """
    peer.register(5, b"a proto ssh")
    peer.register(6, b"b proto http")
    peer.walk(0, 1, "find")
    peer.open(1, ORDWR)
    assert peer.write(1, b"proto ssh") == styx.Rwrite(1, 9)
    assert peer.readAll(1) == b"a proto ssh\n"
    peer.clunk(1)
    peer.walk(0, 1, "find")
    peer.open(1, ORDWR)
    assert peer.write(1, b"") == styx.Rwrite(1, 0)
    assert peer.readAll(1) == b"a proto ssh\nb proto http\n"


def test_find_filters_per_fid(peer):
    peer.register(5, b"a k 1 proto ssh")
    peer.register(6, b"b proto http")
    for fid, query in [(1, b"proto *"), (2, b"proto http"), (3, b"k 1 k 2")]:
        peer.walk(0, fid, "find")
        peer.open(fid, ORDWR)
        peer.write(fid, query)
    peer.walk(0, 4, "find")
    peer.open(4, ORDWR)
    assert peer.read(1).data == b"a proto ssh k 1\nb proto http\n"
    assert peer.read(2).data == b"b proto http\n"
    assert peer.read(3).data == b""
    assert peer.read(4).data == b"a proto ssh k 1\nb proto http\n"
    assert peer.write(2, b"proto") == error("odd attribute/value pairs")
    assert peer.read(2).data == b"b proto http\n"
    # Applied when read at offset 0, not when written.
    peer.register(7, b"c proto http")
    assert peer.read(2).data == b"b proto http\nc proto http\n"
    assert peer.write(2, b"") == styx.Rwrite(1, 0)
    assert peer.read(2).data.count(b"\n") == 3
    peer.walk(0, 8, "find")
    peer.open(8, OREAD)
    assert peer.write(8, b"a b") == error("read/write -- not open in suitable mode")


# event (9.10)


def test_event(peer, server):
    """
    An event read waits for the next change; a second read is refused; the
    data is C{%08d\\n}; changes while no read waits are reported as one.
    """
    peer.walk(0, 1, "event")
    peer.open(1, OREAD)
    assert peer.send(styx.Tread(4, 1, 0, 8192)) == []
    assert peer.read(1, tag=5) == Rerror(5, "concurrent read for event fid")
    other = Peer(server, 2)
    other.version()
    other.attach()
    other.walk(0, 1, "new")
    other.open(1, ORDWR)
    other.write(1, b"svc a 1")
    assert peer.replies() == [styx.Rread(4, b"00000001\n")]
    other.write(1, b"b 2")
    other.write(1, b"c 3")
    assert peer.read(1, 9, 4) == styx.Rread(1, b"0000")
    # Reported (though truncated): the next read waits.
    peer.send(styx.Tread(6, 1, 18, 8192))
    assert peer.replies() == []


def test_event_bytes_and_order(peer):
    """
    The event Rread of 9.10, sent before the Rwrite of the change on the
    same connection.
    """
    peer.walk(0, 1, "event")
    peer.open(1, OREAD)
    peer.send(styx.Tread(4, 1, 0, 8192))
    peer.walk(0, 2, "new")
    peer.open(2, ORDWR)
    peer.transport.clear()
    peer.protocol.dataReceived(styx.Twrite(7, 2, 0, b"s").encode())
    assert (
        peer.transport.value()
        == bytes.fromhex("140000007504000900000030303030303030310a") + styx.Rwrite(7, 1).encode()
    )


def test_cat_event_flush(peer):
    """
    C{cat dir/event} killed: Tflush of the pending read (Rflush, never
    answered), then Tclunk; a Tflush of nothing pending gets Rflush.
    """
    peer.walk(0, 1, "event")
    peer.open(1, OREAD)
    assert peer.send(styx.Tread(4, 1, 0, 8192)) == []
    assert peer.call(styx.Tflush(5, 4)) == styx.Rflush(5)
    assert peer.call(styx.Tflush(6, 99)) == styx.Rflush(6)
    assert peer.clunk(1) == styx.Rclunk(1)
    peer.register(5, b"svc")
    assert peer.replies() == []
    assert peer.protocol.server._pending == {}


def test_event_clunk_with_pending(peer):
    """
    [E]: a read pending on a clunked event fid is still answered at the
    next change.
    """
    peer.walk(0, 1, "event")
    peer.open(1, OREAD)
    peer.send(styx.Tread(4, 1, 0, 8192))
    assert peer.clunk(1) == styx.Rclunk(1)
    replies = peer.send(
        styx.Twalk(1, 0, 5, ("new",)), styx.Topen(1, 5, ORDWR), styx.Twrite(1, 5, 0, b"s")
    )
    assert styx.Rread(4, b"00000001\n") in replies


def test_event_fan_out_tags_and_counts(server):
    """
    One change answers the pending reads of many connections, each with its
    own tag and its own count (the answer is shared between alike reads and
    patched for the others): every reader gets exactly its own Rread.
    """
    readers = []
    for i, (tag, count) in enumerate([(4, 8192), (4, 8192), (5, 8192), (NOTAG, 3), (4, 3), (0, 0)]):
        p = Peer(server, 10 + i)
        p.version()
        p.attach()
        p.walk(0, 1, "event")
        p.open(1, OREAD)
        assert p.send(styx.Tread(tag, 1, 0, count)) == []
        readers.append((p, tag, count))
    writer = Peer(server, 2)
    writer.version()
    writer.attach()
    writer.register(1, b"svc a 1")
    for p, tag, count in readers:
        assert p.transport.value() == styx.Rread(tag, b"00000001\n"[:count]).encode()
    assert server._pending == {}


def test_event_pending_bound(server):
    server.maxFids = 3
    p = Peer(server)
    p.version()
    p.attach()
    for fid in (1, 2):
        p.walk(0, fid, "event")
        p.open(fid, OREAD)
        p.send(styx.Tread(fid, fid, 0, 100))
        p.clunk(fid)
    p.walk(0, 1, "event")
    p.open(1, OREAD)
    p.send(styx.Tread(9, 1, 0, 100))
    p.clunk(1)
    p.walk(0, 1, "event")
    p.open(1, OREAD)
    assert p.read(1) == error("too many pending reads on this connection")


# Tremove and owners (9.12)


def test_rm(peer, server):
    """
    C{rm dir/svc}: Twalk [svc], Tremove (no Tclunk); the creating fid then
    reads empty, writes C{buggy program!}, stats C{file does not exist},
    clunks fine.
    """
    peer.register(5, b"svc a 1 persist 1")
    version = server.registry.version
    peer.walk(0, 1, "svc")
    peer.transport.clear()
    peer.protocol.dataReceived(styx.Tremove(4, 1).encode())
    assert peer.transport.value() == bytes.fromhex("070000007b0400")
    peer.transport.clear()
    assert server.registry.version == version + 1
    assert peer.index() == b""
    assert peer.read(5) == styx.Rread(1, b"")
    assert peer.write(5, b"x 1") == error("buggy program!")
    assert peer.call(styx.Tstat(1, 5)) == error("file does not exist")
    assert peer.clunk(5) == styx.Rclunk(1)
    assert peer.call(styx.Tstat(1, 1)) == error("no such fid")


def test_remove_never_crashes(peer, server):
    """
    The requests that stop the real registry (9.14) get errors, and the
    server goes on serving.
    """
    peer.walk(0, 1)
    assert peer.call(styx.Tremove(1, 1)) == error("permission denied")
    peer.register(5, b"svc persist 1")
    peer.walk(0, 6, "svc")
    peer.call(styx.Tremove(1, 5))
    assert peer.call(styx.Tremove(1, 6)) == error("file does not exist")
    assert peer.call(styx.Tremove(1, 77)) == error("no such fid")
    assert peer.clunk(77) == error("no such fid")
    for name in ("new", "index", "find", "event"):
        peer.walk(0, 1, name)
        assert peer.call(styx.Tremove(1, 1)) == error("permission denied")
        assert peer.call(styx.Tstat(1, 1)) == error("no such fid")
    assert peer.register(7, b"after") == styx.Rwrite(1, 5)
    assert peer.index() == b"after\n"


def test_owners(peer, server):
    """
    Owners are enforced by the attach name (the deliberate difference of
    9.18): bob cannot remove alice's service; nobody but C{registry} can
    remove a static one or one registered over TCP.
    """
    server.registry.register(None, ["tcpsvc", "a", "1"])
    peer.register(5, b"mine")
    bob = Peer(server, 2)
    bob.version()
    bob.attach(uname="bob")
    bob.walk(0, 1, "mine")
    assert bob.call(styx.Tremove(1, 1)) == error("permission denied")
    bob.walk(0, 1, "tcpsvc")
    assert bob.call(styx.Tremove(1, 1)) == error("permission denied")
    root = Peer(server, 3)
    root.version()
    root.attach(uname="registry")
    root.walk(0, 1, "tcpsvc")
    assert root.call(styx.Tremove(1, 1)) == styx.Rremove(1)
    peer.walk(0, 1, "mine")
    assert peer.call(styx.Tremove(1, 1)) == styx.Rremove(1)
    assert peer.index() == b""


def test_remove_anonymous(peer, server):
    peer.walk(0, 5, "new")
    peer.open(5, ORDWR)
    assert peer.call(styx.Tremove(1, 5)) == styx.Rremove(1)
    assert server.registry.version == 1
    peer.walk(0, 6, "new")
    peer.open(6, ORDWR)
    peer.clunk(6)
    assert server.registry.version == 1


# Twstat, Tcreate (9.13)


def test_wstat_create(peer):
    stat = styx.Stat(
        0xFFFF,
        0xFFFFFFFF,
        Qid(0xFF, 0xFFFFFFFF, 2**64 - 1),
        0xFFFFFFFF,
        0xFFFFFFFF,
        0xFFFFFFFF,
        2**64 - 1,
        "",
        "",
        "",
        "",
    )
    assert peer.call(styx.Twstat(1, 0, stat.encode())) == error("permission denied")
    assert peer.call(styx.Twstat(1, 0, b"\x01\x00")) == error("malformed stat buffer")
    for name, text in [
        ("x", "mounted directory forbids creation"),
        (".", "file name syntax"),
        ("a/b", "bad character in file name: a/b"),
    ]:
        assert peer.call(styx.Tcreate(1, 0, name, 0o644, OWRITE)) == error(text)


# Connection close (9.11)


def test_close_clunks_everything(peer, server):
    """
    Closing the connection clunks its fids: 500 registrations are removed,
    one version step each; a read pending elsewhere gets the first.
    """
    watcher = Peer(server, 2)
    watcher.version()
    watcher.attach()
    watcher.walk(0, 1, "event")
    watcher.open(1, OREAD)
    messages = []
    for i in range(500):
        fid = 10 + i
        messages += [
            styx.Twalk(1, 0, fid, ("new",)),
            styx.Topen(1, fid, OWRITE),
            styx.Twrite(1, fid, 0, b"s%d" % i),
        ]
    replies = peer.send(*messages)
    assert all(not isinstance(r, Rerror) for r in replies)
    assert watcher.read(1, 0, 100) == styx.Rread(1, b"00000500\n")
    watcher.send(styx.Tread(3, 1, 9, 100))
    peer.lose()
    assert watcher.replies() == [styx.Rread(3, b"00000501\n")]
    assert len(server.registry) == 0 and server.registry.version == 1000


# Framing and hostile input (9.14)


@pytest.mark.parametrize(
    "data",
    [
        styx.Rversion(1, 8192, "9P2000").encode(),
        bytes.fromhex("07000000 6a 0100".replace(" ", "")),  # Terror
        bytes.fromhex("07000000 96 0100".replace(" ", "")),  # type 150
        bytes.fromhex("04000000"),  # size field 4
        bytes.fromhex("0a000000 78 0100 000000".replace(" ", "")),  # shorter than its fields
        b"\x0c\x00\x00\x00" + styx.Tclunk(1, 0).encode()[4:] + b"\x00",  # a trailing byte
        b"GET / HTTP/1.0\r\n\r\n",
        b"\xff" * 64,
    ],
)
def test_framing_errors_close_only_that_connection(peer, server, data):
    other = Peer(server, 2)
    other.version()
    other.attach()
    assert peer.sendBytes(data) == []
    assert peer.closed
    assert peer.sendBytes(styx.Tstat(1, 0).encode()) == []
    assert other.call(styx.Tstat(1, 0)).stat.name == "."


def test_over_msize(peer):
    """
    A message over the negotiated msize closes the connection, even in the
    same chunk as its Tversion.
    """
    p = peer
    replies = p.send(
        styx.Tversion(NOTAG, 256, "9P2000"), styx.Twrite(1, 0, 0, b"x" * 250), styx.Tstat(1, 0)
    )
    assert replies == [styx.Rversion(NOTAG, 256, "9P2000")]
    assert p.closed


def test_over_maximum_before_version(server):
    p = Peer(server)
    assert p.sendBytes(struct.pack("<I", MAX_MSIZE + 1)) == []
    assert p.closed


def test_one_byte_chunks(server):
    p = Peer(server)
    data = b"".join(
        m.encode()
        for m in [
            styx.Tversion(NOTAG, 8216, "9P2000"),
            styx.Tattach(1, 0, NOFID, "glenda", ""),
            styx.Twalk(1, 0, 1, ("new",)),
            styx.Topen(1, 1, ORDWR),
            styx.Twrite(1, 1, 0, b"svc a 1"),
        ]
    )
    replies = []
    for i in range(len(data)):
        replies += p.sendBytes(data[i : i + 1])
    assert [type(r) for r in replies] == [
        styx.Rversion,
        styx.Rattach,
        styx.Rwalk,
        styx.Ropen,
        styx.Rwrite,
    ]
    assert p.index() == b"svc a 1\n"


def test_tag_reuse(peer):
    """
    Tags are not checked: NOTAG is an ordinary tag, two reads pending may
    share a tag, and a Tflush of it cancels one.
    """
    for fid in (1, 2):
        peer.walk(0, fid, "event")
        peer.open(fid, OREAD)
        peer.send(styx.Tread(NOTAG, fid, 0, 100))
    assert peer.call(styx.Tflush(1, NOTAG)) == styx.Rflush(1)
    replies = peer.send(
        styx.Twalk(1, 0, 5, ("new",)), styx.Topen(1, 5, ORDWR), styx.Twrite(1, 5, 0, b"s")
    )
    assert [r for r in replies if isinstance(r, styx.Rread)] == [styx.Rread(NOTAG, b"00000001\n")]
    assert peer.protocol.server._pending == {}
    # A fid reused after its clunk is a fresh fid.
    peer.clunk(1)
    assert peer.walk(0, 1, "index") == styx.Rwalk(1, (Qid(0, 0, 2),))


def test_fid_bound(server):
    server.maxFids = 4
    p = Peer(server)
    p.version()
    p.attach()
    for fid in (1, 2, 3):
        assert isinstance(p.walk(0, fid), styx.Rwalk)
    assert p.walk(0, 4) == error("too many fids on this connection")
    assert p.call(styx.Tattach(1, 4, NOFID, "", "")) == error("too many fids on this connection")
    p.clunk(3)
    assert isinstance(p.walk(0, 4), styx.Rwalk)


def test_held_bound(server):
    """
    The snapshots a connection's fids hold are bounded.
    """
    server.maxHeldBytes = 1000
    registry = server.registry
    for i in range(20):
        registry.register(None, ["service%02d" % i, "attribute", "value%d" % i])
    p = Peer(server)
    p.version()
    p.attach()
    p.walk(0, 1, "index")
    p.open(1, OREAD)
    p.walk(0, 2, "index")
    p.open(2, OREAD)
    assert len(p.read(1, 0, 10).data) == 10
    assert p.read(2, 0, 10) == error("too much read data held on this connection: clunk some fids")
    p.clunk(1)
    assert len(p.read(2, 0, 10).data) == 10


def test_peer_that_does_not_read(peer):
    """
    While the transport asks the protocol to pause, no request is served;
    the transport is paused too; resuming serves what waited.
    """
    peer.protocol.pauseProducing()
    assert peer.transport.producerState == "paused"
    assert peer.send(styx.Tstat(1, 0), styx.Tstat(2, 0)) == []
    peer.protocol.resumeProducing()
    assert [r.tag for r in peer.replies()] == [1, 2]
    assert peer.transport.producerState == "producing"


# Over loopback: mixed use with the TCP ports


class StyxClient:
    """
    A raw Styx client over a L{RawConnection}-like protocol: one request at
    a time.
    """

    def __init__(self, conn):
        self.conn = conn
        self.splitter = FrameSplitter(1 << 20)
        self.replies = []
        self.waiting = []
        conn.dataReceived = self._received

    def _received(self, data):
        for frame in self.splitter.feed(data):
            message = decode(frame)
            if self.waiting:
                self.waiting.pop(0).callback(message)
            else:
                self.replies.append(message)

    def next(self):
        if self.replies:
            return defer.succeed(self.replies.pop(0))
        d = defer.Deferred()
        self.waiting.append(d)
        return bounded(d)

    def call(self, message):
        self.conn.transport.write(message.encode())
        return self.next()


async def styxConnect(address, uname="glenda"):
    conn = await bounded(connectRaw(reactor, *address))
    client = StyxClient(conn)
    assert await client.call(styx.Tversion(NOTAG, 8216, "9P2000")) == styx.Rversion(
        NOTAG, 8216, "9P2000"
    )
    assert isinstance(await client.call(styx.Tattach(1, 0, NOFID, uname, "")), styx.Rattach)
    return client


@pytest_twisted.ensureDeferred
async def test_mixed_use(registry_server):
    """
    A service registered over Styx is found on the TCP find port and
    reported on the TCP event port; one registered over TCP is listed over
    Styx and reported to a Styx event read; one version.
    """
    host = registry_server.host
    watcher = await bounded(connectRaw(reactor, host, registry_server.eventPort))
    assert await bounded(watcher.readLine()) == b"READY"
    client = await styxConnect(registry_server.styxAddress)
    await client.call(styx.Twalk(1, 0, 1, ("new",)))
    await client.call(styx.Topen(1, 1, ORDWR))
    assert await client.call(styx.Twrite(1, 1, 0, b"styxsvc proto ssh")) == styx.Rwrite(1, 17)
    assert await bounded(watcher.readLine()) == b"00000001"
    answer = await bounded(exchange(reactor, host, registry_server.findPort, b"proto ssh\n"))
    assert answer == b"styxsvc proto ssh\n"
    await client.call(styx.Twalk(1, 0, 2, ("event",)))
    await client.call(styx.Topen(1, 2, OREAD))
    client.conn.transport.write(styx.Tread(5, 2, 0, 100).encode())
    tcp = await bounded(connectRaw(reactor, host, registry_server.newPort))
    tcp.send(b"tcpsvc proto http\n")
    assert await client.next() == styx.Rread(5, b"00000002\n")
    await client.call(styx.Twalk(1, 0, 3, ("index",)))
    await client.call(styx.Topen(1, 3, OREAD))
    assert (
        await client.call(styx.Tread(1, 3, 0, 8192))
    ).data == b"styxsvc proto ssh\ntcpsvc proto http\n"
    # Clunking the creating fid unregisters it for the TCP side too.
    assert await client.call(styx.Tclunk(1, 1)) == styx.Rclunk(1)
    assert await bounded(watcher.readLine()) == b"00000002"
    assert await bounded(watcher.readLine()) == b"00000003"
    answer = await bounded(exchange(reactor, host, registry_server.findPort, b"\n"))
    assert answer == b"tcpsvc proto http\n"
    await tcp.close()
    await client.conn.close()
    await watcher.close()


@pytest_twisted.ensureDeferred
async def test_acceptedSocketOptions(registry_server):
    """
    Every Styx connection the server accepts has C{TCP_NODELAY} (a reply is
    sent at once, never held until an earlier one is acknowledged) and TCP
    keepalive with the server's short timers, those accepted once the
    listening socket has the options as well as the first.
    """
    clients = [await styxConnect(registry_server.styxAddress) for _ in range(3)]
    try:
        connections = registry_server.styxServer._connections
        assert len(connections) == 3
        for protocol in connections:
            handle = protocol.transport.getHandle()
            assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assertKeepAlive(handle)
    finally:
        for client in clients:
            await client.conn.close()


@pytest_twisted.ensureDeferred
async def test_socketOptionsWithoutKeepAlive():
    """
    With C{keepAlive=None} an accepted connection gets C{TCP_NODELAY}
    alone.
    """
    server = StyxRegistryServer(Registry(), reactor, keepAlive=None)
    port = await server.listen("tcp:0:interface=127.0.0.1")
    try:
        client = await styxConnect(("127.0.0.1", port.getHost().port))
        (protocol,) = server._connections
        handle = protocol.transport.getHandle()
        assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        await client.conn.close()
    finally:
        await server.stopListening()
        await server.disconnectAll()


@pytest_twisted.ensureDeferred
async def test_loopback_garbage_and_cut(registry_server):
    """
    Over loopback: garbage and a connection cut in mid-message close only
    their connections; the server serves another meanwhile, and the cut
    connection's registration is gone.
    """
    good = await styxConnect(registry_server.styxAddress)
    bad = await bounded(connectRaw(reactor, *registry_server.styxAddress))
    bad.send(b"\x00" * 3 + b"garbage" * 100)
    await bounded(bad.whenClosed())
    cut = await styxConnect(registry_server.styxAddress, "cutter")
    await cut.call(styx.Twalk(1, 0, 1, ("new",)))
    await cut.call(styx.Topen(1, 1, ORDWR))
    assert await cut.call(styx.Twrite(1, 1, 0, b"cutsvc")) == styx.Rwrite(1, 6)
    cut.conn.transport.write(styx.Twrite(1, 1, 0, b"a b c d").encode()[:10])
    await bounded(cut.conn.close())
    await good.call(styx.Twalk(1, 0, 1, ("index",)))
    await good.call(styx.Topen(1, 1, OREAD))
    assert (await good.call(styx.Tread(1, 1, 0, 8192))).data == b""
    await good.conn.close()


@pytest_twisted.ensureDeferred
async def test_embedded_restart_keeps_styx_port():
    embedded = EmbeddedRegistry()
    await embedded.start()
    try:
        port = embedded.styxPort
        assert port != 0
        await embedded.restart()
        assert embedded.styxPort == port
        client = await styxConnect(embedded.styxAddress)
        await client.conn.close()
    finally:
        await embedded.stop()


# twistd regmgr --styx


def test_tap_styx_default_and_off():
    """
    C{--styx} defaults to loopback port 6675; C{--no-styx} turns it off; a
    bad endpoint is a usage error.
    """
    from twisted.python import usage

    from txinferno.tap import Options

    options = Options()
    options.parseOptions([])
    endpoint = options.endpoints["styx"]
    assert (endpoint._port, endpoint._interface) == (6675, "127.0.0.1")
    options = Options()
    options.parseOptions(["--no-styx"])
    assert "styx" not in options.endpoints
    with pytest.raises(usage.UsageError, match="--styx bogus:1: bad endpoint"):
        Options().parseOptions(["--styx", "bogus:1"])
    assert "--styx=" in str(Options()) and "--no-styx" in str(Options())


@pytest_twisted.ensureDeferred
async def test_tap_serves_styx():
    """
    C{makeService} serves the registry over Styx beside the TCP ports, from
    the same registry: a Styx registration is listed on the TCP find port.
    """
    from txinferno.tap import Options, makeService

    options = Options()
    options.parseOptions(
        [
            *LOOPBACK_PORTS,
            "--no-web",
        ]
    )
    service = makeService(options, reactor)
    assert [s.name for s in service] == ["ports"]
    assert service.styxServer.registry is service.server.registry
    service.startService()
    try:
        find, styxPort = service.server.ports[1], service.server.ports[3]
        findAddress, styxAddress = find.getHost(), styxPort.getHost()
        client = await styxConnect((styxAddress.host, styxAddress.port))
        await client.call(styx.Twalk(1, 0, 1, ("new",)))
        await client.call(styx.Topen(1, 1, OWRITE))
        await client.call(styx.Twrite(1, 1, 0, b"viatap k v"))
        answer = await bounded(exchange(reactor, findAddress.host, findAddress.port, b"k v\n"))
        assert answer == b"viatap k v\n"
        await client.conn.close()
    finally:
        await service.stopService()
        await service.server.disconnectAll()
        await service.styxServer.disconnectAll()


def test_inferno_authentication_is_named(server):
    """
    A peer that starts Inferno's authentication protocol is closed, and the
    log says what it spoke.
    """
    from twisted.logger import capturedLogs, formatEvent

    p = Peer(server)
    with capturedLogs() as events:
        assert p.sendBytes(b"0005\n1234\n") == []
    assert p.closed
    assert "authentication protocol" in " ".join(formatEvent(e) for e in events)


# The model's additions for Styx


def test_model_anonymous_then_named(clock):
    registry = Registry(clock)
    assert registry.started == T0
    seen = []
    registry.addObserver(seen.append)
    a = registry.create("conn", "alice")
    b = registry.create("conn", "bob")
    assert (a.id, b.id, a.state.name, a.uid) == (0, 1, "ANONYMOUS", "alice")
    assert seen == [] and len(registry) == 0
    clock.advance(5)
    registry.name(a, ["svc", "k", "v"])
    assert (a.state.name, a.writes, a.mtime, seen) == ("REGISTERED", 1, T0 + 5, [1])
    with pytest.raises(Exception, match="duplicate service name"):
        registry.name(b, ["svc"])
    assert b.state.name == "ANONYMOUS"
    with pytest.raises(Exception, match="odd attribute/value pairs"):
        registry.name(b, ["other", "k"])
    assert "other" in registry and b.writes == 0 and seen == [1, 2]
    tcp = registry.register("tcpconn", ["tcp", "a", "1"])
    assert (tcp.id, tcp.uid) == (2, "registry")


def test_model_remove(clock):
    registry = Registry(clock)
    a = registry.create(None, "alice")
    registry.name(a, ["svc", "persist", "1"])
    registry.remove(a)
    assert "svc" not in registry and a.state.name == "REMOVED" and registry.version == 2
    with pytest.raises(Exception, match="file does not exist"):
        registry.remove(a)
    with pytest.raises(Exception, match="buggy program!"):
        registry.name(a, ["again"])
    with pytest.raises(Exception, match="buggy program!"):
        registry.update(a, ["k", "v"])
    anonymous = registry.create(None, "alice")
    registry.remove(anonymous)
    assert registry.version == 3
    quiet = registry.create(None, "alice")
    assert (
        registry.release(quiet) is False and quiet.state.name == "REMOVED" and registry.version == 3
    )


# Any sequence of requests


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

fids = st.sampled_from([0, 1, 2, 3, NOFID])
tags = st.sampled_from([1, 2, NOTAG])
names = st.sampled_from(["new", "index", "find", "event", "svc", "..", "", ".", "x/y"])
texts = st.sampled_from(
    [b"svc a 1", b"svc persist 1", b"k v", b"odd", b"", b"\n", b"proto *", b"'a b' 1 2"]
)
requests = st.one_of(
    st.builds(
        styx.Tversion,
        tags,
        st.sampled_from([0, 63, 64, 256, 8216, 1 << 20]),
        st.sampled_from(["9P2000", "9P", "9P2000.u"]),
    ),
    st.builds(styx.Tauth, tags, fids, st.just("u"), st.just("")),
    st.builds(
        styx.Tattach, tags, fids, fids, st.sampled_from(["alice", "bob", "registry"]), st.just("")
    ),
    st.builds(styx.Tflush, tags, tags),
    st.builds(styx.Twalk, tags, fids, fids, st.lists(names, max_size=3).map(tuple)),
    st.builds(styx.Topen, tags, fids, st.sampled_from([0, 1, 2, 3, 4, 0x11, 0x42, 0x80])),
    st.builds(styx.Tcreate, tags, fids, names, st.just(0o644), st.just(1)),
    st.builds(
        styx.Tread,
        tags,
        fids,
        st.sampled_from([0, 9, 68, 1 << 63]),
        st.sampled_from([0, 4, 100, 8192, 70000]),
    ),
    st.builds(styx.Twrite, tags, fids, st.just(0), texts),
    st.builds(styx.Tclunk, tags, fids),
    st.builds(styx.Tremove, tags, fids),
    st.builds(styx.Tstat, tags, fids),
    st.builds(styx.Twstat, tags, fids, st.sampled_from([b"", b"\x00\x00", b"\x01\x00x"])),
)


@given(st.lists(st.lists(requests, min_size=1, max_size=30), min_size=1, max_size=3))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_any_requests(connections):
    """
    Any requests, on several connections at once: the server never raises,
    answers every request it does not keep pending (an event read) unless
    the connection closes, keeps its listing consistent with its model, and
    closing every connection leaves no service but persistent ones and no
    pending read.
    """
    clock = Clock()
    server = StyxRegistryServer(Registry(clock), clock)
    peers = [Peer(server, i) for i in range(len(connections))]
    for peer, batch in zip(peers, connections):
        replies = peer.send(*batch)
        assert all(r.TYPE % 2 == 1 for r in replies)
        if not peer.closed:
            # One reply per request, but for the event reads still pending.
            assert len(replies) == len(batch) - len(peer.protocol._reads)
    registry = server.registry
    listed = registry.answer([])
    assert listed.count(b"\n") == len(registry)
    for peer in peers:
        peer.lose()
    assert server._pending == {}
    assert all(s.get("persist") for s in registry)
