"""
Tests for L{txinferno.client.manager.RegistryManager}: attach / detach rules, the
connected state, start / stop / refresh dispatch, observers and the
coalescing of change reports.

The deterministic tests use L{MemoryConnection}, an in-process connection
plugin over the project's own registry model (L{txinferno.server.registry.Registry})
and word rules, checked with C{verifyObject}; the others talk to the
embedded server over loopback TCP.
"""

import pytest
from support import TurnClock, startedManager
from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txinferno.client.manager import START_BATCH, RegistryManager
from txinferno.client.service import ServiceTask
from txinferno.errors import RegistrationLost
from txinferno.interfaces import (
    IChangeStream,
    IRegistration,
    IRegistryConnection,
    IRegistryTask,
    ITaskManager,
)
from txinferno.testing.memory import MemoryConnection
from txinferno.testing.recorders import ChangeRecorder, ConnectionStateRecorder


@implementer(IRegistryTask)
class RecordingTask:
    """
    A task that records the calls it gets.
    """

    followsChanges = True

    def __init__(self):
        self.manager = None
        self.calls = []

    def start(self):
        self.calls.append("start")

    def stop(self):
        self.calls.append("stop")

    def refresh(self):
        self.calls.append("refresh")


def timers(manager):
    """
    @return: the names of the functions the manager's clock will call.
    """
    return [call.func.__name__ for call in manager.clock.getDelayedCalls()]


@pytest.fixture
def memory():
    """
    A started manager on a L{MemoryConnection} with a L{TurnClock}.
    """
    manager, clock = startedManager(MemoryConnection(), TurnClock())
    yield manager
    if manager.running:
        manager.stopService()
    assert clock.getDelayedCalls() == []


def test_memoryConnectionProvidesInterfaces():
    """
    The test connection plugin is a real implementation of the interfaces.
    """
    connection = MemoryConnection()
    verifyObject(IRegistryConnection, connection)
    registration = connection.register("svc", {"a": "1"}).result
    verifyObject(IRegistration, registration)
    verifyObject(IChangeStream, connection.watch(ChangeRecorder()))


def test_managerProvidesWhatTasksUse():
    """
    A manager provides L{ITaskManager}, what a task may use of it.
    """
    manager = RegistryManager(MemoryConnection(), clock=Clock())
    verifyObject(ITaskManager, manager)


def test_managerIsAService():
    """
    A manager is a Twisted service: it starts and stops with its parent.
    """
    connection = MemoryConnection()
    manager = RegistryManager(connection, clock=Clock())
    parent = MultiService()
    manager.setServiceParent(parent)
    assert connection.streams == []
    parent.startService()
    assert manager.running and manager.connected
    assert len(connection.streams) == 1
    parent.stopService()
    assert not manager.running and not manager.connected
    assert connection.streams == []


def test_attachStartsWhenConnected(memory):
    """
    A task attached to a connected manager gets its C{manager} at once and
    is started on the next turn of the clock; detaching stops it and
    clears C{manager}.
    """
    task = RecordingTask()
    assert memory.attach(task) is task
    assert task.manager is memory
    assert task.calls == []
    memory.clock.advance(0)
    assert task.calls == ["start"]
    assert memory.tasks == (task,)
    d = memory.detach(task)
    assert d.result is None
    assert task.manager is None
    assert task.calls == ["start", "stop"]
    assert memory.tasks == ()


def test_startsInBatches(memory):
    """
    Tasks attached in one turn start over the next turns, L{START_BATCH} a
    turn, in the order they were attached; L{whenRestored} waits for the
    last of them.
    """
    tasks = [memory.attach(RecordingTask()) for _ in range(2 * START_BATCH + 1)]
    restored = memory.whenRestored()
    for expected in (START_BATCH, 2 * START_BATCH):
        memory.clock.turn()
        started = [t for t in tasks if t.calls]
        assert started == tasks[:expected]
        assert not restored.called
    memory.clock.turn()
    assert all(t.calls == ["start"] for t in tasks)
    assert restored.result is memory
    assert memory.clock.getDelayedCalls() == []


