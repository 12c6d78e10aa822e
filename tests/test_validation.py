"""
Tests for L{txinferno.wire.rules}: what is refused before anything is
sent, and the lines built.
"""

import pytest

from txinferno.wire.rules import (
    CheckedRegistration,
    checkName,
    normaliseAttrs,
    queryLine,
    registrationLine,
    updateLine,
)
from txinferno.wire.words import MAX_LINE, splitWords


@pytest.mark.parametrize("name", ["myservice", "tcp!host!22", "\u00fc", "a=b", "'q", "x" * 100])
def test_goodNames(name):
    checkName(name)


@pytest.mark.parametrize(
    "name, message",
    [
        ("a b", "bad character in service name"),
        ("a\tb", "bad character in service name"),
        ("a\nb", "bad character in service name"),
        ("a\x00b", "bad character in service name"),
        ("a/b", "bad character in service name"),
        ("a\x7fb", "bad character in service name"),
        ("\x01", "bad character in service name"),
        ("new", "bad service name"),
        ("event", "bad service name"),
        ("find", "bad service name"),
        ("index", "bad service name"),
        ("", "bad service name"),
        ("\ud800", "cannot be encoded as UTF-8"),
        (b"svc", "must be a str, not bytes"),
        (None, "must be a str, not NoneType"),
    ],
)
def test_badNames(name, message):
    with pytest.raises(ValueError, match=message):
        checkName(name)


@pytest.mark.parametrize(
    "attrs",
    [
        {"a": "1", "b": "2"},
        [("a", "1"), ("b", "2")],
        (["a", "1"], ["b", "2"]),
        ["a", "1", "b", "2"],
        iter([("a", "1"), ("b", "2")]),
    ],
)
def test_shapes(attrs):
    """
    A mapping, a sequence of pairs and a flat sequence all give the same
    ordered pairs.
    """
    assert normaliseAttrs(attrs) == [("a", "1"), ("b", "2")]


def test_emptyAndOddCharacters():
    """
    Empty values and attribute names with spaces, quotes, newlines or
    non-ASCII are accepted: quoting carries them.
    """
    attrs = [("two words", ""), ("it's", "x\ny"), ("\u00fc", "\r")]
    assert normaliseAttrs(attrs) == attrs
    assert normaliseAttrs([]) == []


@pytest.mark.parametrize(
    "attrs, message",
    [
        (["a", "1", "b"], "odd attribute set: 3 words"),
        (["a"], "odd attribute set"),
        ({"": "1"}, "empty attribute name"),
        ({"a\x00": "1"}, "attribute name 'a\\\\x00' holds a NUL"),
        ({"a": "v\x00w"}, "value of attribute 'a' .* holds a NUL"),
        ({"a": 1}, "value of attribute 'a' must be a str, not int"),
        ({1: "a"}, "attribute name must be a str, not int"),
        ({"a": b"1"}, "must be a str, not bytes"),
        ({"a": "\udc80"}, "cannot be encoded as UTF-8"),
        ([("a", "1", "2")], "expected an \\(attr, value\\) pair"),
        ([("a", "1"), "b"], "expected an \\(attr, value\\) pair"),
        ("a 1", "must be a mapping or a sequence"),
        (b"a 1", "must be a mapping or a sequence"),
        (42, "must be a mapping or a sequence"),
    ],
)
def test_badAttrs(attrs, message):
    with pytest.raises(ValueError, match=message):
        normaliseAttrs(attrs)


def test_registrationLine():
    """
    The registration line quotes each word and carries the name first.
    """
    line, pairs = registrationLine("myservice", {"proto": "ssh", "descr": "an example"})
    assert line == b"myservice proto ssh descr 'an example'\n"
    assert pairs == [("proto", "ssh"), ("descr", "an example")]
    assert registrationLine("bare", {})[0] == b"bare\n"


def test_checkedRegistration():
    """
    A L{CheckedRegistration} holds the line of its name and attributes,
    read-only, and L{registrationLine} gives that line back for the same
    name, but checks it again under another name.
    """
    checked = CheckedRegistration("svc", [("a", "1"), ("b", "x y"), ("a", "2")])
    assert dict(checked) == {"a": "2", "b": "x y"}
    assert checked == {"a": "2", "b": "x y"}
    assert checked.line == b"svc a 2 b 'x y'\n"
    line, pairs = registrationLine("svc", checked)
    assert (line, list(pairs)) == (checked.line, [("a", "2"), ("b", "x y")])
    assert registrationLine("other", checked)[0] == b"other a 2 b 'x y'\n"
    with pytest.raises(ValueError, match="bad service name"):
        registrationLine("new", checked)
    with pytest.raises(TypeError):
        checked["a"] = "3"
    with pytest.raises(ValueError, match="bad character in service name"):
        CheckedRegistration("a b", {})
    with pytest.raises(ValueError, match="over the registry's limit"):
        CheckedRegistration("svc", {"a": "x" * MAX_LINE})


def test_registrationChecksName():
    with pytest.raises(ValueError, match="bad service name"):
        registrationLine("new", {"a": "1"})


def test_updateLine():
    assert updateLine([("descr", "it's")]) == (b"descr 'it''s'\n", [("descr", "it's")])


def test_emptyUpdate():
    """
    An update with no attribute is refused: the registry would close the
    registration on its empty line.
    """
    with pytest.raises(ValueError, match="at least one attribute"):
        updateLine({})


def test_queryLine():
    assert queryLine({}) == (b"\n", [])
    assert queryLine({"proto": "*"})[0] == b"proto *\n"


def test_lineLimit():
    """
    A line of exactly L{MAX_LINE} bytes, newline included, passes; one more
    byte is refused with the sizes in the message.
    """
    value = "v" * (MAX_LINE - len("svc a \n"))
    line, _ = registrationLine("svc", {"a": value})
    assert len(line) == MAX_LINE
    assert splitWords(line) == ["svc", "a", value]
    with pytest.raises(ValueError, match="registration line of 8193 bytes is over"):
        registrationLine("svc", {"a": value + "v"})
    with pytest.raises(ValueError, match="update line of .* over"):
        updateLine({"a": value + "vvvvvv"})
    with pytest.raises(ValueError, match="query line of .* over"):
        queryLine({"a": value + "vvvvvv"})


def test_lineLimitCountsQuotingAndUTF8():
    """
    The limit counts the bytes sent: quotes added and UTF-8 encoding.
    """
    with pytest.raises(ValueError, match="over"):
        registrationLine("svc", {"a": "'" * 4096})
    with pytest.raises(ValueError, match="over"):
        registrationLine("svc", {"a": "\u00fc" * 4096})
