"""
The registry served over Styx (9P2000), as Inferno's own registry is when it
is exported (C{listen ... {export /mnt/registry&}}): one directory with
C{new}, C{index}, C{find}, C{event} and one file per service, served from
the same L{txinferno.server.registry.Registry} as the TCP ports, so a
service registered over Styx is listed by the TCP C{find} port and the other
way round, with one version counter.

The server answers as the real registry does through Inferno's export (the
[E] column of the protocol notes, section 9): version and msize rules,
iounit, directory reads, snapshots, error strings. It differs on purpose
where the real one is wrong or dangerous:

 - B{owners are enforced by the attach name}: a service is owned by the
   uname of the attach that created it, only its owner may open it for
   writing or remove it, static services and those registered through the
   TCP C{new} port belong to C{registry} (the real export serves every
   connection as one user, so anyone can remove anyone's service);
 - requests that crash the real registry (C{Tremove} of the root, of a
   removed service, of an unknown fid) get an C{Rerror};
 - every connection has explicit bounds: the msize (L{MAX_MSIZE}), the fids
   it may hold, the pending event reads, the bytes its read snapshots hold;
   and it stops reading requests while its peer does not read the replies.

A malformed message, a message over the msize, an unknown type or an
R-message closes that connection only, with no reply, as the real one does.
"""

from __future__ import annotations

import enum
import re
import struct
from typing import Any

from twisted.internet import defer, tcp
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from txinferno.errors import MalformedMessage, RegistryError
from txinferno.server.connections import ConnectionTracking, sendDirect
from txinferno.server.protocols import KEEPALIVE
from txinferno.server.registry import REGISTRY_USER, ServiceState
from txinferno.wire import styx
from txinferno.wire.rules import versionLine
from txinferno.wire.styx import (
    DMDIR,
    IOHDRSZ,
    MESSAGE_TYPES,
    NOTAG,
    OEXEC,
    ORCLOSE,
    OREAD,
    OTRUNC,
    OWRITE,
    QTDIR,
    FrameSplitter,
    Qid,
    Stat,
    decodeFields,
)
from txinferno.wire.words import splitWords

__all__ = [
    "StyxServerProtocol",
    "StyxServerFactory",
    "StyxRegistryServer",
    "File",
    "ConnectionState",
    "serviceQid",
    "MAX_MSIZE",
    "MIN_MSIZE",
]

MAX_MSIZE = 65560
"""
The largest msize the server agrees to (as Inferno's export does): a
Tversion asking for more gets this.
"""

MIN_MSIZE = 64
"""
The smallest msize accepted; less is C{message size too small}.
"""

PIECE = 8192
"""
The largest write the registry applies at once, and the largest iounit: a
longer Twrite is applied as pieces of this size, as Inferno's mount driver
cuts it (protocol notes, 9.8).
"""

MAX_FIDS = 65536
"""
Default of L{StyxRegistryServer.maxFids}.
"""

MAX_HELD = 64 * 1024 * 1024
"""
Default of L{StyxRegistryServer.maxHeldBytes}.
"""

FLUSH_AT = 65536
"""
Bytes of replies gathered while serving one read from the peer before they
are handed to the transport.
"""

STAT_TYPE = 0x4D
"""
The stat type of every file (C{'M'}: the mount driver, as through the real
export).
"""

NEGATIVE_OFFSET = 1 << 63

ATTACH_QID = Qid(QTDIR, 0, 0)
"""
The qid of an Rattach, and of a walk to C{..} or C{""} from the root.
"""

_INFERNO_AUTH = re.compile(rb"[0-9]{4}\n")
"""
How the first message of Inferno's authentication protocol starts (its
length, as four digits and a newline).
"""

_OPEN_BITS = 3 | OTRUNC | ORCLOSE
_TAG = struct.Struct("<H")
_UNOPENED_IOUNIT = (0 - IOHDRSZ) & 0xFFFFFFFF

