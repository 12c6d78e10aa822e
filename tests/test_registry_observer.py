"""
The registry's change observers (L{txinferno.server.change}) and the
server's statistics (L{txinferno.server.statistics}), with deterministic
time and transports.
"""

from support import RegistryChangeRecorder, onStringTransport
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from txinferno.server.change import ChangeKind, IRegistryObserver, RegistryChange
from txinferno.server.protocols import RegistryServer
from txinferno.server.registry import Registry
from txinferno.web.events import EventStream
from txinferno.web.view import RegistryView, reasonLabel


def makeServer(**kwargs):
    clock = MemoryReactorClock()
    server = RegistryServer(Registry(), clock, **kwargs)
    recorder = RegistryChangeRecorder()
    server.registry.addChangeObserver(recorder)
    return server, clock, recorder


def test_recorderIsAnObserver():
    assert verifyObject(IRegistryObserver, RegistryChangeRecorder())


def test_changes():
    """
    Registration, update and removal are told with the attributes and the
    version after the change.
    """
    server, clock, recorder = makeServer()
    new, _ = onStringTransport(server.newFactory)
    new.dataReceived(b"svc a 1\n")
    new.dataReceived(b"b 2\n")
    new.connectionLost(None)
    assert recorder.changes == [
        RegistryChange(ChangeKind.registered, "svc", [("a", "1")], 1),
        RegistryChange(ChangeKind.updated, "svc", [("b", "2"), ("a", "1")], 2),
        RegistryChange(ChangeKind.removed, "svc", [("b", "2"), ("a", "1")], 3),
    ]


def test_persistentNotRemoved():
    """
    A persistent service whose connection closes is not removed: nothing is
    told.
    """
    server, clock, recorder = makeServer()
    new, _ = onStringTransport(server.newFactory)
    new.dataReceived(b"svc persist 1\n")
    new.connectionLost(None)
    assert [c.kind for c in recorder.changes] == [ChangeKind.registered]


def test_rejections():
    """
    Every write the new port rejects is told with the name and the reason:
    a duplicate, an odd write (the service it registered is removed), a
    line too long and an idle connection.
    """
    server, clock, recorder = makeServer(maxLineLength=32, idleTimeout=5)
    held, _ = onStringTransport(server.newFactory)
    held.dataReceived(b"svc\n")
    dup, dupTransport = onStringTransport(server.newFactory)
    dup.dataReceived(b"svc a 1\n")
    assert dupTransport.disconnecting
    odd, _ = onStringTransport(server.newFactory)
    odd.dataReceived(b"other a\n")
    held.dataReceived(b"x\n")
    long, _ = onStringTransport(server.newFactory)
    long.dataReceived(b"x" * 40)
    long.connectionLost(None)
    onStringTransport(server.newFactory)
    clock.advance(5)
    kinds = [(c.kind, c.name, c.reason) for c in recorder.changes]
    assert kinds == [
        (ChangeKind.registered, "svc", None),
        (ChangeKind.rejected, "svc", "duplicate service name"),
        (ChangeKind.rejected, "other", "odd number of attribute words after the service name"),
        (ChangeKind.rejected, "svc", "odd attribute/value pairs"),
        (ChangeKind.removed, "svc", None),
        (ChangeKind.rejected, None, "line longer than 32 bytes"),
        (ChangeKind.rejected, None, "no line within 5 seconds"),
    ]
    assert server.statistics.limitsHit == {"line": 1, "idle": 1}


def test_removeChangeObserver():
    server, clock, recorder = makeServer()
    server.registry.removeChangeObserver(recorder)
    new, _ = onStringTransport(server.newFactory)
    new.dataReceived(b"svc\n")
    assert recorder.changes == []


def test_statistics():
    """
    The server counts bytes in and out by port, finds and their time, and
    reports sent.
    """
    server, clock, recorder = makeServer()
    watcher, watcherTransport = onStringTransport(server.eventFactory)
    new, _ = onStringTransport(server.newFactory)
    new.dataReceived(b"svc a 1\n")
    clock.advance(0)
    find, findTransport = onStringTransport(server.findFactory)
    find.dataReceived(b"a 1\n")
    stats = server.statistics
    assert stats.bytesIn == {"new": 8, "find": 4}
    assert stats.bytesOut == {"find": len(b"svc a 1\n"), "event": len(b"READY\n00000001\n")}
    assert stats.finds == 1 and sum(stats.findBuckets) == 1
    assert stats.reportsSent == 1
    assert server.connectionCounts() == {"new": 1, "find": 1, "event": 1}
    assert server.watcherCount() == 1


def test_reasonLabels():
    """
    Rejection reasons become a fixed set of labels.
    """
    assert reasonLabel("duplicate service name") == "duplicate service name"
    assert reasonLabel("line longer than 8192 bytes") == "line too long"
    assert reasonLabel("no line within 60.0 seconds") == "idle"
    assert reasonLabel("service x is not registered") == "not registered"
    assert reasonLabel("something new") == "other"


def test_viewKeepsRecentChanges():
    """
    The view keeps the last C{maxChanges} changes with their times, counts
    them by kind and rejections by reason, and samples the history at its
    interval.
    """
    server, clock, _ = makeServer()
    times = Clock()
    view = RegistryView(server, times, maxChanges=3, sampleInterval=10)
    view.start()
    assert len(view.history) == 1
    for i in range(4):
        times.advance(1)
        new, _ = onStringTransport(server.newFactory)
        new.dataReceived(b"svc%d a 'x y'\n" % (i,))
    dup, _ = onStringTransport(server.newFactory)
    dup.dataReceived(b"svc0\n")
    assert [(c["time"], c["kind"]) for c in view.changes] == [
        (3, "registered"),
        (4, "registered"),
        (4, "rejected"),
    ]
    assert view.changes[0]["line"] == "svc2 a 'x y'"
    assert view.counts == {"registered": 4, "rejected": 1}
    assert view.rejections == {"duplicate service name": 1}
    times.advance(6)
    assert [(s["time"], s["services"], s["changes"]) for s in view.history] == [
        (0, 0, 0),
        (10, 4, 5),
    ]
    view.stop()
    assert times.getDelayedCalls() == []


def test_eventStreamIsAPushProducer():
    """
    An event stream is a push producer (its pausing is exercised over real
    sockets in test_web_limits).
    """
    from twisted.internet.interfaces import IPushProducer
    from twisted.web.test.requesthelper import DummyRequest

    server, clock, _ = makeServer()
    stream = EventStream(RegistryView(server, Clock()), DummyRequest([b""]), [])
    assert verifyObject(IPushProducer, stream)