def test_detachBeforeStart(memory):
    """
    A task detached before its turn to start is stopped and never started.
    """
    task = memory.attach(RecordingTask())
    memory.detach(task)
    memory.clock.advance(0)
    assert task.calls == ["stop"]
    assert memory.clock.getDelayedCalls() == []


def test_noRefreshBeforeStart(memory):
    """
    A task still waiting to start gets no C{refresh()} for a change reported
    meanwhile: its start reads the registry anyway.
    """
    tasks = [memory.attach(RecordingTask()) for _ in range(2 * START_BATCH + 1)]
    memory.clock.turn()
    memory.connection.register("svc", {})
    memory.clock.turn()
    assert tasks[0].calls == ["start", "refresh"]
    assert tasks[-1].calls == []
    memory.clock.turn()
    assert tasks[-1].calls == ["start"]


def test_outageBeforeStart(memory):
    """
    Tasks waiting to start when the registry is lost wait for its return,
    and then start once.
    """
    tasks = [memory.attach(RecordingTask()) for _ in range(START_BATCH + 1)]
    memory.clock.turn()
    memory.connection.crash()
    assert timers(memory) == ["_stillUnreachable"]
    memory.connection.recover()
    memory.clock.advance(0)
    assert tasks[0].calls == ["start", "stop", "start"]
    assert tasks[-1].calls == ["stop", "start"]


def test_attachWhileDisconnectedWaits():
    """
    A task attached before the registry is reachable starts when it is.
    """
    connection = MemoryConnection()
    connection.reachable = False
    manager = RegistryManager(connection, clock=Clock())
    manager.startService()
    task = manager.attach(RecordingTask())
    manager.clock.advance(0)
    assert task.calls == []
    connection.recover()
    manager.clock.advance(0)
    assert task.calls == ["start"]
    manager.stopService()
    assert task.calls == ["start", "stop"]


def test_attachTwice(memory):
    """
    Attaching a task twice is a clear error, and changes nothing.
    """
    task = memory.attach(RecordingTask())
    with pytest.raises(ValueError, match="already attached to this manager"):
        memory.attach(task)
    memory.clock.advance(0)
    assert memory.tasks == (task,)
    assert task.calls == ["start"]


def test_attachToAnotherManager(memory):
    """
    A task attached to one manager cannot be attached to another.
    """
    other = RegistryManager(MemoryConnection(), clock=Clock())
    task = other.attach(RecordingTask())
    with pytest.raises(ValueError, match="attached to another manager"):
        memory.attach(task)
    assert task.manager is other
    assert memory.tasks == ()


def test_detachNotAttached(memory):
    """
    Detaching a task that is not attached, or attached elsewhere, is a clear
    error.
    """
    task = RecordingTask()
    with pytest.raises(ValueError, match="not attached to this manager"):
        memory.detach(task)
    other = RegistryManager(MemoryConnection(), clock=Clock())
    other.attach(task)
    with pytest.raises(ValueError, match="not attached to this manager"):
        memory.detach(task)
    assert task.manager is other


def test_attachNotATask(memory):
    """
    Attaching something that is not a task is a L{TypeError}.
    """
    with pytest.raises(TypeError, match="IRegistryTask"):
        memory.attach(object())


def test_outageStopsAndRestartsTasks(memory):
    """
    Losing the stream stops every task and tells the observers; getting it
    back starts every task again and fires L{whenConnected}.
    """
    connection = memory.connection
    observer = ConnectionStateRecorder()
    memory.addObserver(observer)
    verifyObject(IRegistryTask, memory.attach(RecordingTask()))
    tasks = [memory.attach(RecordingTask()) for _ in range(3)]
    memory.clock.advance(0)
    assert memory.whenConnected().result is memory
    connection.crash()
    assert not memory.connected
    assert all(t.calls == ["start", "stop"] for t in tasks)
    assert observer.events == ["lost"]
    assert observer.reasons[0].type is ConnectionLost
    waiting = memory.whenConnected()
    assert not waiting.called
    connection.recover()
    assert waiting.result is memory
    memory.clock.advance(0)
    assert all(t.calls == ["start", "stop", "start"] for t in tasks)
    assert observer.events == ["lost", "connected"]
    memory.removeObserver(observer)
    connection.crash()
    assert len(observer.events) == 2