# The error strings of the [E] column (protocol notes, 9.17).
NO_SUCH_FID = "no such fid"
FID_IN_USE = "fid in use"
WALK_OF_OPEN_FID = "walk of open fid"
UNKNOWN_MODE = "open/create -- unknown mode"
NOT_SUITABLE = "read/write -- not open in suitable mode"
COUNT_TOO_BIG = "read/write -- count too big"
NEGATIVE_IO_OFFSET = "negative i/o offset"
CANT_SEEK = "can't seek on a directory"
NO_AUTH = "authentication not required"
TOO_SMALL = "message size too small"
NOT_EXIST = "file does not exist"
NOT_DIRECTORY = "not a directory"
PERMISSION = "permission denied"
BAD_ARGUMENT = "bad argument"
BAD_SYNTAX = "bad syntax"
ODD_PAIRS = "odd attribute/value pairs"
CONCURRENT_READ = "concurrent read for event fid"
MALFORMED_STAT = "malformed stat buffer"
FORBIDS_CREATION = "mounted directory forbids creation"
FILE_NAME_SYNTAX = "file name syntax"
# Our own, for the bounds the real registry does not have.
TOO_MANY_FIDS = "too many fids on this connection"
TOO_MANY_READS = "too many pending reads on this connection"
HOLDS_TOO_MUCH = "too much read data held on this connection: clunk some fids"


class File(enum.Enum):
    """
    The kinds of file in the registry's tree, with their qid paths.
    """

    ROOT = 0
    NEW = 1
    INDEX = 2
    EVENT = 3
    FIND = 4
    SERVICE = 5


_NAMED = {"new": File.NEW, "index": File.INDEX, "find": File.FIND, "event": File.EVENT}
_MODES = {File.NEW: 0o666, File.INDEX: 0o444, File.EVENT: 0o444, File.FIND: 0o666}
_LISTED = (("new", File.NEW), ("index", File.INDEX), ("find", File.FIND), ("event", File.EVENT))
_FILE_QIDS = {f: Qid(0, 0, f.value) for f in _MODES}
_NAMES = {f: n for n, f in _LISTED}


def serviceQid(service) -> Qid:
    """
    @return: the qid of a service's file: path C{id << 4 | 5}, version the
        number of accepted writes.
    """
    return Qid(0, service.writes & 0xFFFFFFFF, service.id << 4 | 5)


def _pieces(data: bytes) -> list[bytes]:
    """
    Cut a write as Inferno's mount driver does, and each piece at its first
    NUL as the registry's string conversion does.
    """
    if len(data) <= PIECE:
        return [data.split(b"\0", 1)[0]]
    return [data[i : i + PIECE].split(b"\0", 1)[0] for i in range(0, len(data), PIECE)]


class _Fid:
    """
    One fid of one connection.

    @ivar file: the L{File} it stands for.
    @ivar service: for L{File.SERVICE}, the service.
    @ivar uname: the user of the attach it descends from.
    @ivar mode: the access it was opened with (C{OREAD}, C{OWRITE},
        C{ORDWR}), or L{None} while not open.
    @ivar creating: whether it created its service by opening C{new}.
    @ivar orclose: whether it was opened with C{ORCLOSE}.
    @ivar snapshot: the text (or, for the root, the list of encoded
        entries) its last read at offset 0 built.
    @ivar held: the bytes C{snapshot} holds.
    @ivar position: for the root, the next entry to read and the offset
        where the last read ended.
    @ivar filter: for C{find}, the words of its query.
    @ivar reported: for C{event}, the last version it reported.
    @ivar pending: for C{event}, its pending read.
    """

    __slots__ = (
        "file",
        "service",
        "uname",
        "mode",
        "creating",
        "orclose",
        "snapshot",
        "held",
        "entry",
        "dirOffset",
        "filter",
        "reported",
        "pending",
    )

    def __init__(self, file, service, uname):
        self.file = file
        self.service = service
        self.uname = uname
        self.mode = self.snapshot = self.pending = None
        self.creating = self.orclose = False
        self.held = self.entry = self.dirOffset = self.reported = 0
        self.filter = ()


