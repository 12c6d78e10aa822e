"""
Tests for L{txinferno.client.monitor.Monitor} against the embedded registry over
loopback TCP, and of its find coalescing with L{MemoryConnection}.
"""

import pytest
import pytest_twisted
from support import bounded, registryServices, startedManager
from twisted.internet.defer import Deferred
from twisted.logger import LogLevel, capturedLogs, formatEvent
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txinferno.client.monitor import MAX_RETRY_DELAY, MAX_WAIT, PACE, QUIET, SETTLE, Monitor
from txinferno.client.service import ServiceTask
from txinferno.errors import MalformedAnswer
from txinferno.interfaces import IRegistryConnection, IRegistryTask
from txinferno.testing.memory import MemoryConnection
from txinferno.testing.recorders import MonitorRecorder


def test_provides():
    verifyObject(IRegistryTask, Monitor({"a": "1"}, MonitorRecorder()))


def test_invalidQuery():
    with pytest.raises(ValueError, match="NUL"):
        Monitor({"a": "\x00"}, MonitorRecorder())


@pytest_twisted.ensureDeferred
async def test_addUpdateRemove(manager, registry_server):
    """
    A monitor reports services that come, change and go, with their
    attributes, and keeps its C{services} view.
    """
    recorder = MonitorRecorder()
    monitor = manager.attach(Monitor({"proto": "*"}, recorder))
    await recorder.waitUntil(lambda r: r.count("resynced"))
    assert recorder.events == [("resynced",)]
    svc = manager.attach(ServiceTask("svc", {"proto": "ssh"}))
    await recorder.waitUntil(lambda r: "svc" in r.view)
    svc.update({"port": "22"})
    await recorder.waitUntil(lambda r: r.view["svc"].get("port") == "22")
    await manager.detach(svc)
    await recorder.waitUntil(lambda r: "svc" not in r.view)
    assert recorder.events == [
        ("resynced",),
        ("added", "svc", {"proto": "ssh"}),
        ("updated", "svc", {"proto": "ssh", "port": "22"}, {"proto": "ssh"}),
        ("removed", "svc", {"proto": "ssh", "port": "22"}),
    ]
    assert monitor.services == {}
    assert monitor.synced


@pytest_twisted.ensureDeferred
async def test_filterChanges(manager, registry_server):
    """
    A service that starts matching after an update is added; one that stops
    matching is removed; one that never matches is never reported.
    """
    recorder = MonitorRecorder()
    monitor = manager.attach(Monitor({"state": "up"}, recorder))
    other = manager.attach(ServiceTask("other", {"state": "down"}))
    svc = manager.attach(ServiceTask("svc", {"state": "down"}))
    await bounded(svc.whenRegistered())
    await bounded(other.whenRegistered())
    await recorder.waitUntil(lambda r: r.count("resynced"))
    assert recorder.view == {}
    svc.update({"state": "up"})
    await recorder.waitUntil(lambda r: "svc" in r.view)
    svc.update({"state": "gone"})
    await recorder.waitUntil(lambda r: "svc" not in r.view)
    assert recorder.events == [
        ("resynced",),
        ("added", "svc", {"state": "up"}),
        ("removed", "svc", {"state": "up"}),
    ]
    assert monitor.services == {}
    assert set(registryServices(registry_server)) == {"svc", "other"}


@implementer(IRegistryConnection)
class SlowFinds(MemoryConnection):
    """
    A L{MemoryConnection} whose finds wait to be answered by the test.
    """

    def __init__(self):
        MemoryConnection.__init__(self)
        self.waiting = []

    def find(self, attrs):
        answer = MemoryConnection.find(self, attrs)
        d = Deferred()
        self.waiting.append((answer, d))
        return d

    def answer(self):
        """
        Answer the oldest find with the registry as it is now.
        """
        answer, d = self.waiting.pop(0)
        d.callback(answer.result)

    def fail(self):
        """
        Fail the oldest find with a garbled answer.
        """
        answer, d = self.waiting.pop(0)
        d.errback(MalformedAnswer("garbled"))


def test_neverCancelsCoalesces():
    """
    While a find is in flight, any number of changes lead to exactly one
    more find when it ends; the one in flight is never cancelled.
    """
    connection = SlowFinds()
    verifyObject(IRegistryConnection, connection)
    manager, clock = startedManager(connection)
    recorder = MonitorRecorder()
    manager.attach(Monitor({}, recorder))
    clock.advance(0)
    assert len(connection.waiting) == 1
    for i in range(20):
        connection.register("svc%d" % i, {"n": str(i)})
        clock.advance(0)
    assert len(connection.waiting) == 1
    connection.answer()
    assert recorder.events == [("resynced",)]
    clock.advance(QUIET)
    assert len(connection.waiting) == 1
    connection.answer()
    assert len(recorder.view) == 20
    assert connection.waiting == []
    assert connection.finds == 2
    manager.stopService()


