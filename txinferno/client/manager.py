"""
The registry manager: keeps the change stream of one registry open and
keeps its tasks (registered services, lookups, monitors) going across every
outage, the counterpart of Perl's C{Inferno::RegMgr}.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno._filelimit import raiseOpenFileLimit
from txinferno.client._burstlog import BurstLog
from txinferno.client.event import sentence
from txinferno.client.lookup import Lookup
from txinferno.client.tcp import connectionFromString
from txinferno.interfaces import (
    IChangeObserver,
    IChangeStream,
    IConnectionStateObserver,
    IRegistryConnection,
    IRegistryTask,
    ITaskManager,
)
from txinferno.wire.rules import AttributesLike, Services, checkPositive

__all__ = ["START_BATCH", "DEFAULT_UNREACHABLE_WARNING", "RegistryManager"]

START_BATCH = 32
"""
The most tasks a manager starts in one turn of the reactor.  Tasks attached
while it is connected, and every task when the registry becomes reachable,
start over the following turns, in the order they were attached: the
registry is already serving the first while the others start, and the
reactor goes on serving other work meanwhile.
"""

_Task = TypeVar("_Task", bound=IRegistryTask)

DEFAULT_UNREACHABLE_WARNING = 10.0
"""
Seconds the registry may stay unreachable (from the manager's start, or
from the loss of its change stream) before the manager logs a warning.
"""


class _State:
    """
    The states of a L{RegistryManager}.
    """

    STOPPED = "stopped"
    """
    The service is not running: no stream, no task running.
    """

    CONNECTING = "connecting"
    """
    Started, and the change stream not ready yet: no task started.
    """

    CONNECTED = "connected"
    """
    The change stream is ready: every task is started (or waits its turn).
    """

    STREAM_LOST = "stream lost"
    """
    The change stream was lost: the tasks that read the registry (those
    that follow changes) are stopped until it is ready again; the others
    keep what they hold (a registration whose own connection holds stays)
    but start nothing new.
    """


class _Restoration:
    """
    One restoration of a manager's tasks: from its change stream becoming
    ready until every task started since has restored what it holds.  The
    stream's loss or the manager's stop abandons it: the tasks' starts
    still outstanding then end in an abandoned restoration, which tells
    nobody.

    @ivar complete: whether nothing holds it now.
    """

    def __init__(self, whenComplete: Callable[[], None]) -> None:
        self._outstanding = 0
        self._whenComplete: Callable[[], None] | None = whenComplete

    @property
    def complete(self) -> bool:
        return self._outstanding == 0

    def hold(self) -> None:
        self._outstanding += 1

    def release(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0 and self._whenComplete is not None:
            self._whenComplete()

    def abandon(self) -> None:
        self._whenComplete = None


@implementer(IChangeObserver)
class _StreamListener:
    """
    Passes one change stream's notifications to its manager until it is
    detached: a stream stopped by C{stopService} may still report its loss
    afterwards, to nobody.
    """

    def __init__(self, manager: RegistryManager) -> None:
        self._manager: RegistryManager | None = manager

    def detach(self) -> None:
        self._manager = None

    def streamReady(self) -> None:
        if self._manager is not None:
            self._manager._streamReady()

    def registryChanged(self, version: int) -> None:
        if self._manager is not None:
            self._manager._registryChanged(version)

    def streamLost(self, reason: Failure) -> None:
        if self._manager is not None:
            self._manager._streamLost(reason)


@implementer(ITaskManager)
class RegistryManager(Service):
    """
    Keeps tasks going against one registry.

    While the service runs, the manager keeps the registry's change stream
    open through its connection plugin.  When the stream is ready the
    manager is I{connected}: it tells its connection-state observers and
    calls C{start()} on every attached task (over the next turns, see
    L{START_BATCH}); each burst of change reports gives
    one C{refresh()} call to each task that follows changes (its
    C{followsChanges} is true when it is attached); when the stream is lost,
    it calls C{stop()} on every task that follows changes (a
    L{txinferno.client.monitor.Monitor}, a L{Lookup}: they read the
    registry, and cannot follow it without the stream), tells its
    observers, and waits for the plugin to reopen the stream.  The other
    tasks (a L{txinferno.client.service.ServiceTask}) are not stopped: a
    registration whose own connection holds stays registered through an
    outage of the event port alone; one that is lost waits for the
    stream's return (L{connected} is false meanwhile) before it is made
    again.  A registry unreachable for longer than C{unreachableWarning}
    seconds is logged as a warning.

    @ivar connection: the connection plugin.
    @type connection: L{txinferno.interfaces.IRegistryConnection}

    @ivar clock: the clock used for coalescing change reports and by the
        tasks for their timers.
    @type clock: L{twisted.internet.interfaces.IReactorTime}

    @ivar taskLog: where tasks log what happens to many of them at once (a
        registry that rejects a thousand services, a find port that fails
        a thousand monitors): one line per reason and turn of the clock.
    @type taskLog: L{txinferno.client._burstlog.BurstLog}
    """

    _log = Logger()

    def __init__(
        self,
        connection: IRegistryConnection,
        clock: IReactorTime | None = None,
        unreachableWarning: float | None = DEFAULT_UNREACHABLE_WARNING,
    ) -> None:
        """
        @param connection: how to reach the registry.
        @type connection: L{txinferno.interfaces.IRegistryConnection}

        @param clock: the clock for timers; the global reactor by default.
        @type clock: L{twisted.internet.interfaces.IReactorTime}

        @param unreachableWarning: seconds the registry may stay
            unreachable before a warning is logged, or L{None} for none.
        @raise ValueError: for an C{unreachableWarning} that is not
            positive.
        """
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        if unreachableWarning is not None:
            checkPositive(unreachableWarning, "unreachableWarning")
        self.connection = connection
        self.clock = clock
        self.taskLog = BurstLog(self._log, clock)
        self._unreachableWarning = unreachableWarning
        self._unreachableCall: IDelayedCall | None = None
        # Ordered sets (dicts of None): the attached tasks, those among them
        # that follow changes, and those waiting for their turn to start.
        self._tasks: dict[IRegistryTask, None] = {}
        self._followers: dict[IRegistryTask, None] = {}
        self._toStart: dict[IRegistryTask, None] = {}
        self._observers: list[IConnectionStateObserver] = []
        self._connectWaiters: list[Deferred[RegistryManager]] = []
        self._restoreWaiters: list[Deferred[RegistryManager]] = []
        self._state = _State.STOPPED
        self._restoration: _Restoration | None = None
        self._startCall: IDelayedCall | None = None
        self._listener: _StreamListener | None = None
        self._stream: IChangeStream | None = None
        self._refreshCall: IDelayedCall | None = None

    @classmethod
    def fromDescription(
        cls,
        reactor: IReactorTime,
        description: str,
        unreachableWarning: float | None = DEFAULT_UNREACHABLE_WARNING,
        **options: Any,
    ) -> RegistryManager:
        """
        Build a manager for the registry a description string names.

        @param reactor: the reactor to connect with, also the manager's clock.
        @param description: a registry description such as
            C{tcp:127.0.0.1:6701}; see L{txinferno.client.tcp.connectionFromString}.
        @type description: L{str}
        @param unreachableWarning: see L{__init__}.
        @param options: passed to L{txinferno.client.tcp.connectionFromString}
            (timeouts, the reconnection backoff's C{initialDelay} and
            C{maxDelay}, the liveness probe).

        @rtype: L{RegistryManager}
        """
        return cls(
            connectionFromString(reactor, description, **options),
            clock=reactor,
            unreachableWarning=unreachableWarning,
        )

    def __repr__(self):
        return "<RegistryManager %s %s>" % (self.connection.description, self._state)

    @property
    def connected(self) -> bool:
        """
        L{True} while the registry's change stream is open and ready.
        """
        return self._state is _State.CONNECTED

    @property
    def tasks(self) -> tuple[IRegistryTask, ...]:
        """
        The attached tasks, in the order they were attached.

        @rtype: L{tuple}
        """
        return tuple(self._tasks)

    def startService(self) -> None:
        """
        Open the registry's change stream; the tasks start once it is ready.
        Harmless when started already.
        """
        if self._state is not _State.STOPPED:
            return
        Service.startService(self)
        before, after = raiseOpenFileLimit()
        if after > before:
            self._log.info(
                "open-file limit raised from {before} to {after}", before=before, after=after
            )
        self._state = _State.CONNECTING
        self._warnIfStillUnreachable()
        self._listener = _StreamListener(self)
        self._stream = self.connection.watch(self._listener)

    def stopService(self) -> Deferred[None]:
        """
        Stop every task (unregistering services), close the change stream,
        and fail the L{whenConnected} Deferreds still waiting with
        L{CancelledError}.  The tasks stay attached and start again if the
        service starts again.

        @return: a L{Deferred} that fires with L{None} once every
            registration and the stream are closed.
        """
        Service.stopService(self)
        state, self._state = self._state, _State.STOPPED
        self._abandonRestoration()
        self._cancelRefresh()
        self._cancelStarts()
        self._cancelUnreachableWarning()
        stream, self._stream, listener, self._listener = self._stream, None, self._listener, None
        if listener is not None:
            listener.detach()
        closing = [stream.stop()] if stream is not None else []
        if state is _State.CONNECTED:
            closing.extend(self._callTasks("stop"))
        elif state is _State.STREAM_LOST:
            closing.extend(self._callTasks("stop", self._writers()))
        waiting, self._connectWaiters = self._connectWaiters, []
        for d in waiting:
            d.errback(CancelledError("the registry manager was stopped"))
        return gatherResults(closing, consumeErrors=True).addCallback(lambda _: None)

    def attach(self, task: _Task) -> _Task:
        """
        Attach a task: if the registry is reachable, it is started on a
        later turn of the reactor (see L{START_BATCH}), and from now on
        whenever the registry becomes reachable again.

        @type task: L{txinferno.interfaces.IRegistryTask}
        @raise TypeError: if C{task} does not provide
            L{txinferno.interfaces.IRegistryTask}.
        @raise ValueError: if C{task} is already attached, to this manager or
            another one.
        @return: C{task}.
        """
        if not IRegistryTask.providedBy(task):
            raise TypeError("%r does not provide IRegistryTask" % (task,))
        if task.manager is self:
            raise ValueError("%r is already attached to this manager" % (task,))
        if task.manager is not None:
            raise ValueError("%r is attached to another manager, %r" % (task, task.manager))
        self._tasks[task] = None
        if getattr(task, "followsChanges", True):
            self._followers[task] = None
        task.manager = self
        if self.connected:
            self._startLater([task])
        return task

    def detach(self, task: IRegistryTask) -> Deferred[None]:
        """
        Detach a task: it is stopped (a service is unregistered) and no
        longer started.

        @raise ValueError: if C{task} is not attached to this manager.
        @return: a L{Deferred} that fires with L{None} once the task has
            released what it held (a service's registration is closed).
        """
        if task not in self._tasks or task.manager is not self:
            raise ValueError("%r is not attached to this manager" % (task,))
        del self._tasks[task]
        self._followers.pop(task, None)
        self._toStart.pop(task, None)
        try:
            stopped = maybeDeferred(task.stop)
        finally:
            task.manager = None
        return stopped.addCallback(lambda _: None)

    def lookup(self, attrs: AttributesLike, timeout: float = 10) -> Deferred[Services]:
        """
        Find the services matching C{attrs} once, waiting through an outage
        if need be; usable with C{await}.

        @param attrs: the query: a mapping or a sequence of C{(attr, value)}
            pairs; a value of C{*} matches any value of an existing attribute.
        @param timeout: seconds, from now, before giving up.
        @raise ValueError: for an invalid query or a timeout that is not
            positive.
        @raise TypeError: for a timeout that is not a number.
        @return: a L{Deferred} that fires with C{{name: {attr: value}}}, or
            fails with L{txinferno.errors.RegistryUnavailable} after
            C{timeout} seconds or with L{txinferno.errors.MalformedAnswer}.
        """
        return self.attach(Lookup(attrs, timeout=timeout)).deferred

    def addObserver(self, observer: IConnectionStateObserver) -> None:
        """
        Tell C{observer} when the registry becomes reachable or unreachable.

        @type observer: L{txinferno.interfaces.IConnectionStateObserver}
        """
        self._observers.append(observer)

    def removeObserver(self, observer: IConnectionStateObserver) -> None:
        """
        Stop telling C{observer}.

        @raise ValueError: if C{observer} was not added.
        """
        self._observers.remove(observer)

    def whenConnected(self) -> Deferred[RegistryManager]:
        """
        @return: a L{Deferred} that fires with this manager once the registry
            is reachable (at once if it is now), or fails with
            L{CancelledError} if the service stops first; cancelling it
            stops the wait.
        """
        if self.connected:
            return succeed(self)
        return _waiter(self._connectWaiters)

    def whenRestored(self) -> Deferred[RegistryManager]:
        """
        Tasks that read the registry (L{txinferno.client.monitor.Monitor},
        L{txinferno.client.lookup.Lookup}) wait for this before their first query
        after the registry becomes reachable, so that they see the services
        this manager registers rather than a registry still being restored.

        @return: a L{Deferred} that fires with this manager once the registry
            is reachable and every task started since has restored what it
            holds there (every L{txinferno.client.service.ServiceTask} has made its
            first registration attempt); cancelling it stops the wait.
        """
        if self._isRestored():
            return succeed(self)
        return _waiter(self._restoreWaiters)

    def _isRestored(self):
        return self._restoration is not None and self._restoration.complete and not self._toStart

    def _startLater(self, tasks):
        """
        Start C{tasks}, after those already waiting, L{START_BATCH} a turn.
        """
        for task in tasks:
            self._toStart[task] = None
        if self._startCall is None and self._toStart:
            self._startCall = self.clock.callLater(0, self._startBatch)

    def _startBatch(self):
        self._startCall = None
        batch = list(islice(self._toStart, START_BATCH))
        for task in batch:
            del self._toStart[task]
        if self._toStart:
            self._startCall = self.clock.callLater(0, self._startBatch)
        self._startTasks(batch)

    def _cancelStarts(self):
        self._toStart.clear()
        if self._startCall is not None:
            self._startCall.cancel()
            self._startCall = None

    def _startTasks(self, tasks):
        """
        Start C{tasks} as part of the current restoration: a task's
        C{start()} may return a L{Deferred} that fires once it has restored
        what it holds in the registry.  L{whenRestored} waits for them all,
        for the tasks still waiting to start, and for the end of this loop.
        """
        restoration = self._restoration
        assert restoration is not None
        restoration.hold()
        for task in tasks:
            started = self._callTask(task, "start")
            if isinstance(started, Deferred):
                restoration.hold()
                started.addBoth(self._taskRestored, restoration)
        restoration.release()

    def _taskRestored(self, result, restoration):
        restoration.release()
        if isinstance(result, Failure):
            self._log.failure("a task failed to restore its state", failure=result)

    def _abandonRestoration(self):
        if self._restoration is not None:
            self._restoration.abandon()
            self._restoration = None

    def _restoredMaybe(self):
        if self._isRestored():
            waiting, self._restoreWaiters = self._restoreWaiters, []
            for d in waiting:
                d.callback(self)

    def _streamReady(self):
        self._log.info("registry {registry} reachable", registry=self.connection.description)
        self._state = _State.CONNECTED
        self._restoration = _Restoration(self._restoredMaybe)
        self._cancelUnreachableWarning()
        self._startLater([t for t in self._tasks if t.manager is self])
        for observer in list(self._observers):
            self._notify(observer, "registryConnected")
        waiting, self._connectWaiters = self._connectWaiters, []
        for d in waiting:
            d.callback(self)

    def _registryChanged(self, version):
        if self.connected and self._refreshCall is None:
            self._refreshCall = self.clock.callLater(0, self._refresh)

    def _refresh(self):
        self._refreshCall = None
        self._callTasks("refresh", [t for t in self._followers if t not in self._toStart])

    def _streamLost(self, reason):
        if not self.connected:
            self._log.debug(
                "registry {registry} still unreachable: {reason}",
                registry=self.connection.description,
                reason=reason.getErrorMessage(),
            )
            return
        self._log.warn(
            "registry {registry} lost: {reason}; monitors and lookups wait for it, "
            "registered services stay while their own connections hold",
            registry=self.connection.description,
            reason=sentence(reason),
        )
        self._state = _State.STREAM_LOST
        self._abandonRestoration()
        self._cancelRefresh()
        self._cancelStarts()
        self._warnIfStillUnreachable()
        for stopped in self._callTasks("stop", list(self._followers)):
            stopped.addErrback(lambda f: self._log.failure("stopping a task failed", failure=f))
        for observer in list(self._observers):
            self._notify(observer, "registryLost", reason)

    def _writers(self):
        """
        @return: the attached tasks that do not follow changes, which a
            lost stream does not stop.
        """
        return [t for t in self._tasks if t not in self._followers]

    def _warnIfStillUnreachable(self):
        """
        Warn once the registry has been unreachable for
        C{unreachableWarning} seconds from now.
        """
        if self._unreachableWarning is not None and self._unreachableCall is None:
            self._unreachableCall = self.clock.callLater(
                self._unreachableWarning, self._stillUnreachable
            )

    def _stillUnreachable(self):
        self._unreachableCall = None
        reason = getattr(self._stream, "lastFailure", None)
        self._log.warn(
            "registry {registry} unreachable for {seconds:g} s{why}; still trying",
            registry=self.connection.description,
            seconds=self._unreachableWarning,
            why="" if reason is None else " (%s)" % (sentence(reason),),
            reason=reason,
        )

    def _cancelUnreachableWarning(self):
        if self._unreachableCall is not None:
            self._unreachableCall.cancel()
            self._unreachableCall = None

    def _cancelRefresh(self):
        if self._refreshCall is not None:
            self._refreshCall.cancel()
            self._refreshCall = None

    def _callTasks(self, method, tasks=None):
        """
        Call C{method} on every attached task (or every one of C{tasks}),
        each isolated from the others' exceptions.

        @return: the Deferreds of the tasks that returned one.
        """
        results = []
        for task in list(self._tasks if tasks is None else tasks):
            if task.manager is self:
                result = self._callTask(task, method)
                if isinstance(result, Deferred):
                    results.append(result)
        return results

    def _callTask(self, task, method):
        try:
            return getattr(task, method)()
        except Exception:
            self._log.failure("task {task} failed in {method}()", task=task, method=method)

    def _notify(self, observer, method, *args):
        try:
            getattr(observer, method)(*args)
        except Exception:
            self._log.failure(
                "observer {observer} failed in {method}()", observer=observer, method=method
            )


def _waiter(waiters):
    """
    @return: a new L{Deferred} in C{waiters}, which cancelling removes.
    """
    d = Deferred(waiters.remove)
    waiters.append(d)
    return d
