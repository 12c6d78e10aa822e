"""
Tests for L{txinferno.wire.styx}: the byte vectors of the protocol notes
(section 9) byte for byte, encode-then-decode identity for every message
type, and decoding of arbitrary bytes raising only L{MalformedMessage}.
"""

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txinferno.errors import MalformedMessage, TxInfernoError
from txinferno.wire import styx
from txinferno.wire.styx import (
    DMDIR,
    MESSAGE_TYPES,
    NOFID,
    NOTAG,
    QTDIR,
    FrameSplitter,
    FrameTooLarge,
    Qid,
    Rattach,
    Rerror,
    Ropen,
    Rread,
    Rremove,
    Rstat,
    Rversion,
    Stat,
    Tversion,
    Twalk,
    decode,
    decodeDirectory,
)


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


# The vectors of section 9, as the notes print them.
VECTORS = [
    # 9.2
    ("13000000 64 ffff 00200000 0600 395032303030", Tversion(NOTAG, 8192, "9P2000")),
    ("13000000 65 ffff 00200000 0600 395032303030", Rversion(NOTAG, 8192, "9P2000")),
    ("14000000 65 ffff 00200000 0700 756e6b6e6f776e", Rversion(NOTAG, 8192, "unknown")),
    (
        "1f000000 6b ffff 1600 6d6573736167652073697a6520746f6f20736d616c6c",
        Rerror(NOTAG, "message size too small"),
    ),
    # 9.3
    (
        "240000006b 0100 1b00 61757468656e7469636174696f6e206e6f74207265717569726564",
        Rerror(1, "authentication not required"),
    ),
    ("14000000 69 0200 80 00000000 0000000000000000", Rattach(2, Qid(QTDIR, 0, 0))),
    (
        "14000000 69 0200 80 837e0f6b fb4624000000807e",
        Rattach(2, Qid(QTDIR, 0x6B0F7E83, 0x7E800000002446FB)),
    ),
    # 9.6
    ("18000000 71 0300 00 00000000 0500000000000000 e81f0000", Ropen(3, Qid(0, 0, 5), 8168)),
    ("18000000 71 0300 00 00000000 0500000000000000 00000000", Ropen(3, Qid(0, 0, 5), 0)),
    # 9.10
    ("14000000 75 0400 09000000 30303030303030310a", Rread(4, b"00000001\n")),
    # 9.11 (the tag is not printed; 5 here)
    ("140000006b 0500 0b00 6e6f207375636820666964", Rerror(5, "no such fid")),
    # 9.12
    ("07000000 7b 0400", Rremove(4)),
]


@pytest.mark.parametrize(
    "wire, message", VECTORS, ids=[type(m).__name__ + str(i) for i, (w, m) in enumerate(VECTORS)]
)
def test_vectors(wire, message):
    """
    Each vector of section 9 decodes to its message and the message
    encodes to exactly those bytes.
    """
    assert message.encode() == h(wire)
    assert decode(h(wire)) == message


ROOT_STAT = Stat(
    type=0,
    dev=0,
    qid=Qid(QTDIR, 0, 0),
    mode=DMDIR | 0o777,
    atime=0x5F000001,
    mtime=0x5F000002,
    length=0,
    name=".",
    uid="registry",
    gid="registry",
    muid="",
)


def test_stat_of_root():
    """
    The [D] Rstat of the root in 9.4, with the atime and mtime that the
    notes leave open filled in.
    """
    wire = h(
        "4b000000 7d 0200 4200 4000 0000 00000000 80 00000000 0000000000000000 ff010080"
        " 0100005f 0200005f 0000000000000000 0100 2e 0800 7265676973747279"
        " 0800 7265676973747279 0000"
    )
    assert Rstat(2, ROOT_STAT).encode() == wire
    assert decode(wire) == Rstat(2, ROOT_STAT)