class _PendingRead:
    """
    A Tread of C{event} waiting for the next change.

    @ivar key: its C{(tag, count)}, which finds its answer in the
        L{_EventAnswers} of the change.
    """

    __slots__ = ("protocol", "fid", "tag", "key")

    def __init__(self, protocol, fid, tag, count):
        self.protocol = protocol
        self.fid = fid
        self.tag = tag
        self.key = (tag, count)


class _EventAnswers(dict[tuple[int, int], bytes]):
    """
    The encoded Rreads of one change, for its pending event reads, by the
    C{(tag, count)} of each read (L{_PendingRead.key}): the text is encoded
    once for each count asked, and each tag is patched into those bytes;
    most readers ask alike, and then share one answer found by a plain
    lookup.
    """

    def __init__(self, version: int):
        dict.__init__(self)
        self.version = version
        self._byCount: dict[int, bytes] = {}

    def __missing__(self, key: tuple[int, int]) -> bytes:
        tag, count = key
        whole = self._byCount.get(count)
        if whole is None:
            whole = self._byCount[count] = styx.Rread(
                NOTAG, versionLine(self.version)[:count]
            ).encode()
        answer = self[key] = whole[:5] + _TAG.pack(tag) + whole[7:]
        return answer


class ConnectionState(enum.Enum):
    """
    The life of a L{StyxServerProtocol}.
    """

    SERVING = "serving"
    CLOSING = "closing"
    CLOSED = "closed"


