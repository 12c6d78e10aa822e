"""
The registry model: names, versions, attribute and slot order, persistence,
matching, static services and speed.
"""

import io

import pytest

from txinferno.errors import RegistryError
from txinferno.server.registry import Registry
from txinferno.wire.persist import persists


@pytest.fixture
def registry():
    r = Registry()
    r.versions = []
    r.addObserver(r.versions.append)
    return r


@pytest.mark.parametrize(
    "name, text",
    [
        ("a b", "bad character in service name"),
        ("a\tb", "bad character in service name"),
        ("a\nb", "bad character in service name"),
        ("a\x01", "bad character in service name"),
        ("a/b", "bad character in service name"),
        ("a\x7fb", "bad character in service name"),
        ("", "bad service name"),
        ("new", "bad service name"),
        ("event", "bad service name"),
        ("find", "bad service name"),
        ("index", "bad service name"),
        ("taken", "duplicate service name"),
    ],
)
def test_nameCheck(registry, name, text):
    """
    The name check's three texts; a rejected write changes nothing.
    """
    registry.register(None, ["taken"])
    with pytest.raises(RegistryError) as e:
        registry.register(None, [name, "a", "1"])
    assert e.value.text == text
    assert registry.version == 1 and len(registry) == 1


def test_nameCheckOrder(registry):
    """
    Bad characters are reported before a reserved or duplicate name.
    """
    registry.register(None, ["a"])
    for name in ("new/", "a "):
        with pytest.raises(RegistryError) as e:
            registry.checkName(name)
        assert e.value.text == "bad character in service name"


def test_emptyRegistration(registry):
    """
    An empty first write is the empty name.
    """
    with pytest.raises(RegistryError) as e:
        registry.register(None, [])
    assert e.value.text == "bad service name"


def test_versionBumps(registry):
    """
    Registration, every accepted update (even one changing nothing) and a
    removal bump the version and call the observers; rejected writes,
    queries and releases of persistent services do not.
    """
    s = registry.register("owner", ["svc", "a", "1"])
    registry.update(s, ["a", "1"])
    registry.find(["a", "1"])
    for words in ([], ["odd"]):
        with pytest.raises(RegistryError):
            registry.update(s, words)
    assert registry.versions == [1, 2]
    assert registry.release(s) is True
    assert registry.versions == [1, 2, 3]
    assert registry.release(s) is False
    p = registry.register(None, ["p", "persist", "1"])
    assert registry.release(p) is False
    assert registry.versions == [1, 2, 3, 4]
    assert p.owner is None and "p" in registry


def test_oddRegistration(registry):
    """
    A name followed by an odd number of words is taken, then removed: one
    bump, nothing left.
    """
    with pytest.raises(RegistryError):
        registry.register(None, ["r1", "proto"])
    assert registry.versions == [1] and len(registry) == 0


def test_updateOfRemovedService(registry):
    """
    A service no longer in the registry cannot be updated.
    """
    s = registry.register(None, ["svc"])
    registry.release(s)
    with pytest.raises(RegistryError):
        registry.update(s, ["a", "1"])


@pytest.mark.parametrize(
    "value, kept",
    [
        ("1", True), ("-1", True), (" 1", True), ("1x", True), ("+2", True),
        ("\t\n 007", True), ("0", False), ("00", False), ("abc", False),
        ("0x1", False), ("", False), ("-0", False), ("+", False), (" ", False),
        ("\u0661", False), (None, False),
    ],
)
def test_persists(value, kept):
    """
    C{strtol} base-10 rules with ASCII digits.
    """
    assert persists(value) is kept


def test_persistReadAtRelease(registry):
    """
    C{persist} is read when the connection closes, not when it is set.
    """
    s = registry.register(None, ["svc", "persist", "1"])
    registry.update(s, ["persist", "0"])
    assert registry.release(s) is True