def test_directory_entry_sizes():
    """
    9.7: C{new} is 68 bytes, C{index} 70, C{find} 69, C{event} 70 (as
    entries of a directory read: C{size[2]} included).
    """
    for name, size in [("new", 68), ("index", 70), ("find", 69), ("event", 70)]:
        entry = Stat(0x4D, 2, Qid(0, 0, 1), 0o666, 0, 0, 0, name, "registry", "registry", "")
        assert len(entry.encode()) == size


def test_decode_directory():
    """
    L{decodeDirectory} reads whole entries back to back, and refuses a cut
    one.
    """
    entries = [ROOT_STAT, Stat(0, 0, Qid(0, 3, 0x15), 0o644, 1, 2, 0, "svc", "alice", "alice", "")]
    data = b"".join(e.encode() for e in entries)
    assert decodeDirectory(data) == entries
    assert decodeDirectory(b"") == []
    with pytest.raises(MalformedMessage):
        decodeDirectory(data[:-1])


def test_walk_of_17_names():
    """
    9.5: a Twalk of 17 names is malformed; 16 decode. Encoding 17 is
    refused.
    """
    sixteen = Twalk(1, 0, 1, ("a",) * 16)
    assert decode(sixteen.encode()) == sixteen
    body = struct.pack("<IIH", 0, 1, 17) + b"\x01\x00a" * 17
    wire = struct.pack("<IBH", 7 + len(body), 110, 1) + body
    with pytest.raises(MalformedMessage):
        decode(wire)
    with pytest.raises(ValueError):
        Twalk(1, 0, 1, ("a",) * 17).encode()


@pytest.mark.parametrize(
    "wire",
    [
        "07000000 6a 0100",  # Terror (106) does not exist
        "07000000 96 0100",  # type 150
        "0b000000 78 0100 000000",  # Tclunk cut short
        "0c000000 78 0100 00000000 00",  # Tclunk with a trailing byte
        "08000000 78 0100 00000000",  # size field that does not match
        "0400",  # shorter than a header
    ],
)
def test_malformed(wire):
    """
    Each of the framing errors of 9.14 is a L{MalformedMessage}.
    """
    with pytest.raises(MalformedMessage):
        decode(h(wire))


def test_malformed_is_project_error():
    assert issubclass(MalformedMessage, TxInfernoError)
    assert issubclass(FrameTooLarge, MalformedMessage)


def test_encode_out_of_range():
    """
    A field out of its range is a L{ValueError} at encoding time.
    """
    with pytest.raises(ValueError):
        Tversion(0x10000, 8192, "9P2000").encode()
    with pytest.raises(ValueError):
        Tversion(1, -1, "9P2000").encode()
    with pytest.raises(ValueError):
        styx.Tattach(1, 0, NOFID, "\ud800x", "").encode()


def test_non_utf8_string_survives():
    """
    A string that is not UTF-8 decodes (with surrogate escapes) and encodes
    back to the same bytes.
    """
    wire = h("0a000000 6b 0100 0100") + b"\xff"
    message = decode(wire)
    assert message.encode() == wire


# Property tests

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
data = st.binary(max_size=200)
qids = st.builds(Qid, u8, u32, u64)
stats = st.builds(Stat, u16, u32, qids, u32, u32, u32, u64, text, text, text, text)

FIELDS = {
    "tag": u16,
    "msize": u32,
    "version": text,
    "afid": u32,
    "uname": text,
    "aname": text,
    "aqid": qids,
    "fid": u32,
    "qid": qids,
    "ename": text,
    "oldtag": u16,
    "newfid": u32,
    "names": st.lists(text, max_size=16).map(tuple),
    "qids": st.lists(qids, max_size=16).map(tuple),
    "mode": u8,
    "iounit": u32,
    "name": text,
    "perm": u32,
    "offset": u64,
    "count": u32,
    "data": data,
}


def _strategy(cls):
    kwargs = {}
    for name in (f.name for f in dataclasses.fields(cls)):
        if name == "stat":
            kwargs[name] = stats if cls is Rstat else stats.map(Stat.encode)
        else:
            kwargs[name] = FIELDS[name]
    return st.builds(cls, **kwargs)


messages = st.one_of([_strategy(cls) for cls in MESSAGE_TYPES.values()])