def pacing():
    """
    A monitor of every service on a connection whose finds the test
    answers, its first find answered at time 0.
    """
    connection = SlowFinds()
    manager, clock = startedManager(connection)
    recorder = MonitorRecorder()
    monitor = manager.attach(Monitor({}, recorder))
    clock.advance(0)
    connection.answer()
    return connection, clock, manager, monitor, recorder


def test_changeAfterQuietSpellQueriedAtOnce():
    connection, clock, manager, monitor, recorder = pacing()
    clock.advance(5)
    connection.register("svc", {})
    clock.advance(0)
    assert len(connection.waiting) == 1
    connection.answer()
    assert recorder.view == {"svc": {}}
    assert clock.getDelayedCalls() == []


def test_burstQueriedOnceQuiet():
    """
    Changes reported while a find runs are queried once no change has come
    for QUIET seconds.
    """
    connection, clock, manager, monitor, recorder = pacing()
    connection.register("svc0", {})
    clock.advance(0)
    assert len(connection.waiting) == 1
    for i in range(1, 4):
        connection.register("svc%d" % i, {})
        clock.advance(0.01)
    connection.answer()
    clock.advance(QUIET - 0.001)
    assert connection.waiting == []
    clock.advance(0.001)
    assert len(connection.waiting) == 1
    connection.answer()
    assert len(recorder.view) == 4
    assert clock.getDelayedCalls() == []


class StopsWhenSeen(MonitorRecorder):
    """
    Stops its monitor's manager from inside the report of a service, as a
    coroutine awaiting the report does when it resumes there.
    """

    def __init__(self, manager, name):
        MonitorRecorder.__init__(self)
        self.manager = manager
        self.name = name

    def added(self, name, attrs):
        MonitorRecorder.added(self, name, attrs)
        if name == self.name:
            self.manager.stopService()


def test_stoppedFromReportOfFindAfterChange():
    """
    An observer may stop the manager while a find during which a change
    came is being reported: the monitor stops, and waits for no quiet
    spell.
    """
    connection = SlowFinds()
    manager, clock = startedManager(connection)
    recorder = StopsWhenSeen(manager, "svc")
    monitor = manager.attach(Monitor({}, recorder))
    clock.advance(0)
    connection.answer()
    connection.register("svc", {})
    clock.advance(0)
    connection.register("later", {})
    clock.advance(0)
    connection.answer()
    assert recorder.view == {"svc": {}}
    assert not manager.running
    assert clock.getDelayedCalls() == []
    assert monitor.services == {"svc": {}}


def changingUntilFind(connection, clock, prefix):
    """
    Register a service every QUIET / 2 seconds, never leaving the registry
    quiet, until the monitor starts a find.

    @return: the seconds that took.
    """
    steps = 0
    while connection.waiting == []:
        connection.register("%s%d" % (prefix, steps), {})
        clock.advance(QUIET / 2)
        steps += 1
    return steps * QUIET / 2


def test_endlessChangesQueriedAfterMaxWait():
    """
    While changes keep coming, the monitor queries again MAX_WAIT after its
    last find, or PACE times that find's duration when longer; detaching
    cancels the wait.
    """
    connection, clock, manager, monitor, recorder = pacing()
    connection.register("svc0", {})
    clock.advance(0)
    connection.register("svc1", {})
    clock.advance(0)
    connection.answer()
    assert changingUntilFind(connection, clock, "more") == pytest.approx(MAX_WAIT, abs=QUIET)
    connection.register("during", {})
    clock.advance(MAX_WAIT)
    connection.answer()
    assert changingUntilFind(connection, clock, "later") == pytest.approx(
        PACE * MAX_WAIT, abs=QUIET
    )
    connection.register("last", {})
    clock.advance(0)
    connection.answer()
    assert clock.getDelayedCalls() != []
    manager.detach(monitor)
    assert clock.getDelayedCalls() == []
    assert connection.waiting == []
    manager.stopService()


def test_failedFindTriedAgain():
    """
    A find that fails is tried again after MAX_WAIT, without any change;
    each failure in a row doubles the wait, and a success resets it.  The
    reason is logged once for each run of failures.
    """
    connection = SlowFinds()
    manager, clock = startedManager(connection)
    recorder = MonitorRecorder()
    connection.register("svc", {"n": "1"})
    with capturedLogs() as events:
        manager.attach(Monitor({}, recorder))
        clock.advance(0)
        connection.fail()
        clock.advance(MAX_WAIT - 0.01)
        assert connection.waiting == []
        clock.advance(0.01)
        connection.fail()
        clock.advance(2 * MAX_WAIT - 0.01)
        assert connection.waiting == []
        clock.advance(0.01)
        connection.answer()
        assert recorder.events == [("added", "svc", {"n": "1"}), ("resynced",)]
        connection.register("other", {})
        clock.advance(0)
        connection.fail()
        clock.advance(MAX_WAIT)
        connection.answer()
        assert set(recorder.view) == {"svc", "other"}
        connection.register("more", {})
        clock.advance(0)
        delays = []
        for _ in range(9):
            connection.fail()
            clock.advance(0)  # the task log's turn
            [retry] = clock.getDelayedCalls()
            delays.append(retry.getTime() - clock.seconds())
            clock.advance(delays[-1])
        assert delays == [min(MAX_RETRY_DELAY, MAX_WAIT * 2**i) for i in range(9)]
    assert delays[-1] == MAX_RETRY_DELAY == 5
    warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
    assert warnings == ["monitor {}: find failed: garbled; trying again"] * 3
    manager.stopService()
    assert clock.getDelayedCalls() == []