def test_burstOfChangesGivesOneRefresh(memory):
    """
    However many change reports arrive together, each task gets one
    C{refresh()}, on the next turn of the clock.
    """
    task = memory.attach(RecordingTask())
    memory.clock.advance(0)
    for i in range(50):
        memory.connection.register("svc%d" % i, {"n": str(i)})
    assert memory.connection.registry.version == 50
    assert len(memory.clock.getDelayedCalls()) == 1
    assert task.calls == ["start"]
    memory.clock.advance(0)
    assert task.calls == ["start", "refresh"]
    memory.connection.register("one-more", {})
    memory.clock.advance(0)
    assert task.calls == ["start", "refresh", "refresh"]


def test_refreshOnlyForTasksFollowingChanges(memory):
    """
    A task whose C{followsChanges} is false when attached gets no
    C{refresh()}, but is started and stopped like any other; one without
    the attribute follows changes.
    """

    class WriteOnly(RecordingTask):
        followsChanges = False

    class Unmarked(RecordingTask):
        followsChanges = property(lambda self: self.__getattribute__("nothing"))

    writer = memory.attach(WriteOnly())
    unmarked = memory.attach(Unmarked())
    memory.clock.advance(0)
    memory.connection.register("svc", {})
    memory.clock.advance(0)
    assert writer.calls == ["start"]
    assert unmarked.calls == ["start", "refresh"]
    memory.detach(writer)
    assert writer.calls == ["start", "stop"]


def test_outageCancelsPendingRefresh(memory):
    """
    A refresh due when the stream is lost is dropped: the tasks are stopped.
    """
    task = memory.attach(RecordingTask())
    memory.clock.advance(0)
    memory.connection.register("svc", {})
    memory.connection.crash()
    assert timers(memory) == ["_stillUnreachable"]
    assert task.calls == ["start", "stop"]


@pytest.mark.logs_errors
def test_failingTaskDoesNotStopOthers(memory, logged):
    """
    A task that raises in C{start()} is logged; the others still start.
    """

    class Broken(RecordingTask):
        def start(self):
            raise RuntimeError("broken task")

    broken = memory.attach(Broken())
    task = memory.attach(RecordingTask())
    memory.clock.advance(0)
    memory.connection.crash()
    memory.connection.recover()
    memory.clock.advance(0)
    assert task.calls == ["start", "stop", "start"]
    assert broken.calls == ["stop"]
    failures = [e["log_failure"] for e in logged if "log_failure" in e]
    assert [f.getErrorMessage() for f in failures] == ["broken task"] * 2


def test_stopServiceCancelsWhenConnected():
    """
    L{whenConnected} Deferreds still waiting when the service stops fail
    with L{CancelledError}; the stream is closed.
    """
    connection = MemoryConnection()
    connection.reachable = False
    manager = RegistryManager(connection, clock=Clock())
    manager.startService()
    waiting = manager.whenConnected()
    done = manager.stopService()
    assert done.result is None
    assert waiting.called
    with pytest.raises(CancelledError):
        waiting.result.raiseException()
    waiting.addErrback(lambda f: None)
    assert connection.streams == []


def test_stopServiceUnregisters(memory):
    """
    Stopping the manager unregisters its services (the tasks stay attached
    and come back when the manager starts again).
    """
    service = memory.attach(ServiceTask("svc", {"a": "1"}))
    memory.clock.advance(0)
    assert "svc" in memory.connection.registry
    d = memory.stopService()
    assert d.result is None
    assert "svc" not in memory.connection.registry
    assert memory.tasks == (service,)
    memory.startService()
    memory.clock.advance(0)
    assert memory.connection.registry["svc"].get("a") == "1"


def test_lookupConvenience(memory):
    """
    L{RegistryManager.lookup} attaches a L{Lookup} and gives its Deferred.
    """
    memory.connection.register("svc", {"a": "1"})
    d = memory.lookup({"a": "*"}, timeout=5)
    memory.clock.advance(0)
    assert d.result == {"svc": {"a": "1"}}
    assert memory.tasks == ()


