"""
Tests for L{txinferno.wire.words}: Inferno's quoting and splitting rules.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txinferno.wire.words import (
    LineAssembler,
    decode,
    formatLine,
    quote,
    splitLines,
    splitWords,
)


@pytest.mark.parametrize(
    "word, printed",
    [
        ("ssh", "ssh"),
        ("", "''"),
        ("an example", "'an example'"),
        ("it's a test", "'it''s a test'"),
        ("a\tb", "'a\tb'"),
        ("x\ny", "'x\ny'"),
        ("v\r", "'v\r'"),
        ("a=b", "a=b"),
        ("tcp!host!22", "tcp!host!22"),
        ('say "hi"', "'say \"hi\"'"),
        ('"hi"', '"hi"'),
        ("#*", "#*"),
        ("\u00fc", "\u00fc"),
        ("\x7f", "\x7f"),
        ("v\x00w", "v"),
        ("\x00", "''"),
    ],
)
def test_quote(word, printed):
    """
    A word is quoted if and only if it is empty, holds a character at or
    below U+0020 or a quote; it is printed up to its first NUL.
    """
    assert quote(word) == printed


def test_formatLine():
    """
    Spec section 7, step 13: the listing of C{q1}, byte for byte.
    """
    words = [
        "q1",
        "nl",
        "x\ny",
        "tab",
        "a\tb",
        "uni",
        "\u00fc",
        "eq",
        "a=b",
        "empty",
        "",
        "descr",
        "it's a test",
    ]
    assert formatLine(words) == (
        b"q1 nl 'x\ny' tab 'a\tb' uni \xc3\xbc eq a=b empty '' descr 'it''s a test'\n"
    )


@pytest.mark.parametrize(
    "data, words",
    [
        (
            b"myservice proto ssh descr 'an example'\n",
            ["myservice", "proto", "ssh", "descr", "an example"],
        ),
        (b"q2 v1 it''s v2 'unbalanced\n", ["q2", "v1", "its", "v2", "unbalanced\n"]),
        (b"a''b", ["ab"]),
        (b"c'd e'f", ["cd ef"]),
        (b"qb k v\r\n", ["qb", "k", "v\r"]),
        (b"''", [""]),
        (b"'' ''", ["", ""]),
        (b"'it''s'", ["it's"]),
        (b"'a'''", ["a'"]),
        (b"  \t\n ", []),
        (b"a\x0bb\x0cc", ["a\x0bb\x0cc"]),
        (b"k v\x00w", ["k", "v\x00w"]),
        (b"uni \xc3\xbc", ["uni", "\u00fc"]),
        (b"bad \xff x", ["bad", "\ufffd", "x"]),
        (b"cut \xc3", ["cut"]),
        (b"cut a\xe2\x82", ["cut", "a"]),
    ],
)
def test_splitWords(data, words):
    """
    Only space, tab and newline separate words; quotes group, may cover
    part of a word, and an unbalanced quote closes at the end of the data;
    invalid UTF-8 becomes U+FFFD except an incomplete sequence at the end.
    """
    assert splitWords(data) == words


def test_decodeIncompleteInside():
    """
    An incomplete sequence in the middle of the data is invalid, not an end.
    """
    assert decode(b"\xc3 x") == "\ufffd x"


def test_splitLinesQuoteAware():
    """
    A newline inside quotes does not end a line; what follows the last
    newline is returned apart.
    """
    lines, rest = splitLines(b"q1 nl 'x\ny' k v\nfc k 1\npartial")
    assert lines == [b"q1 nl 'x\ny' k v", b"fc k 1"]
    assert rest == b"partial"


def test_lineAssemblerPieces():
    """
    Fed one byte at a time, the assembler gives the same lines as fed all
    at once, and keeps its quote state across pieces.
    """
    data = b"a 'it''s\nstill' b\nc 'd'\n'open\n"
    whole = LineAssembler()
    expected = whole.feed(data)
    assert expected == [b"a 'it''s\nstill' b", b"c 'd'"]
    assert whole.pending == b"'open\n"
    assert whole.inQuote()
    pieces = LineAssembler()
    got = []
    for i in range(len(data)):
        got.extend(pieces.feed(data[i : i + 1]))
    assert got == expected
    assert pieces.pending == whole.pending
    assert pieces.feed(b"'\n") == [b"'open\n'"]
    assert not pieces.inQuote()


words_without_nul = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=30,
)


@settings(max_examples=500, deadline=None)
@given(st.lists(words_without_nul, max_size=8))
def test_quoteThenSplit(words):
    """
    Quoting then splitting returns the same words for every word without NUL.
    """
    assert splitWords(formatLine(words)) == words


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(words_without_nul, min_size=1, max_size=5), max_size=5))
def test_formatThenSplitLines(lines):
    """
    Formatted lines, joined, are cut back into the same lines, whatever
    newlines and quotes their words hold.
    """
    data = b"".join(formatLine(ws) for ws in lines)
    got, rest = splitLines(data)
    assert rest == b""
    assert [splitWords(line) for line in got] == lines


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_splitNeverRaises(data):
    """
    Splitting never raises on any bytes, every word is a string, and the
    lines and the rest put back together are the data.
    """
    words = splitWords(data)
    assert all(isinstance(w, str) for w in words)
    lines, rest = splitLines(data)
    assert b"".join(line + b"\n" for line in lines) + rest == data


@given(
    st.one_of(
        st.binary(max_size=40),
        st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
def test_decodeFastPathAgrees(data):
    """
    The fast path of L{decode} (strict UTF-8) gives what Inferno's rule
    gives, for any bytes.
    """
    import codecs

    assert decode(data) == codecs.getincrementaldecoder("utf-8")("replace").decode(data, False)