def test_outageWithoutChange():
    """
    After an outage in which nothing changed, a monitor reports nothing but
    C{resynced()}; changes made during the outage are reported once (a
    removal once the settle window is over).
    """
    connection = MemoryConnection()
    manager, clock = startedManager(connection)
    registry = connection.registry
    for i in range(5):
        registry.register("another client", ["svc%d" % i, "n", str(i)])
    recorder = MonitorRecorder()
    manager.attach(Monitor({}, recorder))
    clock.advance(0)
    assert recorder.count("added") == 5
    connection.crash()
    connection.recover()
    clock.advance(0)
    assert recorder.kinds() == ["added"] * 5 + ["resynced", "resynced"]
    assert recorder.events[0] == ("added", "svc0", {"n": "0"})
    connection.crash()
    registry.release(registry["svc0"])
    registry.register("another client", ["fresh", "n", "fresh"])
    connection.recover()
    clock.advance(0)
    assert recorder.kinds()[7:] == ["added", "resynced"]
    clock.advance(SETTLE)
    assert recorder.kinds()[7:] == ["added", "resynced", "removed"]
    assert set(recorder.view) == {"svc1", "svc2", "svc3", "svc4", "fresh"}
    manager.stopService()
    assert clock.getDelayedCalls() == []


def _outage(settle, comesBack):
    """
    A monitor of two services sees a registry restart after which C{svc1}
    is registered again after C{comesBack} seconds (never when L{None}).

    @return: the recorder's event kinds with their names, the manager's
        clock and the monitor.
    """
    connection = MemoryConnection()
    manager, clock = startedManager(connection)
    registry = connection.registry
    registry.register("owner1", ["svc1", "n", "1"])
    registry.register("owner2", ["svc2", "n", "2"])
    recorder = MonitorRecorder()
    monitor = manager.attach(Monitor({"n": "*"}, recorder, settle=settle))
    clock.advance(0)
    connection.crash()
    registry.release(registry["svc1"])
    connection.recover()
    clock.advance(0)
    if comesBack is not None:
        clock.advance(comesBack)
        registry.register("owner1", ["svc1", "n", "1"])
        clock.advance(1)
    clock.advance(settle + 1)
    kinds = [e[0] if len(e) == 1 else "%s %s" % e[:2] for e in recorder.events]
    manager.stopService()
    return kinds, clock, monitor


def test_settleWindowHidesReRegistration():
    """
    A service that is registered again within the settle window after a
    reconnection is never reported removed.
    """
    kinds, clock, monitor = _outage(settle=5, comesBack=2)
    assert kinds == ["added svc1", "added svc2", "resynced", "resynced"]
    assert clock.getDelayedCalls() == []


def test_settleWindowThenRemoved():
    """
    A service still missing when the window ends is reported removed then,
    not before.
    """
    kinds, clock, monitor = _outage(settle=5, comesBack=None)
    assert kinds == ["added svc1", "added svc2", "resynced", "resynced", "removed svc1"]


def test_noSettleWindow():
    """
    With C{settle=0}, a service missing after the reconnection is reported
    removed by the first answer.
    """
    kinds, clock, monitor = _outage(settle=0, comesBack=2)
    assert kinds == [
        "added svc1",
        "added svc2",
        "resynced",
        "removed svc1",
        "resynced",
        "added svc1",
    ]


def test_badSettle():
    with pytest.raises(ValueError, match="settle"):
        Monitor({}, MonitorRecorder(), settle=-1)


def test_startedTwice():
    """
    Starting a started monitor again changes nothing: no second find, no
    second C{resynced()}.  Stopped while it waits for the manager to restore
    its services, it gives up that wait.
    """
    connection = MemoryConnection()
    manager, clock = startedManager(connection)
    recorder = MonitorRecorder()
    monitor = manager.attach(Monitor({}, recorder))
    clock.advance(0)
    assert (connection.finds, recorder.kinds()) == (1, ["resynced"])
    monitor.start()
    clock.advance(0)
    assert (connection.finds, recorder.kinds()) == (1, ["resynced"])
    manager.stopService()
    monitor.start()
    assert len(manager._restoreWaiters) == 1
    monitor.stop()
    assert manager._restoreWaiters == []