def test_fromDescription():
    """
    L{RegistryManager.fromDescription} builds the TCP connection plugin for
    a description string and uses the reactor as its clock.
    """
    manager = RegistryManager.fromDescription(reactor, "tcp:127.0.0.1:16701")
    verifyObject(IRegistryConnection, manager.connection)
    assert manager.clock is reactor
    assert manager.connection.description.startswith("tcp:")
    assert not manager.running


def test_serviceLostSoonKeepsBackingOff(memory):
    """
    A registration lost sooner than the wait that would follow counts as a
    failed attempt: the waits grow as the backoff says; one held at least
    that long starts the backoff afresh.
    """
    svc = memory.attach(ServiceTask("svc", {}))
    svc.jitter = 0
    memory.clock.advance(0)
    waits = []
    for held in (0, 0, 10):
        assert svc.registered
        memory.clock.advance(held)
        memory.connection.registrations[0]._end(Failure(RegistrationLost("svc")))
        now = memory.clock.seconds()
        [retry] = [c for c in memory.clock.getDelayedCalls() if c.getTime() > now]
        waits.append(retry.getTime() - now)
        memory.clock.advance(waits[-1])
    assert waits == pytest.approx([0.5, 0.5 * svc.factor, 0.5])
    assert svc.registered


def test_serviceStartedTwice(memory):
    """
    Starting a started L{ServiceTask} again changes nothing when it is
    registered (one registration); one backing off after a rejection tries
    again at once, with its backoff afresh, leaving one pending retry, not
    two.
    """
    svc = memory.attach(ServiceTask("svc", {}))
    memory.clock.advance(0)
    assert svc.registered
    assert svc.start() is None
    assert len(memory.connection.registrations) == 1
    memory.connection.register("taken", {})
    other = memory.attach(ServiceTask("taken", {}))
    memory.clock.advance(0)
    assert not other.registered
    [pending] = memory.clock.getDelayedCalls()
    attempt = other.start()
    assert attempt is not None and not pending.active()
    memory.clock.advance(0)
    assert not other.registered
    [retry] = memory.clock.getDelayedCalls()
    assert retry is not pending
    assert retry.getTime() - memory.clock.seconds() <= other.initialDelay * 2


@implementer(IRegistryTask)
class RestoringTask(RecordingTask):
    """
    A task whose every C{start()} returns a new L{Deferred}, kept in
    C{restorations}, that the test fires when it likes.
    """

    def __init__(self):
        RecordingTask.__init__(self)
        self.restorations = []

    def start(self):
        RecordingTask.start(self)
        d = Deferred()
        self.restorations.append(d)
        return d


def test_whenRestoredWaitsForEveryStart(memory):
    """
    L{whenRestored} fires once every task started since the registry became
    reachable has restored what it holds, and not before.
    """
    tasks = [memory.attach(RestoringTask()) for _ in range(3)]
    restored = memory.whenRestored()
    memory.clock.turn()
    for task in tasks[:-1]:
        task.restorations[0].callback(None)
        assert not restored.called
    tasks[-1].restorations[0].callback(None)
    assert restored.result is memory


def test_staleStartAfterOutageIgnored(memory):
    """
    A start still restoring when the registry is lost belongs to that
    period: when it ends after the registry is back, it neither completes
    the new restoration nor holds it open.
    """
    slow, fast = memory.attach(RestoringTask()), memory.attach(RestoringTask())
    memory.clock.turn()
    memory.connection.crash()
    memory.connection.recover()
    memory.clock.turn()
    restored = memory.whenRestored()
    # The old period's starts end now: the new period is not restored by them.
    slow.restorations[0].callback(None)
    fast.restorations[0].callback(None)
    assert not restored.called
    fast.restorations[1].callback(None)
    assert not restored.called
    slow.restorations[1].callback(None)
    assert restored.result is memory


def test_startServiceTwice(memory):
    """
    Starting a started manager again opens no second change stream and
    starts no task twice; one stop then leaves no stream open.
    """
    task = memory.attach(RecordingTask())
    memory.clock.advance(0)
    memory.startService()
    memory.clock.advance(0)
    assert len(memory.connection.streams) == 1
    assert task.calls == ["start"]
    memory.stopService()
    assert memory.connection.streams == []
    assert memory.clock.getDelayedCalls() == []
