"""
The registry model: names, versions, attribute and slot order, persistence,
matching, static services and speed.
"""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import LogLevel, capturedLogs, formatEvent

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
        ("1", True),
        ("-1", True),
        (" 1", True),
        ("1x", True),
        ("+2", True),
        ("\t\n 007", True),
        ("0", False),
        ("00", False),
        ("abc", False),
        ("0x1", False),
        ("", False),
        ("-0", False),
        ("+", False),
        (" ", False),
        ("\u0661", False),
        (None, False),
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

    def names(words):
        return [s.name for s in registry.find(words)]

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
        b"net!click!1234 auth none description 'snapshot service'\ns2 persist 0 kind x\n"
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
        registry.register(
            None, ["svc%d" % i, "proto", "tcp", "id", str(i), "descr", "service %d" % i]
        )
        for i in range(10000)
    ]
    for i in range(100):
        assert registry.answer(["id", str(i * 97)]).startswith(b"svc%d " % (i * 97,))
    everything = registry.answer(["proto", "*"])
    assert everything.count(b"\n") == 10000
    for s in services:
        registry.release(s)
    assert len(registry) == 0


def referenceOrder(order, pairs):
    """
    The order rule of the protocol notes (section 3), one pair at a time:
    a new attribute goes to the front, setting an existing one reverses
    those in front of it.
    """
    order = list(order)
    for attr, _value in pairs:
        if attr in order:
            position = order.index(attr)
            order[:position] = reversed(order[:position])
        else:
            order.insert(0, attr)
    return order


names = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "persist", "x" * 20])
pairLists = st.lists(st.tuples(names, st.sampled_from(["1", "2", "it's", ""])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(first=pairLists, later=st.lists(pairLists, max_size=4))
def test_attributeOrderMatchesReference(first, later):
    """
    Registration and updates leave the attributes in the order, and with
    the values, that the rule applied one pair at a time gives, and the
    index finds the service by each of them and by no other.
    """
    registry = Registry()
    s = registry.register(None, ["svc"] + [w for pair in first for w in pair])
    expected = referenceOrder([], first)
    values = dict(first)
    for pairs in later:
        if not pairs:
            continue
        registry.update(s, [w for pair in pairs for w in pair])
        expected = referenceOrder(expected, pairs)
        values.update(pairs)
    assert s.attributes() == [(a, values[a]) for a in expected]
    for attr, value in values.items():
        assert registry.find([attr, value]) == [s]
        assert registry.find([attr, "*"]) == [s]
        assert registry.find([attr, value + "other"]) == []
    if registry.release(s):
        assert registry._index == {} and registry._holders == {}


class CountedName(str):
    """
    An attribute name that counts how often it is compared.
    """

    comparisons = 0

    def __eq__(self, other):
        CountedName.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_updateIsLinear():
    """
    Applying an update line costs a bounded number of name comparisons per
    pair, whatever the number of attributes in front of the one it sets
    (the pair-by-pair rule compares names with every attribute in front).
    """
    registry = Registry()
    first = ["svc"]
    for i in range(250):
        first += [CountedName("a%d" % i), "1"]
    s = registry.register(None, first)
    words = []
    for i in range(1000):
        words += [CountedName("a%d" % ((i * 7919) % 250)), "2"]
    CountedName.comparisons = 0
    registry.update(s, words)
    assert CountedName.comparisons <= 5 * (250 + 1000), CountedName.comparisons
    assert s.attributes() == [
        (a, "2") for a in referenceOrder([w for w in first[-2:0:-2]], _pairsOf(words))
    ]


def _pairsOf(words):
    return list(zip(words[::2], words[1::2]))


def test_indexSharesSingletons(registry):
    """
    A value held by one service is indexed without a set of its own; the
    entry becomes a set when a second service takes the value, and a
    single entry again when one leaves.
    """
    a = registry.register(None, ["a", "k", "1"])
    byValue = registry._index["k"]
    assert byValue["1"] is a
    b = registry.register(None, ["b", "k", "1"])
    assert byValue["1"] == {a, b}
    registry.update(a, ["k", "2"])
    assert byValue == {"1": b, "2": a}
    assert registry.find(["k", "1"]) == [b] and registry.find(["k", "2"]) == [a]


def test_serviceLimit():
    """
    Past C{maxServices} (static services included) a registration is
    refused with C{registry full} and nothing changes.
    """
    registry = Registry(maxServices=3)
    registry.loadStatic(io.StringIO("service=st\n"))
    held = [registry.register(None, ["s%d" % i]) for i in range(2)]
    version = registry.version
    with pytest.raises(RegistryError) as e:
        registry.register(None, ["s2", "a", "1"])
    assert e.value.text == "registry full: 3 services"
    assert len(registry) == 3 and registry.version == version
    registry.release(held[0])
    registry.register(None, ["s2", "a", "1"])


def test_attributeLimit():
    """
    A registration or update that would give a service more than
    C{maxAttributes} attributes is refused whole; setting existing ones
    again is not counted.
    """
    registry = Registry(maxAttributes=3)
    with pytest.raises(RegistryError) as e:
        registry.register(None, "s a 1 b 2 c 3 d 4".split())
    assert e.value.text == "too many attributes: more than 3 for one service"
    assert "s" not in registry and registry.version == 0
    s = registry.register(None, "s a 1 b 2 a 3".split())
    registry.update(s, "c 3 a 4 b 5 c 6".split())
    with pytest.raises(RegistryError):
        registry.update(s, "a 7 d 4".split())
    assert s.attributes() == [("b", "5"), ("c", "6"), ("a", "4")]


def test_byteLimit():
    """
    A service whose name, attributes and values (in UTF-8, each followed
    by a separator) would pass C{maxServiceBytes} is refused; replacing a
    value frees its bytes.
    """
    registry = Registry(maxServiceBytes=20)
    s = registry.register(None, ["svc", "k", "\u00e9" * 6])
    assert s._size == 4 + 1 + 12 + 2
    with pytest.raises(RegistryError) as e:
        registry.update(s, ["x", ""])
    assert e.value.text == "service too large: more than 20 bytes"
    registry.update(s, ["k", "", "x", "y"])
    assert s._size == 4 + 3 + 4
    with pytest.raises(RegistryError):
        registry.register(None, ["big", "v", "x" * 20])


def test_persistentLimitPerOrigin():
    """
    One origin may leave C{maxPersistentPerOrigin} persistent services;
    beyond, a service of its that says C{persist} is removed when its
    connection closes, and that is logged; other origins are not affected.
    """
    registry = Registry(maxPersistentPerOrigin=2)
    with capturedLogs() as events:
        kept = [
            registry.register(None, ["p%d" % i, "persist", "1"], origin="10.0.0.1")
            for i in range(3)
        ]
        other = registry.register(None, ["q", "persist", "1"], origin="10.0.0.2")
        assert [registry.release(s) for s in kept] == [False, False, True]
        assert registry.release(other) is False
    assert [s.name for s in registry] == ["p0", "p1", "q"]
    warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
    assert warnings == [
        "service p2 removed instead of persisting: 10.0.0.1 already left 2 persistent services"
    ]


def test_changeLogTruncated():
    """
    A change is logged as one line whose attributes are cut; the full text
    is logged at debug level only when asked for.
    """
    with capturedLogs() as events:
        quiet = Registry()
        s = quiet.register(
            None, ["svc"] + ["k%d" % i if j == 0 else "v" * 50 for i in range(100) for j in (0, 1)]
        )
        quiet.update(s, ["k1", "x" * 5000])
        loud = Registry(logFullChanges=True)
        loud.register(None, ["svc", "a", "y" * 500])
        quiet.release(quiet.register(None, ["n" * 5000]))
    mine = [e for e in events if e.get("log_namespace") == "txinferno.server.registry.Registry"]
    lines = [formatEvent(e) for e in mine]
    assert [e["log_level"] for e in mine] == [LogLevel.info] * 3 + [LogLevel.debug] + [
        LogLevel.info
    ] * 2
    assert lines[4:] == [
        "service %s... registered with " % ("n" * 100,),
        "service %s... removed" % ("n" * 100,),
    ]
    assert all(len(line) < 200 for line in lines[:3]), lines
    assert lines[0].startswith("service svc registered with k99 " + "v" * 50)
    assert lines[0].endswith("... (100 attributes)")
    assert lines[3] == "service svc registered with a " + "y" * 500