@implementer(IPushProducer)
class StyxServerProtocol(Protocol):
    """
    One Styx connection to the registry.

    Requests are served one at a time, in order, as they arrive; replies
    are gathered and handed to the transport in batches.  While the
    transport's buffer is full (the peer does not read), no further request
    is served and the transport stops reading.

    @ivar server: the L{StyxRegistryServer}, set by the factory.
    @ivar msize: the negotiated message size, or L{None} before a Tversion.
    @ivar state: a L{ConnectionState}.
    """

    _log = Logger()
    server: StyxRegistryServer

    def __init__(self):
        self.msize = None
        self.state = ConnectionState.SERVING
        self._fids = {}
        self._reads = {}
        self._held = 0
        self._queue = []
        self._out = None
        self._outSize = 0
        self._paused = False

    # Connection life

    _socket = None

    def connectionMade(self):
        self.server._track(self)
        self._splitter = FrameSplitter(self.server.maxMsize)
        self._setMsize(None)
        self.transport.registerProducer(self, True)
        if type(self.transport) is tcp.Server:
            self._socket = self.transport.getHandle()

    def connectionLost(self, reason):
        self.state = ConnectionState.CLOSED
        self._socket = None
        self._queue = []
        server = self.server
        for read in list(self._reads):
            self._dropRead(read)
        fids, self._fids = self._fids, {}
        for fid in fids.values():
            self._release(fid)
        server._untrack(self)

    def _close(self, why):
        """
        Close the connection with no reply, because of a framing error.
        """
        if self.state is not ConnectionState.SERVING:
            return
        self.server.registry.warn(
            "Styx connections closed",
            self._log,
            "Styx connection from {peer} closed: {why}",
            peer=self.transport.getPeer(),
            why=why,
        )
        self.state = ConnectionState.CLOSING
        self._queue = []
        for read in list(self._reads):
            self._dropRead(read)
        self._flush()
        self.transport.loseConnection()

    # Producer: the transport's buffer

    def pauseProducing(self):
        self._paused = True
        self.transport.pauseProducing()

    def resumeProducing(self):
        self._paused = False
        self._serve()
        if not self._paused and self.state is ConnectionState.SERVING:
            self.transport.resumeProducing()

    def stopProducing(self):
        self._paused = True

    # Requests

    def dataReceived(self, data):
        if self.state is not ConnectionState.SERVING:
            return
        try:
            frames = self._splitter.feed(data)
        except MalformedMessage as e:
            if self.msize is None and _INFERNO_AUTH.match(data):
                self._close(
                    "the peer speaks Inferno's authentication protocol, not Styx "
                    "(an Inferno listen without -A?)"
                )
            else:
                self._close(str(e))
            return
        if frames:
            self._queue.extend(frames)
            self._serve()

    def _serve(self):
        """
        Serve the requests received, in order, until none is left, the peer
        stops reading or the connection closes.  The replies are gathered
        and handed to the transport at once (every L{FLUSH_AT} bytes, and at
        the end).
        """
        if self._out is not None:
            return
        queue = self._queue
        self._out = []
        self._outSize = 0
        handlers = self._handlers
        serving = ConnectionState.SERVING
        served = 0
        try:
            while served < len(queue) and not self._paused and self.state is serving:
                frame = queue[served]
                served += 1
                msize = self.msize
                if msize is not None and len(frame) > msize:
                    self._close("message of %d bytes over the msize %d" % (len(frame), msize))
                    break
                try:
                    fields = decodeFields(frame)
                except MalformedMessage as e:
                    self._close(str(e))
                    break
                handler = handlers.get(frame[4])
                if handler is None:
                    self._close("%s is not a request" % (MESSAGE_TYPES[frame[4]].__name__,))
                    break
                try:
                    reply = handler(self, *fields)
                except RegistryError as e:
                    reply = styx.Rerror(fields[0], e.text)
                if reply is not None:
                    self._send(reply.encode())
        finally:
            del queue[:served]
            self._flush()

    def _send(self, data: bytes):
        """
        Send a reply: with those being gathered while requests are served,
        else at once (see L{_sendNow}).
        """
        out = self._out
        if out is None:
            self._sendNow(data)
            return
        out.append(data)
        self._outSize += len(data)
        if self._outSize >= FLUSH_AT:
            self._flush()
            self._out = []

    def _sendNow(self, data: bytes):
        """
        Send a reply outside the serving of requests (an event read answered
        by a change).  On a plain TCP transport whose buffer is empty the
        bytes go straight to the socket, which spares the reactor a round of
        write notifications per connection (it matters for a change that
        answers 1,000 readers); what the socket does not take goes to the
        transport's buffer.
        """
        # A tcp.Server's buffer, when self._socket is set.
        transport: Any = self.transport
        if (
            self._socket is not None
            and not transport._tempDataBuffer
            and transport.offset == len(transport.dataBuffer)
        ):
            data = sendDirect(self._socket, data)
            if not data:
                return
        transport.write(data)

    def _flush(self):
        out, self._out = self._out, None
        self._outSize = 0
        if out:
            self.transport.writeSequence(out)

    # Fids

    def _fid(self, number) -> _Fid:
        fid = self._fids.get(number)
        if fid is None:
            raise RegistryError(NO_SUCH_FID)
        return fid

    def _addFid(self, number, fid):
        if len(self._fids) >= self.server.maxFids:
            raise RegistryError(TOO_MANY_FIDS)
        self._fids[number] = fid

    def _release(self, fid: _Fid):
        """
        A fid is clunked (or its connection closed): drop what it holds and,
        for the fid that created a service, remove the service (unless it
        persists, or whatever its persist if opened C{ORCLOSE}).
        """
        self._hold(fid, None, 0)
        if fid.creating:
            service = fid.service
            registry = self.server.registry
            if fid.orclose and service.registered:
                registry.remove(service)
            else:
                registry.release(service)

    def _hold(self, fid: _Fid, snapshot, size: int):
        """
        Keep C{snapshot} (of C{size} bytes) on C{fid} in place of what it
        held, within the connection's bound.
        """
        held = self._held - fid.held + size
        if held > self.server.maxHeldBytes:
            raise RegistryError(HOLDS_TOO_MUCH)
        self._held = held
        fid.snapshot = snapshot
        fid.held = size

    def _setMsize(self, msize):
        """
        Agree to an msize: the largest message accepted, the largest count
        of a read or write, the iounit of an open (before a Tversion: the
        server's maximum, its count, and a nonsense iounit, as Inferno's
        export answers).
        """
        self.msize = msize
        if msize is None:
            self._splitter.maximum = self.server.maxMsize
            self._maxCount = self.server.maxMsize - IOHDRSZ
            self._iounit = _UNOPENED_IOUNIT
        else:
            self._splitter.maximum = msize
            self._maxCount = msize - IOHDRSZ
            self._iounit = min(msize - IOHDRSZ, PIECE)

    # The requests, one method each, called with the request's fields in
    # order, tag first (styx.decodeFields: no message object is made); each
    # returns its reply, or None for an event read left pending.

    def _version(self, tag, msize, version):
        if version[:2] != "9P" or version[2:] < "2000":
            return styx.Rversion(tag, msize, "unknown")
        if msize < MIN_MSIZE:
            raise RegistryError(TOO_SMALL)
        self._setMsize(min(msize, self.server.maxMsize))
        return styx.Rversion(tag, self.msize, styx.VERSION)

    def _auth(self, tag, afid, uname, aname):
        raise RegistryError(NO_AUTH)

    def _attach(self, tag, number, afid, uname, aname):
        if number in self._fids:
            raise RegistryError(FID_IN_USE)
        self._addFid(number, _Fid(File.ROOT, None, uname))
        return styx.Rattach(tag, ATTACH_QID)

    def _flushRequest(self, tag, oldtag):
        for read in self._reads:
            if read.tag == oldtag:
                self._dropRead(read)
                break
        return styx.Rflush(tag)

    def _walk(self, tag, number, newfid, names):
        fid = self._fid(number)
        if fid.mode is not None:
            raise RegistryError(WALK_OF_OPEN_FID)
        if newfid != number and newfid in self._fids:
            raise RegistryError(FID_IN_USE)
        file, service = fid.file, fid.service
        registry = self.server.registry
        qids = []
        failure = None
        for name in names:
            if file is not File.ROOT:
                failure = NOT_DIRECTORY
                break
            if name == ".." or name == "":
                qids.append(ATTACH_QID)
                continue
            named = _NAMED.get(name)
            if named is not None:
                file = named
                qids.append(_FILE_QIDS[named])
                continue
            if name not in registry:
                failure = NOT_EXIST
                break
            file, service = File.SERVICE, registry[name]
            qids.append(serviceQid(service))
        if failure is not None:
            if not qids:
                raise RegistryError(failure)
            return styx.Rwalk(tag, tuple(qids))
        if newfid == number:
            fid.file, fid.service = file, service
        else:
            walked = _Fid(file, service, fid.uname)
            self._addFid(newfid, walked)
        return styx.Rwalk(tag, tuple(qids))

    def _open(self, tag, number, mode):
        fid = self._fid(number)
        if fid.mode is not None:
            raise RegistryError(UNKNOWN_MODE)
        access = mode & 3
        if mode & ~_OPEN_BITS or access == OEXEC:
            raise RegistryError(BAD_ARGUMENT)
        writing = access != OREAD or mode & OTRUNC
        file = fid.file
        registry = self.server.registry
        if file is File.ROOT:
            if writing:
                raise RegistryError(PERMISSION)
            qid = Qid(QTDIR, registry.version & 0xFFFFFFFF, 0)
        elif file is File.NEW:
            fid.service = registry.create(self, fid.uname)
            fid.file = File.SERVICE
            fid.creating = True
            qid = serviceQid(fid.service)
        elif file is File.SERVICE:
            service = fid.service
            if service.state is ServiceState.REMOVED:
                raise RegistryError(NOT_EXIST)
            if writing and service.uid != fid.uname:
                raise RegistryError(PERMISSION)
            qid = serviceQid(service)
        else:
            if writing and file is not File.FIND:
                raise RegistryError(PERMISSION)
            if file is File.EVENT:
                fid.reported = registry.version
            qid = _FILE_QIDS[file]
        fid.mode = access
        fid.orclose = bool(mode & ORCLOSE)
        return styx.Ropen(tag, qid, self._iounit)

    def _create(self, tag, number, name, perm, mode):
        fid = self._fid(number)
        if fid.mode is not None:
            raise RegistryError(UNKNOWN_MODE)
        if name in ("", ".", ".."):
            raise RegistryError(FILE_NAME_SYNTAX)
        if "/" in name:
            raise RegistryError("bad character in file name: %s" % (name,))
        if fid.file is not File.ROOT:
            raise RegistryError(NOT_DIRECTORY)
        raise RegistryError(FORBIDS_CREATION)

    def _checkIO(self, fid: _Fid, count: int, offset: int):
        if count > self._maxCount:
            raise RegistryError(COUNT_TOO_BIG)
        if offset >= NEGATIVE_OFFSET:
            raise RegistryError(NEGATIVE_IO_OFFSET)
        if fid.mode is None:
            raise RegistryError(UNKNOWN_MODE)

    def _read(self, tag, number, offset, count):
        fid = self._fid(number)
        self._checkIO(fid, count, offset)
        if fid.mode == OWRITE:
            raise RegistryError(NOT_SUITABLE)
        file = fid.file
        registry = self.server.registry
        if file is File.SERVICE:
            service = fid.service
            if offset == 0:
                service.atime = registry.now()
            if service.state is ServiceState.REGISTERED:
                return styx.Rread(tag, service.line()[offset : offset + count])
            return styx.Rread(tag, b"")
        if file is File.EVENT:
            return self._readEvent(fid, tag, count)
        if file is File.ROOT:
            return styx.Rread(tag, self._readDirectory(fid, offset, count))
        if offset == 0 or fid.snapshot is None:
            text = registry.answer(fid.filter if file is File.FIND else ())
            self._hold(fid, text, len(text))
        return styx.Rread(tag, fid.snapshot[offset : offset + count])

    def _readDirectory(self, fid: _Fid, offset: int, count: int) -> bytes:
        if offset == 0:
            entries = self.server.directory()
            self._hold(fid, entries, sum(map(len, entries)))
            fid.entry = 0
            fid.dirOffset = 0
        elif offset != fid.dirOffset or fid.snapshot is None:
            raise RegistryError(CANT_SEEK)
        entries = fid.snapshot
        taken = []
        size = 0
        index = fid.entry
        while index < len(entries) and size + len(entries[index]) <= count:
            taken.append(entries[index])
            size += len(entries[index])
            index += 1
        fid.entry = index
        fid.dirOffset += size
        return b"".join(taken)

    def _readEvent(self, fid: _Fid, tag: int, count: int):
        if fid.pending is not None:
            raise RegistryError(CONCURRENT_READ)
        version = self.server.registry.version
        if version != fid.reported:
            fid.reported = version
            return styx.Rread(tag, versionLine(version)[:count])
        if len(self._reads) >= self.server.maxFids:
            raise RegistryError(TOO_MANY_READS)
        read = _PendingRead(self, fid, tag, count)
        fid.pending = read
        self._reads[read] = None
        self.server._pending[read] = None
        return None

    def _answerRead(self, read: _PendingRead, version: int, answer: bytes):
        """
        A change answers a pending event read with C{answer}, its encoded
        Rread.
        """
        del self._reads[read]
        fid = read.fid
        fid.pending = None
        fid.reported = version
        self._send(answer)

    def _dropRead(self, read: _PendingRead):
        del self._reads[read]
        read.fid.pending = None
        self.server._pending.pop(read, None)

    def _write(self, tag, number, offset, data):
        fid = self._fid(number)
        self._checkIO(fid, len(data), offset)
        if fid.mode == OREAD:
            raise RegistryError(NOT_SUITABLE)
        if fid.file is File.FIND:
            for piece in _pieces(data):
                words = splitWords(piece)
                if len(words) % 2:
                    raise RegistryError(ODD_PAIRS)
                fid.filter = words
        else:
            service = fid.service
            registry = self.server.registry
            for piece in _pieces(data):
                words = splitWords(piece)
                if service.state is ServiceState.ANONYMOUS:
                    registry.name(service, words)
                else:
                    registry.update(service, words)
        return styx.Rwrite(tag, len(data))

    def _clunk(self, tag, number):
        fid = self._fids.pop(number, None)
        if fid is None:
            raise RegistryError(NO_SUCH_FID)
        self._release(fid)
        return styx.Rclunk(tag)

    def _remove(self, tag, number):
        fid = self._fids.pop(number, None)
        if fid is None:
            raise RegistryError(NO_SUCH_FID)
        try:
            if fid.file is not File.SERVICE:
                raise RegistryError(PERMISSION)
            service = fid.service
            if service.state is ServiceState.REMOVED:
                raise RegistryError(NOT_EXIST)
            if service.uid != fid.uname:
                raise RegistryError(PERMISSION)
            self.server.registry.remove(service)
        finally:
            self._release(fid)
        return styx.Rremove(tag)

    def _stat(self, tag, number):
        fid = self._fid(number)
        if fid.file is File.SERVICE and fid.service.state is ServiceState.REMOVED:
            raise RegistryError(NOT_EXIST)
        return styx.Rstat(tag, self.server.stat(fid.file, fid.service))

    def _wstat(self, tag, number, stat):
        self._fid(number)
        try:
            Stat.decode(stat)
        except MalformedMessage:
            raise RegistryError(MALFORMED_STAT) from None
        raise RegistryError(PERMISSION)

    _handlers = {
        styx.Tversion.TYPE: _version,
        styx.Tauth.TYPE: _auth,
        styx.Tattach.TYPE: _attach,
        styx.Tflush.TYPE: _flushRequest,
        styx.Twalk.TYPE: _walk,
        styx.Topen.TYPE: _open,
        styx.Tcreate.TYPE: _create,
        styx.Tread.TYPE: _read,
        styx.Twrite.TYPE: _write,
        styx.Tclunk.TYPE: _clunk,
        styx.Tremove.TYPE: _remove,
        styx.Tstat.TYPE: _stat,
        styx.Twstat.TYPE: _wstat,
    }