@given(messages)
@settings(max_examples=500)
def test_roundtrip(message):
    """
    Every message of every type decodes back to itself, and the size field
    is the whole length.
    """
    wire = message.encode()
    assert struct.unpack_from("<I", wire)[0] == len(wire)
    assert decode(wire) == message


@given(messages, st.binary(min_size=1, max_size=4))
def test_trailing_bytes(message, extra):
    """
    Bytes after the fields (with the size field counting them) are
    malformed.
    """
    wire = message.encode() + extra
    wire = struct.pack("<I", len(wire)) + wire[4:]
    with pytest.raises(MalformedMessage):
        decode(wire)


@given(st.binary(max_size=300))
@settings(max_examples=1000)
def test_arbitrary_bytes(data):
    """
    Decoding arbitrary bytes either works or raises L{MalformedMessage}.
    """
    try:
        decode(data)
    except MalformedMessage:
        pass


@given(messages, st.data())
def test_arbitrary_body(message, draw):
    """
    A valid header with a mutated body, and a size field fixed up to match:
    decoding works or raises L{MalformedMessage}.
    """
    wire = bytearray(message.encode())
    for _ in range(draw.draw(st.integers(1, 4))):
        if len(wire) > 7:
            wire[draw.draw(st.integers(7, len(wire) - 1))] = draw.draw(u8)
    cut = draw.draw(st.integers(7, len(wire)))
    wire = bytearray(wire[:cut])
    wire[0:4] = struct.pack("<I", len(wire))
    try:
        decode(bytes(wire))
    except MalformedMessage:
        pass


@given(st.binary(max_size=300))
def test_arbitrary_stat(data):
    try:
        Stat.decode(data)
    except MalformedMessage:
        pass
    try:
        decodeDirectory(data)
    except MalformedMessage:
        pass


# The frame splitter


@given(st.lists(messages, max_size=10), st.data())
def test_splitter_any_chunks(batch, draw):
    """
    Whatever the chunking, the splitter gives back the messages in order,
    whole, and holds back nothing at the end.
    """
    stream = b"".join(m.encode() for m in batch)
    splitter = FrameSplitter(1 << 20)
    frames = []
    position = 0
    while position < len(stream):
        step = draw.draw(st.integers(1, 64))
        frames.extend(splitter.feed(stream[position : position + step]))
        position += step
    assert [decode(f) for f in frames] == batch
    assert splitter.pending == 0


def test_splitter_one_byte_chunks():
    wire = Tversion(NOTAG, 8216, "9P2000").encode()
    splitter = FrameSplitter(8216)
    out = []
    for i in range(len(wire)):
        assert splitter.pending == i
        out.extend(splitter.feed(wire[i : i + 1]))
    assert out == [wire]


def test_splitter_over_maximum():
    """
    A size field over the maximum raises as soon as the size field is
    whole, before the body arrives.
    """
    splitter = FrameSplitter(8192)
    size = struct.pack("<I", 8193)
    assert splitter.feed(size[:3]) == []
    with pytest.raises(FrameTooLarge) as e:
        splitter.feed(size[3:])
    assert (e.value.size, e.value.maximum) == (8193, 8192)
    splitter = FrameSplitter(100)
    with pytest.raises(FrameTooLarge):
        splitter.feed(struct.pack("<I", 101))
    assert FrameSplitter(101).feed(struct.pack("<I", 101)) == []


def test_splitter_exactly_maximum():
    message = Rread(1, b"x" * (100 - 11))
    assert len(message.encode()) == 100
    assert FrameSplitter(100).feed(message.encode()) == [message.encode()]


@pytest.mark.parametrize("size", [0, 4, 6])
def test_splitter_under_seven(size):
    with pytest.raises(MalformedMessage):
        FrameSplitter(8192).feed(struct.pack("<I", size) + b"\x00" * 3)


def test_splitter_maximum_changes():
    """
    The maximum may be lowered after a negotiation and applies to the next
    size field.
    """
    splitter = FrameSplitter(65536)
    big = Rread(1, b"x" * 1000).encode()
    assert splitter.feed(big) == [big]
    splitter.maximum = 256
    with pytest.raises(FrameTooLarge):
        splitter.feed(big)


