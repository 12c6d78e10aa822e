"""
The Monitor task: follow the services that match a query, reporting each
one that comes, changes or goes.
"""

from enum import Enum

from twisted.logger import Logger
from zope.interface import implementer

from txinferno.client._backoff import Backoff
from txinferno.client._reading import RegistryReader
from txinferno.client.event import DEFAULT_MAX_DELAY
from txinferno.interfaces import IMonitorObserver, IRegistryTask
from txinferno.wire.rules import AttributesLike, queryLine

__all__ = ["QUIET", "MAX_WAIT", "PACE", "MAX_RETRY_DELAY", "SETTLE", "Monitor"]

QUIET = 0.01
"""
Seconds without a change report after which a monitor queries the changes
reported while its last find ran.
"""

MAX_WAIT = 0.25
"""
While changes keep coming, the longest a monitor waits, after a find, for
a quiet spell before querying again anyway.
"""

PACE = 3
"""
The wait of L{MAX_WAIT} grows to this many times the last find's duration
when finds take longer, so that a monitor spends at most a quarter of its
time finding while changes keep coming, however large its answers grow.
"""

MAX_RETRY_DELAY = DEFAULT_MAX_DELAY
"""
The longest wait, by default, before a monitor tries again after finds
that failed (each failure in a row doubles the wait, from L{MAX_WAIT});
see L{Monitor.maxDelay}.
"""

SETTLE = 10.0
"""
Default of L{Monitor.settle}: seconds after the registry is reachable again
during which a service of the view that has not come back yet is not
reported removed (its owner may still be registering it again).
"""


class _MonitorState(Enum):
    """
    The states of a L{Monitor}.
    """

    stopped = "not started, or stopped"
    restoring = "waiting for the manager to restore its services"
    idle = "the view is up to date: waiting for a change"
    finding = "a find in flight"
    findingChanged = "a find in flight, and a change came since it started"
    quieting = "waiting for a quiet spell before the next find"
    retrying = "backing off after a failed find"


