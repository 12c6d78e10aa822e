"""
The Monitor task: follow the services that match a query, reporting each
one that comes, changes or goes.
"""

from twisted.logger import Logger
from zope.interface import implementer

from txinferno.client.event import DEFAULT_MAX_DELAY
from txinferno.interfaces import IMonitorObserver, IRegistryTask
from txinferno.wire.rules import queryLine

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


@implementer(IRegistryTask)
class Monitor:
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
    failure in a row up to L{maxDelay}; the reason is logged once for
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

    def __init__(self, attrs, observer, settle: float = SETTLE):
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
        self.services = {}
        self.synced = False
        self._restoring = None
        self._finding = None
        self._findStarted = None
        self._lastChange = None
        self._waitUntil = None
        self._waiting = None
        self._again = False
        self._failures = 0
        self._reportedFailure = None
        self._settling = None

    def __repr__(self):
        return "<Monitor %r: %d services>" % (self.attrs, len(self.services))

    def start(self):
        """
        The registry is reachable: once the manager's services are restored
        (see L{txinferno.client.manager.RegistryManager.whenRestored}), query it and
        report the differences, then C{resynced()}.
        """
        self.synced = False
        self._reportedFailure = None
        if self.services and self.settle:
            self._settling = self.manager.clock.callLater(self.settle, self._settled)
        restoring = self._restoring = self.manager.whenRestored()
        restoring.addCallback(self._restored, restoring)

    def _restored(self, manager, restoring):
        if restoring is self._restoring:
            self._restoring = None
            self.refresh()

    def stop(self):
        """
        The registry is unreachable, or the monitor is being detached:
        abandon the find in flight.  The view is kept, to be compared with
        the registry when it is reachable again.
        """
        self._again = False
        self._restoring = None
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
        finding, self._finding = self._finding, None
        if finding is not None:
            finding.cancel()

    def refresh(self):
        """
        The registry changed: query it now, or once more after the find in
        flight (or not at all before the first query after C{start()},
        which sees the change).
        """
        if self._restoring is not None:
            return
        self._lastChange = self.manager.clock.seconds()
        if self._finding is not None or self._waiting is not None:
            self._again = True
            return
        self._find()

    def _find(self):
        self._again = False
        self._findStarted = self.manager.clock.seconds()
        finding = self._finding = self.manager.connection.find(self.attrs)
        finding.addCallbacks(
            self._found,
            self._failed,
            callbackArgs=(finding,),
            errbackArgs=(finding,),
        )

    def _found(self, services, finding):
        if finding is not self._finding:
            return
        self._finding = None
        self._failures = 0
        self._reportedFailure = None
        self._report(services)
        if not self.synced and self.manager is not None:
            self.synced = True
            self._notify("resynced")
        self._next()

    def _failed(self, reason, finding):
        if finding is not self._finding:
            return
        self._finding = None
        self._failures += 1
        if self.manager is None:
            return
        delay = min(self.maxDelay, MAX_WAIT * 2 ** (self._failures - 1))
        self._reportedFailure = self.manager.taskLog.reportFailure(
            self._reportedFailure,
            "monitor {name}: find failed: {reason}; trying again",
            "{count} monitors' finds failed: {reason}; trying again",
            repr(self.attrs),
            reason.getErrorMessage(),
        )
        self._waiting = self.manager.clock.callLater(delay, self._retry)

    def _settled(self):
        """
        The window after a reconnection is over: query again, so that the
        services still missing are reported removed.
        """
        self._settling = None
        self.refresh()

    def _retry(self):
        self._waiting = None
        self._find()

    def _next(self):
        """
        After a find: if a change came meanwhile, query again after a quiet
        spell, or once the longest wait has passed.
        """
        if self._again and self.manager is not None:
            now = self.manager.clock.seconds()
            # The quiet spell counts from now: the registry may have been
            # quiet only because it was answering the find.
            self._lastChange = now
            self._waitUntil = now + max(MAX_WAIT, PACE * (now - self._findStarted))
            self._wait(now)

    def _wait(self, now):
        due = min(self._lastChange + QUIET, self._waitUntil)
        self._waiting = self.manager.clock.callLater(max(0, due - now), self._waited)

    def _waited(self):
        self._waiting = None
        now = self.manager.clock.seconds()
        if now >= self._lastChange + QUIET or now >= self._waitUntil:
            self._find()
        else:
            self._wait(now)

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