class StyxServerFactory(Factory):
    """
    Build the L{StyxServerProtocol}s of one L{StyxRegistryServer}.
    """

    protocol = StyxServerProtocol

    def __init__(self, server: StyxRegistryServer):
        self.server = server

    def buildProtocol(self, addr):
        p = Factory.buildProtocol(self, addr)
        p.server = self.server
        return p


class StyxRegistryServer(ConnectionTracking):
    """
    A L{txinferno.server.registry.Registry} served over Styx.

    @ivar registry: the registry served.
    @ivar reactor: the reactor.
    @ivar maxMsize: the largest msize agreed to, and the largest message
        accepted before a Tversion.
    @ivar maxFids: the most fids (and pending event reads) one connection
        may hold.
    @ivar maxHeldBytes: the most bytes of read snapshots (the text of
        C{index} and C{find}, the entries of the root) one connection's fids
        may hold at once.
    @ivar keepAlive: the TCP keepalive timers of every accepted connection,
        C{(idle, interval, count)} in seconds (see
        L{txinferno._keepalive.enableKeepAlive}), or L{None} to leave
        keepalive off.  Every accepted TCP connection also has
        C{TCP_NODELAY}: a reply is a message the peer waits for, never to
        be held back until the peer acknowledges an earlier one (which,
        with the peer's delayed acknowledgement, held the answers of event
        reads back by tens of milliseconds).
    @ivar factory: the L{StyxServerFactory}.
    @ivar port: the listening port after L{listen}, else L{None}.
    """

    _log = Logger()

    def __init__(
        self,
        registry,
        reactor=None,
        maxMsize: int = MAX_MSIZE,
        maxFids: int = MAX_FIDS,
        maxHeldBytes: int = MAX_HELD,
        keepAlive: tuple[int, int, int] | None = KEEPALIVE,
    ):
        """
        @type registry: L{txinferno.server.registry.Registry}
        @param reactor: the reactor; the global one when L{None}.
        """
        if reactor is None:
            from twisted.internet import reactor
        if maxMsize < MIN_MSIZE:
            raise ValueError("maxMsize %d: at least %d" % (maxMsize, MIN_MSIZE))
        self.registry = registry
        self.reactor = reactor
        self.maxMsize = maxMsize
        self.maxFids = maxFids
        self.maxHeldBytes = maxHeldBytes
        self.keepAlive = keepAlive
        self.factory = StyxServerFactory(self)
        self.port = None
        self._initConnections()
        self._pending: dict[_PendingRead, None] = {}
        registry.addObserver(self._changed)

    def listen(self, endpoint) -> defer.Deferred:
        """
        Start listening.

        @param endpoint: where to serve.
        @type endpoint: L{IStreamServerEndpoint} or a server endpoint string
        @return: a L{Deferred} that fires with the listening port
            (L{IListeningPort}), or fails with the listening error.
        """
        if isinstance(endpoint, str):
            endpoint = serverFromString(self.reactor, endpoint)

        def listened(port):
            self.port = port
            self._log.info("Styx port listening on {address}", address=port.getHost())
            return port

        return endpoint.listen(self.factory).addCallback(listened)

    def stopListening(self) -> defer.Deferred:
        """
        Stop listening; open connections stay open.

        @return: a L{Deferred} that fires with L{None} once the port is
            closed.
        """
        port, self.port = self.port, None
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening).addCallback(lambda _: None)

    def disconnectAll(self) -> defer.Deferred:
        """
        Abort every open connection (their fids are clunked as they close).

        @return: a L{Deferred} that fires with L{None} once every connection
            is closed.
        """
        return ConnectionTracking.disconnectAll(self)

    def _track(self, protocol):
        """
        A connection is made: track it, and give its socket L{keepAlive}
        and C{TCP_NODELAY} (see
        L{txinferno.server.connections.acceptedSocketOptions}).
        """
        ConnectionTracking._track(self, protocol)
        self._giveOptions(protocol, "styx", self.keepAlive, noDelay=True)

    def stat(self, file: File, service=None) -> Stat:
        """
        @return: the stat entry of a file of the tree (an anonymous
            service's has name C{''}).
        """
        registry = self.registry
        if file is File.SERVICE:
            return Stat(
                STAT_TYPE,
                0,
                serviceQid(service),
                0o644,
                service.atime,
                service.mtime,
                0,
                service.name or "",
                service.uid,
                service.uid,
                "",
            )
        started = registry.started
        if file is File.ROOT:
            return Stat(
                STAT_TYPE,
                0,
                Qid(QTDIR, registry.version & 0xFFFFFFFF, 0),
                DMDIR | 0o777,
                started,
                started,
                0,
                ".",
                REGISTRY_USER,
                REGISTRY_USER,
                "",
            )
        return Stat(
            STAT_TYPE,
            0,
            _FILE_QIDS[file],
            _MODES[file],
            started,
            started,
            0,
            _NAMES[file],
            REGISTRY_USER,
            REGISTRY_USER,
            "",
        )

    def directory(self) -> list[bytes]:
        """
        @return: the encoded entries of a read of the root: C{new},
            C{index}, C{find}, C{event}, then every service in slot order.
        """
        entries = [self.stat(file).encode() for name, file in _LISTED]
        entries.extend(self.stat(File.SERVICE, s).encode() for s in self.registry)
        return entries

    def _changed(self, version):
        """
        Registry observer: answer every pending event read of every
        connection.
        """
        pending = self._pending
        if not pending:
            return
        self._pending = {}
        answers = _EventAnswers(version)
        for read in pending:
            read.protocol._answerRead(read, version, answers[read.key])
