"""
Observers that record what they are told, for tests of programs that use a
registry: L{MonitorRecorder} (a monitor's reports), L{ChangeRecorder} (a
change stream's calls) and L{ConnectionStateRecorder} (a manager's
connection states).  Each checks that the calls it gets come in an order the
interface allows, and lets a test wait for what it expects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno.client.observers import ConnectionStateObserver, MonitorObserver
from txinferno.interfaces import IChangeObserver

__all__ = ["MonitorRecorder", "ChangeRecorder", "ConnectionStateRecorder"]

_T = TypeVar("_T")

DEFAULT_WAIT = 10.0
"""
Seconds a wait of a recorder may take unless told otherwise.
"""


def _bounded(d: Deferred[_T], timeout: float, clock: IReactorTime | None) -> Deferred[_T]:
    if clock is None:
        from twisted.internet import reactor

        clock = reactor
    return d.addTimeout(timeout, clock)


class MonitorRecorder(MonitorObserver):
    """
    Records what a monitor reports, and lets a test wait for a condition on
    what it has seen.

    @ivar events: C{(kind, name, attrs)} for added / removed,
        C{("updated", name, attrs, previous)} and C{("resynced",)}.
    @ivar view: the services, as the reports build them.
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        self.events: list[tuple] = []
        self.view: dict[str, dict[str, str]] = {}
        self._clock = clock
        self._waiting: list[
            tuple[Callable[[MonitorRecorder], bool], Deferred[MonitorRecorder]]
        ] = []

    def added(self, name: str, attrs: dict[str, str]) -> None:
        assert name not in self.view, "added twice: %r" % (name,)
        self.view[name] = attrs
        self._record(("added", name, attrs))

    def updated(self, name: str, attrs: dict[str, str], previous: dict[str, str]) -> None:
        assert self.view.get(name) == previous, "updated from a wrong state: %r" % (name,)
        self.view[name] = attrs
        self._record(("updated", name, attrs, previous))

    def removed(self, name: str, attrs: dict[str, str]) -> None:
        assert self.view.pop(name, None) == attrs, "removed while absent: %r" % (name,)
        self._record(("removed", name, attrs))

    def resynced(self) -> None:
        self._record(("resynced",))

    def count(self, kind: str) -> int:
        """
        @return: how many reports of C{kind} (C{"added"}, ...) came.
        """
        return sum(1 for e in self.events if e[0] == kind)

    def kinds(self) -> list[str]:
        """
        @return: the kind of each report, in order.
        """
        return [e[0] for e in self.events]

    def _record(self, event: tuple[Any, ...]) -> None:
        self.events.append(event)
        for predicate, d in list(self._waiting):
            if predicate(self):
                self._waiting.remove((predicate, d))
                d.callback(self)

    def waitUntil(
        self, predicate: Callable[[MonitorRecorder], bool], timeout: float = DEFAULT_WAIT
    ) -> Deferred[MonitorRecorder]:
        """
        @return: a L{Deferred} that fires with this recorder once
            C{predicate(recorder)} holds (checked now and after each report),
            failing with L{twisted.internet.defer.TimeoutError} after
            C{timeout} seconds.
        """
        d: Deferred[MonitorRecorder] = Deferred()
        if predicate(self):
            d.callback(self)
            return d
        self._waiting.append((predicate, d))
        return _bounded(d, timeout, self._clock)


@implementer(IChangeObserver)
class ChangeRecorder:
    """
    Records what a change stream tells it, checking the order of the calls
    (ready, then changes, then lost, then ready again).

    @ivar events: C{"ready"}, each version as an C{int}, and
        C{("lost", reason)}.
    """

    def __init__(self) -> None:
        self.events: list[Any] = []

    @property
    def ready(self) -> bool:
        """
        Whether the stream is ready now, by the calls so far.
        """
        losses = sum(1 for e in self.events if isinstance(e, tuple))
        return self.events.count("ready") > losses

    def streamReady(self) -> None:
        assert not self.ready, "ready twice"
        self.events.append("ready")

    def registryChanged(self, version: int) -> None:
        assert isinstance(version, int) and self.ready, "a change while not ready"
        self.events.append(version)

    def streamLost(self, reason: Failure) -> None:
        assert self.ready, "lost while not ready"
        self.events.append(("lost", reason))


class ConnectionStateRecorder(ConnectionStateObserver):
    """
    Records a manager's connection states, and lets a test wait for the
    next one.

    @ivar events: C{"connected"} and C{"lost"}, in order.
    @ivar reasons: the L{Failure} of each C{"lost"}.
    @ivar times: the monotonic time of each event.
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        self.events: list[str] = []
        self.reasons: list[Failure] = []
        self.times: list[float] = []
        self._clock = clock
        self._waiting: list[tuple[str, Deferred[float]]] = []

    def registryConnected(self) -> None:
        self._record("connected")

    def registryLost(self, reason: Failure) -> None:
        self.reasons.append(reason)
        self._record("lost")

    def _record(self, event: str) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())
        waiting, self._waiting = self._waiting, []
        for kind, d in waiting:
            if kind == event:
                d.callback(self.times[-1])
            else:
                self._waiting.append((kind, d))

    def timesOf(self, kind: str) -> list[float]:
        """
        @return: the monotonic times of the C{kind} events so far.
        """
        return [t for e, t in zip(self.events, self.times) if e == kind]

    def next(self, kind: str, timeout: float = DEFAULT_WAIT) -> Deferred[float]:
        """
        @param kind: C{"connected"} or C{"lost"}.
        @return: a L{Deferred} that fires with the monotonic time of the
            next C{kind} event, failing with
            L{twisted.internet.defer.TimeoutError} after C{timeout} seconds.
        """
        d: Deferred[float] = Deferred()
        self._waiting.append((kind, d))
        return _bounded(d, timeout, self._clock)
