"""
The attrdb(6) reader used for static services.
"""

import io

import pytest

from txinferno.wire import attrdb


def test_entriesAndContinuations():
    """
    An entry starts at a line beginning with neither a blank, a tab nor
    C{#}; blank-led and tab-led lines continue it, and blank lines and
    comments inside it do not end it.
    """
    text = (
        "# head comment\n"
        "service=a x=1\n"
        "\n"
        "# inside\n"
        "  y=2\n"
        "\tz=3 # trailing comment\n"
        "service=b\n"
        "\tw=4\n"
    )
    assert attrdb.parse(text) == [
        [("service", "a"), ("x", "1"), ("y", "2"), ("z", "3")],
        [("service", "b"), ("w", "4")],
    ]


def test_pairForms():
    """
    C{attr=value}, C{attr = value}, C{attr=} and a bare C{attr}.
    """
    assert attrdb.parse("a=1 b = 2 c= d=4 bare e=5 f\n") == [
        [("a", "1"), ("b", "2"), ("c", ""), ("d", "4"), ("bare", ""), ("e", "5"), ("f", "")]
    ]
    assert attrdb.parse("g= h\n") == [[("g", "h")]]


def test_quotes():
    """
    Values quoted with C{'} or C{"}, a doubled quote standing for one; C{#}
    and C{=} inside quotes are text.
    """
    text = "a='it''s # x' b=\"say \"\"hi\"\"\" c='' d='k=v'\n"
    assert attrdb.parse(text) == [[("a", "it's # x"), ("b", 'say "hi"'), ("c", ""), ("d", "k=v")]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("a='open\n", "line 1: unterminated quote"),
        ("x=1\n=2\n", "line 2: '=' without an attribute"),
        ("\ta=1\n", "line 1: continuation line outside an entry"),
    ],
)
def test_errors(text, message):
    """
    Unreadable lines are reported with their number.
    """
    with pytest.raises(attrdb.AttrdbError) as e:
        attrdb.parse(text)
    assert str(e.value) == message


def test_load(tmp_path):
    """
    L{attrdb.load} reads a path or a binary or text file, as UTF-8.
    """
    path = tmp_path / "db"
    path.write_bytes("service=\u00fc\n".encode("utf-8"))
    expected = [[("service", "\u00fc")]]
    assert attrdb.load(str(path)) == expected
    assert attrdb.load(io.BytesIO(path.read_bytes())) == expected
    assert attrdb.load(io.StringIO("service=\u00fc\n")) == expected


def test_wireFormatMistakeWarned():
    """
    Bare words in a row, most likely the registry's wire format written
    for attrdb pairs, are reported with their line, in the registry's
    quoting; a single bare word (an empty value) is not.
    """
    warnings = []
    entries = attrdb.parse(
        'service=static1 proto ftp descr "static one"\nservice=ok flag a=1\n', warnings
    )
    assert entries[0][1] == ("proto", "")
    assert warnings == [
        "line 1: bare words proto ftp descr 'static one': attrdb pairs are written "
        "attr=value, not as the registry's 'attr value' words"
    ]


def test_noServiceWarned():
    warnings = []
    assert attrdb.loadServices(io.StringIO("proto=ftp\n"), warnings) == []
    assert warnings == ["no entry has a service=NAME pair: no service in the file"]
    warnings = []
    attrdb.loadServices(io.StringIO("service=a proto=ftp\n"), warnings)
    assert warnings == []


def test_staticWarningsLogged(tmp_path):
    """
    The registry logs the warnings of a static file, naming it.
    """
    from twisted.logger import capturedLogs, formatEvent

    from txinferno.server.registry import Registry

    db = tmp_path / "services.db"
    db.write_text("service=s1 proto ftp\n")
    with capturedLogs() as events:
        Registry().loadStatic(str(db))
    warned = [formatEvent(e) for e in events if e["log_level"].name == "warn"]
    assert warned == [
        "%s: line 1: bare words proto ftp: attrdb pairs are written attr=value, "
        "not as the registry's 'attr value' words" % (db,)
    ]


@pytest.mark.parametrize(
    "c", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r"]
)
def test_onlyNewlineEndsALine(c):
    """
    Only a newline ends a line: the other characters Python's
    C{splitlines()} takes for line ends are part of values, quoted or not
    (a carriage return before the newline is a blank, as in a file written
    with CRLF line ends).
    """
    text = "service=s q='a%sb' u=c%sd\r\n\tw=1\n" % (c, c)
    if c == "\r":
        assert attrdb.parse(text) == [
            [("service", "s"), ("q", "a\rb"), ("u", "c"), ("d", ""), ("w", "1")]
        ]
    else:
        assert attrdb.parse(text) == [
            [("service", "s"), ("q", "a%sb" % c), ("u", "c%sd" % c), ("w", "1")]
        ]
