"""
Styx (9P2000) messages, without any I/O: every T- and R-message as a class
with C{encode()}, L{decode} from bytes, qids, stat (directory) entries, the
protocol's constants and L{FrameSplitter}, which cuts a byte stream into
whole messages under an explicit maximum size.

The wire format (little-endian) is C{size[4] type[1] tag[2] ...}, where size
counts the whole message; strings are C{len[2]} followed by UTF-8; a qid is
C{type[1] vers[4] path[8]}; a stat entry is C{size[2] type[2] dev[4]
qid[13] mode[4] atime[4] mtime[4] length[8] name uid gid muid} (protocol
notes, section 9).

Strings are decoded as UTF-8 with C{surrogateescape}, so bytes that are not
UTF-8 survive a decode and encode unchanged.

L{decode} raises only L{MalformedMessage}, whatever the bytes; encoding a
message whose fields are out of range raises L{ValueError}.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple, dataclass_transform

from txinferno.errors import MalformedMessage

__all__ = [
    "VERSION",
    "NOTAG",
    "NOFID",
    "IOHDRSZ",
    "MAXWELEM",
    "QTDIR",
    "QTAPPEND",
    "QTEXCL",
    "QTAUTH",
    "QTTMP",
    "QTFILE",
    "DMDIR",
    "DMAPPEND",
    "DMEXCL",
    "DMAUTH",
    "DMTMP",
    "OREAD",
    "OWRITE",
    "ORDWR",
    "OEXEC",
    "OTRUNC",
    "ORCLOSE",
    "MalformedMessage",
    "FrameTooLarge",
    "Qid",
    "Stat",
    "decodeDirectory",
    "Message",
    "Tversion",
    "Rversion",
    "Tauth",
    "Rauth",
    "Tattach",
    "Rattach",
    "Rerror",
    "Tflush",
    "Rflush",
    "Twalk",
    "Rwalk",
    "Topen",
    "Ropen",
    "Tcreate",
    "Rcreate",
    "Tread",
    "Rread",
    "Twrite",
    "Rwrite",
    "Tclunk",
    "Rclunk",
    "Tremove",
    "Rremove",
    "Tstat",
    "Rstat",
    "Twstat",
    "Rwstat",
    "MESSAGE_TYPES",
    "decode",
    "decodeFields",
    "FrameSplitter",
]

VERSION = "9P2000"
"""
The protocol version string.
"""

NOTAG = 0xFFFF
"""
The tag of a Tversion (any tag works; see the protocol notes, 9.14).
"""

NOFID = 0xFFFFFFFF
"""
The fid that stands for "no fid" (the afid of an unauthenticated Tattach).
"""

IOHDRSZ = 24
"""
The room a Tread or Twrite header takes in a message: the largest data
count a message of msize M may carry is M - IOHDRSZ.
"""

MAXWELEM = 16
"""
The most names one Twalk may carry; a Twalk with more is malformed.
"""

HEADER_SIZE = 7
"""
C{size[4] type[1] tag[2]}: the shortest possible message.
"""

# qid types
QTDIR = 0x80
QTAPPEND = 0x40
QTEXCL = 0x20
QTAUTH = 0x08
QTTMP = 0x04
QTFILE = 0x00

# permission bits of a stat's mode
DMDIR = 0x80000000
DMAPPEND = 0x40000000
DMEXCL = 0x20000000
DMAUTH = 0x08000000
DMTMP = 0x04000000

# open modes
OREAD = 0
OWRITE = 1
ORDWR = 2
OEXEC = 3
OTRUNC = 0x10
ORCLOSE = 0x40


class FrameTooLarge(MalformedMessage):
    """
    A message's size field is larger than the maximum the receiver allows.

    @ivar size: the size field.
    @ivar maximum: the maximum.
    """

    def __init__(self, size: int, maximum: int):
        MalformedMessage.__init__(
            self, "Styx message of %d bytes is over the maximum of %d" % (size, maximum)
        )
        self.size = size
        self.maximum = maximum


_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<IBH")
_QID = struct.Struct("<BIQ")
_TWALK = struct.Struct("<HIIH")
_TWRITE = struct.Struct("<HIQI")
_HEADER_COUNT = struct.Struct("<IBHI")
_OPEN = struct.Struct("<IBHBIQI")
_WRITE = struct.Struct("<IBHIQI")
_RWALK = [struct.Struct("<IBHH" + "BIQ" * count) for count in range(MAXWELEM + 1)]


def _pack(fmt: struct.Struct, *values) -> bytes:
    try:
        return fmt.pack(*values)
    except struct.error as e:
        raise ValueError("Styx field out of range: %s (%r)" % (e, values)) from None


def _string(value: str) -> bytes:
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except (UnicodeEncodeError, AttributeError) as e:
        raise ValueError("Styx string cannot be encoded: %r (%s)" % (value, e)) from None
    return _pack(_U16, len(raw)) + raw


class _Reader:
    """
    A cursor over the body of one message; every short read raises
    L{MalformedMessage}.
    """

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes, offset: int):
        self.data = data
        self.offset = offset

    def fixed(self, fmt: struct.Struct):
        end = self.offset + fmt.size
        if end > len(self.data):
            raise MalformedMessage("Styx message shorter than its fields")
        values = fmt.unpack_from(self.data, self.offset)
        self.offset = end
        return values

    def u8(self) -> int:
        return self.fixed(_U8)[0]

    def u16(self) -> int:
        return self.fixed(_U16)[0]

    def u32(self) -> int:
        return self.fixed(_U32)[0]

    def u64(self) -> int:
        return self.fixed(_U64)[0]

    def raw(self, count: int) -> bytes:
        end = self.offset + count
        if end > len(self.data):
            raise MalformedMessage("Styx message shorter than its fields")
        value = self.data[self.offset : end]
        self.offset = end
        return bytes(value)

    def string(self) -> str:
        return self.raw(self.u16()).decode("utf-8", "surrogateescape")

    def qid(self) -> Qid:
        return Qid(*self.fixed(_QID))

    def end(self) -> None:
        if self.offset != len(self.data):
            raise MalformedMessage(
                "Styx message has %d bytes after its fields" % (len(self.data) - self.offset,)
            )


class Qid(NamedTuple):
    """
    A file's server-unique identity: C{type[1] vers[4] path[8]}.
    """

    type: int
    vers: int
    path: int

    def encode(self) -> bytes:
        return _pack(_QID, self.type, self.vers, self.path)


@dataclass(frozen=True, slots=True)
class Stat:
    """
    A stat (directory) entry.
    """

    type: int
    dev: int
    qid: Qid
    mode: int
    atime: int
    mtime: int
    length: int
    name: str
    uid: str
    gid: str
    muid: str

    _FIXED: ClassVar[struct.Struct] = struct.Struct("<HI13sIIIQ")

    def encode(self) -> bytes:
        """
        @return: the entry with its own C{size[2]} in front.
        """
        body = (
            _pack(
                self._FIXED,
                self.type,
                self.dev,
                self.qid.encode(),
                self.mode,
                self.atime,
                self.mtime,
                self.length,
            )
            + _string(self.name)
            + _string(self.uid)
            + _string(self.gid)
            + _string(self.muid)
        )
        return _pack(_U16, len(body)) + body

    @classmethod
    def decode(cls, data: bytes) -> Stat:
        """
        Decode one entry, C{size[2]} included, that fills C{data} exactly.

        @raise MalformedMessage: if it does not.
        """
        reader = _Reader(data, 0)
        stat = cls._read(reader)
        reader.end()
        return stat

    @classmethod
    def _read(cls, reader: _Reader) -> Stat:
        size = reader.u16()
        inner = _Reader(reader.raw(size), 0)
        type_, dev, qid, mode, atime, mtime, length = inner.fixed(cls._FIXED)
        stat = cls(
            type_,
            dev,
            Qid(*_QID.unpack(qid)),
            mode,
            atime,
            mtime,
            length,
            inner.string(),
            inner.string(),
            inner.string(),
            inner.string(),
        )
        inner.end()
        return stat


def decodeDirectory(data: bytes) -> list[Stat]:
    """
    Decode the data of a directory read: whole stat entries, back to back.

    @raise MalformedMessage: if C{data} is not a sequence of whole entries.
    """
    reader = _Reader(data, 0)
    entries = []
    while reader.offset < len(data):
        entries.append(Stat._read(reader))
    return entries


class Message:
    """
    The base of every Styx message class: C{TYPE} is its type number and
    every message has a C{tag}.
    """

    __slots__ = ()
    TYPE: ClassVar[int]
    _NAMES: ClassVar[tuple[str, ...]]
    tag: int

    def encode(self) -> bytes:
        """
        @return: the whole message, size field included.
        @raise ValueError: if a field is out of its range.
        """
        body = self._body()
        return _pack(_HEADER, HEADER_SIZE + len(body), self.TYPE, self.tag) + body

    def _body(self) -> bytes:
        """
        @return: the fields after the tag (for the classes that use this
            C{encode}).
        """
        raise NotImplementedError()

    @classmethod
    def _decode(cls, tag: int, data: bytes) -> Message:
        reader = _Reader(data, HEADER_SIZE)
        message = cls._read(tag, reader)
        reader.end()
        return message

    @classmethod
    def _fields(cls, data: bytes) -> tuple:
        """
        @return: the fields of the whole message C{data} (whose header is
            checked), tag first, as L{decodeFields} gives them.
        """
        message = cls._decode(data[5] | data[6] << 8, data)
        return tuple([getattr(message, name) for name in cls._NAMES])

    @classmethod
    def _read(cls, tag: int, reader: _Reader) -> Message:
        """
        Read the fields after the tag (for the classes that use this
        C{_decode}).
        """
        raise NotImplementedError()


_LAYOUT_CODEC = """
def encode(self):
    try:
        return _pack({size}, {type}, {values})
    except struct.error as e:
        raise ValueError("Styx field out of range: %s (%r)" % (e, self)) from None