@implementer(IRegistryTask)
class Monitor(RegistryReader):
    """
    Follows the services matching a query and reports the differences to an
    L{txinferno.interfaces.IMonitorObserver}.

    One find is in flight at a time and none is ever cancelled to start
    another: a change reported while a find runs only marks that exactly one
    more find is needed.  That one starts once no change has been reported
    for L{QUIET} seconds after the find, or at the latest L{MAX_WAIT} seconds (or L{PACE}
    times the last find's duration, if longer) after the last find ended:
    a burst of changes costs a few finds, and its end is seen soon after it
    ends.  A change after a quiet spell is queried at once.  A find that
    fails is tried again after L{MAX_WAIT}, the wait doubling with each
    failure in a row up to L{maxDelay} (Twisted's
    L{twisted.application.internet.backoffPolicy}); the reason is logged once for
    as long as it stays the same.  Each answer is
    compared with the current view, so a service that starts matching after
    an update is reported as added, one that stops matching as removed, and
    an outage with no change produces no report but C{resynced()}.

    After an outage, services of the view that the registry does not list
    yet are held for L{settle} seconds from the reconnection: added and
    updated services are reported at once, but one still missing is
    reported removed only by the first answer after the window, since its
    owner is most likely registering it again.

    @ivar attrs: the query.
    @ivar observer: told of the differences.
    @type observer: L{txinferno.interfaces.IMonitorObserver}
    @ivar services: the current view, C{{name: {attr: value}}}; do not change
        it.
    @type services: L{dict}
    @ivar synced: L{True} once the view matches an answer received since the
        registry last became reachable.
    @ivar settle: seconds of the window after a reconnection (0: none).
    @type settle: L{float}
    """

    _log = Logger()

    followsChanges = True

    maxDelay = MAX_RETRY_DELAY
    """
    The longest wait, in seconds, before another find after finds that
    failed; set it on a subclass or an instance.
    """

    def __init__(
        self, attrs: AttributesLike, observer: IMonitorObserver, settle: float = SETTLE
    ) -> None:
        """
        @param attrs: the query: a mapping or a sequence of C{(attr, value)}
            pairs; a value of C{*} matches any value of an existing
            attribute; no pairs follow every service.
        @param observer: told of the services that come, change and go.
        @type observer: L{txinferno.interfaces.IMonitorObserver}
        @param settle: see L{settle}.
        @raise ValueError: for an invalid query or a negative C{settle}.
        @raise TypeError: for an observer that neither provides
            L{txinferno.interfaces.IMonitorObserver} nor has its methods.
        """
        queryLine(attrs)
        if not settle >= 0:
            raise ValueError("settle must be 0 or more seconds, not %r" % (settle,))
        if not IMonitorObserver.providedBy(observer) and not all(
            callable(getattr(observer, method, None)) for method in IMonitorObserver
        ):
            raise TypeError(
                "the monitor's observer must provide IMonitorObserver (subclass "
                "txinferno.client.observers.MonitorObserver), not %r" % (observer,)
            )
        self.settle = settle
        self.attrs = attrs
        self.observer = observer
        self.manager = None
        self.services: dict[str, dict[str, str]] = {}
        self.synced = False
        self._state = _MonitorState.stopped
        self._lastChange = None
        self._waitUntil = None
        self._quiet = None
        self._backoff = None
        self._reportedFailure = None
        self._settling = None

    def __repr__(self):
        return "<Monitor %r: %d services>" % (self.attrs, len(self.services))

    def start(self) -> None:
        """
        The registry is reachable: once the manager's services are restored
        (see L{txinferno.client.manager.RegistryManager.whenRestored}), query it and
        report the differences, then C{resynced()}.  Harmless when started
        already.
        """
        self._handle("start")

    def stop(self) -> None:
        """
        The registry is unreachable, or the monitor is being detached:
        abandon the find in flight.  The view is kept, to be compared with
        the registry when it is reachable again.
        """
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        self._handle("stop")

    def refresh(self) -> None:
        """
        The registry changed: query it now, or once more after the find in
        flight (or not at all before the first query after C{start()},
        which sees the change).
        """
        self._handle("change")

    # Events from what the monitor waits for (and, from RegistryReader,
    # restored, found and failed).

    def _settled(self):
        """
        The window after a reconnection is over: query again, so that the
        services still missing are reported removed.
        """
        self._settling = None
        self.refresh()

    def _retry(self):
        self._handle("retry")

    def _waited(self):
        self._quiet = None
        now = self.manager.clock.seconds()
        if now >= self._lastChange + QUIET or now >= self._waitUntil:
            self._handle("quiet")
        else:
            self._wait(now)

    # Actions.

    def _restore(self):
        self.synced = False
        self._reportedFailure = None
        if self.services and self.settle:
            self._settling = self.manager.clock.callLater(self.settle, self._settled)
        self._awaitRestored()

    def _answered(self, services):
        """
        A find answered: make its answer the view.
        """
        self._finding = None
        if self._backoff is not None:
            self._backoff.reset()
        self._reportedFailure = None
        self._report(services)
        if not self.synced and self._state is not _MonitorState.stopped:
            self.synced = True
            self._notify("resynced")

    def _answeredAfterChange(self, services):
        """
        A find during which a change came answered: query again after a
        quiet spell, or once the longest wait has passed.
        """
        self._answered(services)
        if self._state is _MonitorState.quieting:
            now = self.manager.clock.seconds()
            # The quiet spell counts from now: the registry may have been
            # quiet only because it was answering the find.
            self._lastChange = now
            self._waitUntil = now + max(MAX_WAIT, PACE * (now - self._findStarted))
            self._wait(now)

    def _changed(self):
        self._lastChange = self.manager.clock.seconds()

    def _wait(self, now):
        due = min(self._lastChange + QUIET, self._waitUntil)
        self._quiet = self.manager.clock.callLater(max(0, due - now), self._waited)

    def _findFailed(self, reason):
        self._finding = None
        self._reportedFailure = self.manager.taskLog.reportFailure(
            self._reportedFailure,
            "monitor {name}: find failed: {reason}; trying again",
            "{count} monitors' finds failed: {reason}; trying again",
            repr(self.attrs),
            reason.getErrorMessage(),
        )
        if self._backoff is None:
            self._backoff = Backoff(self.manager.clock, MAX_WAIT, 2, 0, self.maxDelay)
        self._backoff.schedule(self._retry)

    def _cancelQuiet(self):
        quiet, self._quiet = self._quiet, None
        # None when stopped by an observer while a find's answer is being
        # reported, before the quiet spell is waited for.
        if quiet is not None:
            quiet.cancel()

    def _cancelRetry(self):
        self._backoff.cancel()

    def _report(self, services):
        """
        Make C{services} the view and report how it differs from the last.
        """
        previous = self.services
        if self._settling is not None:
            services = dict(services)
            for name, attrs in previous.items():
                services.setdefault(name, attrs)
        self.services = services
        for name, attrs in previous.items():
            if name not in services:
                self._notify("removed", name, attrs)
        for name, attrs in services.items():
            old = previous.get(name)
            if old is None:
                self._notify("added", name, attrs)
            elif old != attrs:
                self._notify("updated", name, attrs, old)

    def _notify(self, method, *args):
        try:
            getattr(self.observer, method)(*args)
        except Exception:
            self._log.failure(
                "monitor observer {observer} failed in {method}()",
                observer=self.observer,
                method=method,
            )


_S = _MonitorState
_M = Monitor
Monitor._transitions = {
    _S.stopped: {
        "start": (_S.restoring, _M._restore),
    },
    _S.restoring: {
        "restored": (_S.finding, _M._find),
        "stop": (_S.stopped, _M._cancelRestore),
    },
    _S.idle: {
        "change": (_S.finding, _M._find),
        "stop": (_S.stopped, None),
    },
    _S.finding: {
        "found": (_S.idle, _M._answered),
        "change": (_S.findingChanged, None),
        "failed": (_S.retrying, _M._findFailed),
        "stop": (_S.stopped, _M._cancelFind),
    },
    _S.findingChanged: {
        "found": (_S.quieting, _M._answeredAfterChange),
        "failed": (_S.retrying, _M._findFailed),
        "stop": (_S.stopped, _M._cancelFind),
    },
    _S.quieting: {
        "change": (_S.quieting, _M._changed),
        "quiet": (_S.finding, _M._find),
        "stop": (_S.stopped, _M._cancelQuiet),
    },
    _S.retrying: {
        "retry": (_S.finding, _M._find),
        "stop": (_S.stopped, _M._cancelRetry),
    },
}
# For each state, the events it takes: {event: (next state, action)}; an
# event not listed is ignored (a change while restoring or retrying is seen
# by the find that follows).  The table is drawn in docs/client.md.
del _S, _M