def test_splitter_minimum():
    with pytest.raises(ValueError):
        FrameSplitter(6)


# The codec against a reference: a plain reading of the message layouts of
# 9P2000, field by field, that shares no code with the codec's compiled and
# one-struct encoders and decoders.

_REFERENCE_LAYOUTS = {
    "Tversion": "u32 str",
    "Rversion": "u32 str",
    "Tauth": "u32 str str",
    "Rauth": "qid",
    "Tattach": "u32 u32 str str",
    "Rattach": "qid",
    "Rerror": "str",
    "Tflush": "u16",
    "Rflush": "",
    "Twalk": "u32 u32 names",
    "Rwalk": "qids",
    "Topen": "u32 u8",
    "Ropen": "qid u32",
    "Tcreate": "u32 str u32 u8",
    "Rcreate": "qid u32",
    "Tread": "u32 u64 u32",
    "Rread": "data",
    "Twrite": "u32 u64 data",
    "Rwrite": "u32",
    "Tclunk": "u32",
    "Rclunk": "",
    "Tremove": "u32",
    "Rremove": "",
    "Tstat": "u32",
    "Rstat": "stat",
    "Twstat": "u32 rawstat",
    "Rwstat": "",
}

_INTEGERS = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q"}


class _Short(Exception):
    pass


def _take(data, offset, count):
    if offset + count > len(data):
        raise _Short()
    return data[offset : offset + count], offset + count


def _integer(data, offset, kind):
    raw, offset = _take(data, offset, struct.calcsize(_INTEGERS[kind]))
    return struct.unpack(_INTEGERS[kind], raw)[0], offset


def _referenceField(data, offset, kind):
    if kind in _INTEGERS:
        return _integer(data, offset, kind)
    if kind == "str":
        size, offset = _integer(data, offset, "u16")
        raw, offset = _take(data, offset, size)
        return raw.decode("utf-8", "surrogateescape"), offset
    if kind == "qid":
        raw, offset = _take(data, offset, 13)
        return Qid(*struct.unpack("<BIQ", raw)), offset
    if kind in ("names", "qids"):
        count, offset = _integer(data, offset, "u16")
        if count > 16:
            raise _Short()
        values = []
        for _ in range(count):
            value, offset = _referenceField(data, offset, "str" if kind == "names" else "qid")
            values.append(value)
        return tuple(values), offset
    if kind == "data":
        count, offset = _integer(data, offset, "u32")
        return _take(data, offset, count)
    size, offset = _integer(data, offset, "u16")
    raw, offset = _take(data, offset, size)
    return (Stat.decode(raw) if kind == "stat" else raw), offset


def referenceDecode(data):
    """
    @return: the message in C{data}, or L{None} if it is not one.
    """
    if len(data) < 7:
        return None
    size, type_, tag = struct.unpack_from("<IBH", data)
    cls = MESSAGE_TYPES.get(type_)
    if size != len(data) or cls is None:
        return None
    values = [tag]
    offset = 7
    try:
        for kind in _REFERENCE_LAYOUTS[cls.__name__].split():
            value, offset = _referenceField(data, offset, kind)
            values.append(value)
    except (_Short, MalformedMessage):
        return None
    if offset != len(data):
        return None
    return cls(*values)


def referenceEncode(message):
    body = b""
    values = [getattr(message, f.name) for f in dataclasses.fields(message)][1:]
    for kind, value in zip(_REFERENCE_LAYOUTS[type(message).__name__].split(), values):
        if kind in _INTEGERS:
            body += struct.pack(_INTEGERS[kind], value)
        elif kind == "str":
            raw = value.encode("utf-8", "surrogateescape")
            body += struct.pack("<H", len(raw)) + raw
        elif kind == "qid":
            body += struct.pack("<BIQ", *value)
        elif kind == "names":
            body += struct.pack("<H", len(value))
            for name in value:
                raw = name.encode("utf-8", "surrogateescape")
                body += struct.pack("<H", len(raw)) + raw
        elif kind == "qids":
            body += struct.pack("<H", len(value))
            for qid in value:
                body += struct.pack("<BIQ", *qid)
        elif kind == "data":
            body += struct.pack("<I", len(value)) + value
        else:
            raw = value.encode() if kind == "stat" else value
            body += struct.pack("<H", len(raw)) + raw
    return struct.pack("<IBH", 7 + len(body), message.TYPE, message.tag) + body