def _fields(cls, data):
    if len(data) != {size}:
        raise MalformedMessage("{name} of %d bytes: it has {size}" % (len(data),))
    return _unpack(data)[2:]

def _decode(cls, tag, data):
    if len(data) != {size}:
        raise MalformedMessage("{name} of %d bytes: it has {size}" % (len(data),))
    _, _, {names} = _unpack(data)
    return cls({names})
"""


def _layoutCodec(cls, layout: str) -> None:
    """
    Give a message class whose fields after the tag are all integers an
    C{encode} and a C{_decode} compiled for its fields (one C{struct} call
    each way, no per-message lists or tuples beyond the struct's own).

    @param layout: the struct format characters of those fields.
    """
    whole = struct.Struct("<IBH" + layout)
    names = ", ".join(f.name for f in fields(cls))
    source = _LAYOUT_CODEC.format(
        size=whole.size,
        type=cls.TYPE,
        name=cls.__name__,
        names=names + ",",
        values=", ".join("self." + f.name for f in fields(cls)),
    )
    namespace: dict[str, Any] = {
        "_pack": whole.pack,
        "_unpack": whole.unpack,
        "struct": struct,
        "MalformedMessage": MalformedMessage,
    }
    exec(source, namespace)
    cls.encode = namespace["encode"]
    cls._decode = classmethod(namespace["_decode"])
    cls._fields = classmethod(namespace["_fields"])


@dataclass_transform(eq_default=True)
def _message(cls: Any = None, layout: str | None = None) -> Any:
    """
    Make a message class a slotted dataclass (its instances are meant to be
    treated as immutable; they are not frozen, for speed, but hashable).

    @param layout: for a message whose fields after the tag are all
        integers, their struct format characters (see L{_layoutCodec}).
    """

    def make(cls):
        cls = dataclass(slots=True, unsafe_hash=True)(cls)
        cls._NAMES = tuple(f.name for f in fields(cls))
        if layout is not None:
            _layoutCodec(cls, layout)
        return cls

    return make(cls) if cls is not None else make


@_message
class Tversion(Message):
    TYPE: ClassVar[int] = 100
    tag: int
    msize: int
    version: str

    def _body(self):
        return _pack(_U32, self.msize) + _string(self.version)

    @classmethod
    def _read(cls, tag, reader):
        return cls(tag, reader.u32(), reader.string())


@_message
class Rversion(Tversion):
    TYPE: ClassVar[int] = 101


@_message
class Tauth(Message):
    TYPE: ClassVar[int] = 102
    tag: int
    afid: int
    uname: str
    aname: str

    def _body(self):
        return _pack(_U32, self.afid) + _string(self.uname) + _string(self.aname)

    @classmethod
    def _read(cls, tag, reader):
        return cls(tag, reader.u32(), reader.string(), reader.string())


@_message
class Rauth(Message):
    TYPE: ClassVar[int] = 103
    tag: int
    aqid: Qid

    def _body(self):
        return self.aqid.encode()

    @classmethod
    def _read(cls, tag, reader):
        return cls(tag, reader.qid())


@_message
class Tattach(Message):
    TYPE: ClassVar[int] = 104
    tag: int
    fid: int
    afid: int
    uname: str
    aname: str

    def _body(self):
        return (
            _pack(_U32, self.fid)
            + _pack(_U32, self.afid)
            + _string(self.uname)
            + _string(self.aname)
        )

    @classmethod
    def _read(cls, tag, reader):
        return cls(tag, reader.u32(), reader.u32(), reader.string(), reader.string())


@_message
class Rattach(Message):
    TYPE: ClassVar[int] = 105
    tag: int
    qid: Qid

    def _body(self):
        return self.qid.encode()

    @classmethod
    def _read(cls, tag, reader):
        return cls(tag, reader.qid())


@_message
class Rerror(Message):
    TYPE: ClassVar[int] = 107
    tag: int
    ename: str

    def _body(self):
        return _string(self.ename)

    @classmethod
    def _read(cls, tag, reader):
        return cls(tag, reader.string())


@_message(layout="H")
class Tflush(Message):
    TYPE: ClassVar[int] = 108
    tag: int
    oldtag: int


@_message(layout="")
class Rflush(Message):
    TYPE: ClassVar[int] = 109
    tag: int


@_message
class Twalk(Message):
    """
    C{names} is a tuple of at most L{MAXWELEM} names.
    """

    TYPE: ClassVar[int] = 110
    tag: int
    fid: int
    newfid: int
    names: tuple[str, ...]

    def _body(self):
        if len(self.names) > MAXWELEM:
            raise ValueError("Twalk of %d names: at most %d" % (len(self.names), MAXWELEM))
        return (
            _pack(_U32, self.fid)
            + _pack(_U32, self.newfid)
            + _pack(_U16, len(self.names))
            + b"".join(_string(name) for name in self.names)
        )

    @classmethod
    def _decode(cls, tag, data):
        return cls(*cls._fields(data))

    @classmethod
    def _fields(cls, data):
        end = len(data)
        if end < 17:
            raise MalformedMessage("Styx message shorter than its fields")
        tag, fid, newfid, count = _TWALK.unpack_from(data, 5)
        if count > MAXWELEM:
            raise MalformedMessage("Twalk of %d names: at most %d" % (count, MAXWELEM))
        offset = 17
        names = []
        for _ in range(count):
            if offset + 2 > end:
                raise MalformedMessage("Styx message shorter than its fields")
            start = offset + 2
            offset = start + (data[offset] | data[offset + 1] << 8)
            if offset > end:
                raise MalformedMessage("Styx message shorter than its fields")
            names.append(data[start:offset].decode("utf-8", "surrogateescape"))
        if offset != end:
            raise MalformedMessage("Styx message has %d bytes after its fields" % (end - offset,))
        return tag, fid, newfid, tuple(names)


@_message
class Rwalk(Message):
    """
    C{qids} is a tuple of at most L{MAXWELEM} qids.
    """

    TYPE: ClassVar[int] = 111
    tag: int
    qids: tuple[Qid, ...]

    def encode(self):
        qids = self.qids
        count = len(qids)
        if count > MAXWELEM:
            raise ValueError("Rwalk of %d qids: at most %d" % (count, MAXWELEM))
        values = qids[0] if count == 1 else [value for qid in qids for value in qid]
        try:
            return _RWALK[count].pack(9 + 13 * count, self.TYPE, self.tag, count, *values)
        except (struct.error, TypeError) as e:
            raise ValueError("Styx field out of range: %s (%r)" % (e, self)) from None

    @classmethod
    def _decode(cls, tag, data):
        if len(data) < 9:
            raise MalformedMessage("Styx message shorter than its fields")
        count = data[7] | data[8] << 8
        if count > MAXWELEM:
            raise MalformedMessage("Rwalk of %d qids: at most %d" % (count, MAXWELEM))
        end = 9 + 13 * count
        if len(data) != end:
            if len(data) < end:
                raise MalformedMessage("Styx message shorter than its fields")
            raise MalformedMessage(
                "Styx message has %d bytes after its fields" % (len(data) - end,)
            )
        return cls(tag, tuple(map(Qid._make, _QID.iter_unpack(data[9:]))))


@_message(layout="IB")
class Topen(Message):
    TYPE: ClassVar[int] = 112
    tag: int
    fid: int
    mode: int


@_message
class Ropen(Message):
    TYPE: ClassVar[int] = 113
    tag: int
    qid: Qid
    iounit: int

    def encode(self):
        try:
            return _OPEN.pack(24, self.TYPE, self.tag, *self.qid, self.iounit)
        except (struct.error, TypeError) as e:
            raise ValueError("Styx field out of range: %s" % (e,)) from None

    @classmethod
    def _decode(cls, tag, data):
        if len(data) != 24:
            raise MalformedMessage("%s of %d bytes: it has 24" % (cls.__name__, len(data)))
        _, _, _, type_, vers, path, iounit = _OPEN.unpack(data)
        return cls(tag, Qid(type_, vers, path), iounit)


@_message
class Tcreate(Message):
    TYPE: ClassVar[int] = 114
    tag: int
    fid: int
    name: str
    perm: int
    mode: int

    def _body(self):
        return (
            _pack(_U32, self.fid)
            + _string(self.name)
            + _pack(_U32, self.perm)
            + _pack(_U8, self.mode)
        )

    @classmethod
    def _read(cls, tag, reader):
        return cls(tag, reader.u32(), reader.string(), reader.u32(), reader.u8())


@_message
class Rcreate(Ropen):
    TYPE: ClassVar[int] = 115


@_message(layout="IQI")
class Tread(Message):
    TYPE: ClassVar[int] = 116
    tag: int
    fid: int
    offset: int
    count: int


@_message
class Rread(Message):
    TYPE: ClassVar[int] = 117
    tag: int
    data: bytes

    def encode(self):
        data = self.data
        try:
            return _HEADER_COUNT.pack(11 + len(data), self.TYPE, self.tag, len(data)) + data
        except struct.error as e:
            raise ValueError("Styx field out of range: %s" % (e,)) from None

    @classmethod
    def _decode(cls, tag, data):
        if len(data) < 11:
            raise MalformedMessage("Styx message shorter than its fields")
        (count,) = _U32.unpack_from(data, HEADER_SIZE)
        if count != len(data) - 11:
            raise MalformedMessage("Rread of count %d in %d bytes" % (count, len(data)))
        return cls(tag, data[11:])


@_message
class Twrite(Message):
    TYPE: ClassVar[int] = 118
    tag: int
    fid: int
    offset: int
    data: bytes

    def encode(self):
        data = self.data
        try:
            return (
                _WRITE.pack(23 + len(data), self.TYPE, self.tag, self.fid, self.offset, len(data))
                + data
            )
        except (struct.error, TypeError) as e:
            raise ValueError("Styx field out of range: %s (%r)" % (e, self)) from None

    @classmethod
    def _decode(cls, tag, data):
        return cls(*cls._fields(data))

    @classmethod
    def _fields(cls, data):
        if len(data) < 23:
            raise MalformedMessage("Styx message shorter than its fields")
        tag, fid, offset, count = _TWRITE.unpack_from(data, 5)
        if count != len(data) - 23:
            raise MalformedMessage("Twrite of count %d in %d bytes" % (count, len(data)))
        return tag, fid, offset, data[23:]


@_message(layout="I")
class Rwrite(Message):
    TYPE: ClassVar[int] = 119
    tag: int
    count: int


@_message(layout="I")
class Tclunk(Message):
    TYPE: ClassVar[int] = 120
    tag: int
    fid: int


@_message(layout="")
class Rclunk(Message):
    TYPE: ClassVar[int] = 121
    tag: int


@_message(layout="I")
class Tremove(Tclunk):
    TYPE: ClassVar[int] = 122


@_message(layout="")
class Rremove(Message):
    TYPE: ClassVar[int] = 123
    tag: int


@_message(layout="I")
class Tstat(Tclunk):
    TYPE: ClassVar[int] = 124


@_message
class Rstat(Message):
    """
    C{stat} is the decoded L{Stat}; the wire carries it as C{n[2]} followed
    by the entry (whose own C{size[2]} is n - 2).
    """

    TYPE: ClassVar[int] = 125
    tag: int
    stat: Stat

    def _body(self):
        entry = self.stat.encode()
        return _pack(_U16, len(entry)) + entry

    @classmethod
    def _read(cls, tag, reader):
        return cls(tag, Stat.decode(reader.raw(reader.u16())))


@_message
class Twstat(Message):
    """
    C{stat} is the raw entry (C{size[2]} included), not decoded: a server
    answers a malformed one with an error rather than closing the
    connection (protocol notes, 9.13). Decode it with L{Stat.decode}.
    """

    TYPE: ClassVar[int] = 126
    tag: int
    fid: int
    stat: bytes

    def _body(self):
        return _pack(_U32, self.fid) + _pack(_U16, len(self.stat)) + self.stat

    @classmethod
    def _read(cls, tag, reader):
        fid = reader.u32()
        return cls(tag, fid, reader.raw(reader.u16()))


@_message(layout="")
class Rwstat(Message):
    TYPE: ClassVar[int] = 127
    tag: int


MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Tversion,
        Rversion,
        Tauth,
        Rauth,
        Tattach,
        Rattach,
        Rerror,
        Tflush,
        Rflush,
        Twalk,
        Rwalk,
        Topen,
        Ropen,
        Tcreate,
        Rcreate,
        Tread,
        Rread,
        Twrite,
        Rwrite,
        Tclunk,
        Rclunk,
        Tremove,
        Rremove,
        Tstat,
        Rstat,
        Twstat,
        Rwstat,
    )
}
"""
Every message class by its type number. Terror (106) does not exist in
9P2000 and is not here: decoding it is an error.
"""


def _classOf(data: bytes) -> tuple[type[Message], int]:
    """
    Check the header of one whole message.

    @return: its class and its tag.
    @raise MalformedMessage: see L{decode}.
    """
    if len(data) < HEADER_SIZE:
        raise MalformedMessage("Styx message of %d bytes: at least %d" % (len(data), HEADER_SIZE))
    size, type_, tag = _HEADER.unpack_from(data, 0)
    if size != len(data):
        raise MalformedMessage("Styx message size field %d for %d bytes" % (size, len(data)))
    cls = MESSAGE_TYPES.get(type_)
    if cls is None:
        raise MalformedMessage("unknown Styx message type %d" % (type_,))
    return cls, tag


def decode(data: bytes) -> Message:
    """
    Decode one whole message, size field included, that fills C{data}
    exactly.

    @raise MalformedMessage: if the bytes are anything else: too short, a
        size field that does not match, an unknown type, a field cut short,
        bytes left over, a Twalk of more than L{MAXWELEM} names.
    """
    cls, tag = _classOf(data)
    return cls._decode(tag, data)


def decodeFields(data: bytes) -> tuple:
    """
    Decode one whole message as L{decode} does (the same checks, the same
    L{MalformedMessage}), to its fields rather than a message: a tuple of
    the message class's fields in order, tag first (its type is
    C{data[4]}).  For a server's requests, Twalk, Topen, Tread, Twrite and
    Tclunk above all, no message object is made.
    """
    return _classOf(data)[0]._fields(data)


class FrameSplitter:
    """
    Cut a byte stream into whole messages.

    @ivar maximum: the largest message accepted, size field included; it
        may be changed at any time (after an msize negotiation).
    """

    def __init__(self, maximum: int):
        if maximum < HEADER_SIZE:
            raise ValueError("maximum Styx message size %d: at least %d" % (maximum, HEADER_SIZE))
        self.maximum = maximum
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """
        Add bytes from the stream.

        @return: the whole messages (each with its size field, not decoded)
            now complete, in order; what remains is kept for the next call.
        @raise FrameTooLarge: if a size field is over L{maximum}.
        @raise MalformedMessage: if a size field is under 7. After either
            error the stream cannot be resynchronised: drop it.
        """
        buffer = self._buffer
        buffer += data
        frames = []
        start = 0
        length = len(buffer)
        while length - start >= 4:
            (size,) = _U32.unpack_from(buffer, start)
            if size > self.maximum:
                raise FrameTooLarge(size, self.maximum)
            if size < HEADER_SIZE:
                raise MalformedMessage("Styx size field %d: at least %d" % (size, HEADER_SIZE))
            if length - start < size:
                break
            frames.append(bytes(buffer[start : start + size]))
            start += size
        if start:
            del buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """
        The number of bytes held back: the start of a message not yet whole.
        """
        return len(self._buffer)