def test_attributeOrder(registry):
    """
    Newest first; setting an existing attribute reverses those in front.
    """
    s = registry.register(None, "s a 1 b 2 c 3 d 4".split())
    assert s.attributes() == [("d", "4"), ("c", "3"), ("b", "2"), ("a", "1")]
    registry.update(s, ["b", "9"])
    assert s.attributes() == [("c", "3"), ("d", "4"), ("b", "9"), ("a", "1")]
    registry.update(s, ["c", "8", "a", "7"])
    assert s.attributes() == [("b", "9"), ("d", "4"), ("c", "8"), ("a", "7")]
    assert s.line() == b"s b 9 d 4 c 8 a 7\n"


def test_slotOrder(registry):
    """
    A removed service's slot takes the last service.
    """
    services = [registry.register(None, [n]) for n in "ABCDE"]
    registry.release(services[0])
    assert [s.name for s in registry] == list("EBCD")
    registry.release(services[4])
    assert [s.name for s in registry] == list("DBC")
    registry.release(services[2])
    assert [s.name for s in registry] == list("DB")
    registry.register(None, ["F"])
    assert registry.answer([]) == b"D\nB\nF\n"


def test_matching(registry):
    """
    Exact pairs, C{*}, repeated attributes, the name, odd queries; the index
    follows updates and removals.
    """
    fa = registry.register(None, ["fa", "k", "1", "z", "two words"])
    registry.register(None, ["fb", "k", "2", "z", "y"])
    fc = registry.register(None, ["fc", "k", "1"])
    names = lambda words: [s.name for s in registry.find(words)]
    assert names(["k", "1"]) == ["fa", "fc"]
    assert names(["k", "1", "z", "*"]) == ["fa"]
    assert names(["k", "1", "k", "2"]) == []
    assert names(["k", "*"]) == ["fa", "fb", "fc"]
    assert names(["name", "fa"]) == []
    assert names(["K", "1"]) == []
    assert names(["k"]) == ["fa", "fb", "fc"]
    registry.update(fc, ["k", "2"])
    assert names(["k", "1"]) == ["fa"]
    assert names(["k", "2"]) == ["fb", "fc"]
    registry.release(fa)
    assert names(["z", "*"]) == ["fb"]
    assert names(["k", "1"]) == []


def test_lineCacheInvalidated(registry):
    """
    An update changes the cached answer line.
    """
    s = registry.register(None, ["s", "a", "1"])
    assert registry.answer([]) == b"s a 1\n"
    registry.update(s, ["a", "it's"])
    assert registry.answer(["a", "it's"]) == b"s a 'it''s'\n"


def test_loadStatic(registry):
    """
    Entries with a C{service} pair become persistent services with the
    other pairs as attributes; no version bump; others are skipped.
    """
    db = io.StringIO(
        "service=net!click!1234\n"
        "\tdescription='snapshot service' auth=none\n"
        "sys=nothere ip=1.2.3.4\n"
        "kind=x service=s2 persist=0\n"
    )
    assert registry.loadStatic(db) == 2
    assert registry.answer([]) == (
        b"net!click!1234 auth none description 'snapshot service'\n"
        b"s2 persist 0 kind x\n"
    )
    assert registry.versions == [] and registry.version == 0
    assert registry.release(registry["s2"]) is False


@pytest.mark.parametrize(
    "text, error",
    [("service=a\nservice=a\n", "duplicate service name"), ("service=find\n", "bad service name")],
)
def test_loadStaticBadNames(registry, text, error):
    """
    A static file with a bad name adds nothing.
    """
    with pytest.raises(RegistryError) as e:
        registry.loadStatic(io.StringIO("service=ok\n" + text))
    assert e.value.text == error and len(registry) == 0


def test_tenThousandServices(registry):
    """
    At 10,000 services a find by one attribute answers that one service and
    a full listing every service (how fast: C{bench/server_bench.py}, which
    times both over the find port).
    """
    services = [
        registry.register(None, ["svc%d" % i, "proto", "tcp", "id", str(i), "descr", "service %d" % i])
        for i in range(10000)
    ]
    for i in range(100):
        assert registry.answer(["id", str(i * 97)]).startswith(b"svc%d " % (i * 97,))
    everything = registry.answer(["proto", "*"])
    assert everything.count(b"\n") == 10000
    for s in services:
        registry.release(s)
    assert len(registry) == 0