def test_reference_covers_every_type():
    assert set(_REFERENCE_LAYOUTS) == {cls.__name__ for cls in MESSAGE_TYPES.values()}


@given(messages)
@settings(max_examples=500)
def test_encode_agrees_with_reference(message):
    """
    Every message encodes to the bytes the reference lays out.
    """
    assert message.encode() == referenceEncode(message)


def _agreesWithReference(wire):
    expected = referenceDecode(wire)
    if expected is None:
        with pytest.raises(MalformedMessage):
            decode(wire)
    else:
        assert decode(wire) == expected


def _framed(type_, body):
    return struct.pack("<IBH", 7 + len(body), type_, 1) + body


@given(st.sampled_from(sorted(MESSAGE_TYPES)), st.binary(max_size=60))
@settings(max_examples=1000)
def test_decode_agrees_with_reference(type_, body):
    """
    Any body under any type's header: the codec decodes what the reference
    decodes, to the same message, and raises L{MalformedMessage} on
    everything else.
    """
    _agreesWithReference(_framed(type_, body))


@given(messages, st.data())
@settings(max_examples=500)
def test_decode_agrees_with_reference_near_valid(message, draw):
    """
    Valid messages cut, extended or with a byte changed (the size field
    kept right): the codec and the reference agree.
    """
    wire = bytearray(message.encode())
    if len(wire) > 7 and draw.draw(st.booleans()):
        wire[draw.draw(st.integers(7, len(wire) - 1))] = draw.draw(u8)
    if draw.draw(st.booleans()):
        wire = wire[: draw.draw(st.integers(7, len(wire)))]
    else:
        wire += draw.draw(st.binary(min_size=1, max_size=13))
    _agreesWithReference(struct.pack("<I", len(wire)) + bytes(wire[4:]))


@pytest.mark.parametrize(
    "message",
    [
        styx.Rwrite(1, 1 << 32),
        styx.Tclunk(-1, 0),
        styx.Topen(1, 2, 256),
        styx.Tread(1, 2, 1 << 64, 3),
        styx.Rwalk(1, (Qid(256, 0, 0),)),
        styx.Rwalk(1, tuple([Qid(0, 0, 0)] * 17)),
        styx.Ropen(1, Qid(0, 0, 0), -1),
        styx.Twrite(1, 1 << 32, 0, b""),
    ],
)
def test_encode_out_of_range_fast_paths(message):
    """
    The one-struct encoders raise L{ValueError}, as the general one does.
    """
    with pytest.raises(ValueError):
        message.encode()


def _fieldsOf(message):
    return tuple(getattr(message, f.name) for f in dataclasses.fields(message))


def _sameFields(wire):
    try:
        message = decode(wire)
    except MalformedMessage:
        with pytest.raises(MalformedMessage):
            styx.decodeFields(wire)
    else:
        assert styx.decodeFields(wire) == _fieldsOf(message)


@given(messages)
@settings(max_examples=500)
def test_decode_fields(message):
    """
    L{styx.decodeFields} gives a message's fields in order, tag first.
    """
    assert styx.decodeFields(message.encode()) == _fieldsOf(message)


@given(st.sampled_from(sorted(MESSAGE_TYPES)), st.binary(max_size=60))
@settings(max_examples=1000)
def test_decode_fields_agrees_with_decode(type_, body):
    """
    On any body under any type's header, and on bytes too short for a
    header, L{styx.decodeFields} gives the fields of what L{decode} gives,
    or raises L{MalformedMessage} where it does.
    """
    _sameFields(_framed(type_, body))
    _sameFields(body[:7])
