"""
The Lookup task: one search that waits through outages until a deadline.
"""

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.logger import Logger
from zope.interface import implementer

from txinferno.errors import RegistryUnavailable
from txinferno.interfaces import IRegistryTask
from txinferno.wire.rules import checkPositive, queryLine

__all__ = ["Lookup"]

_OUTAGES = (
    ConnectError,
    ConnectionClosed,
    CancelledError,
    TimeoutError,
    RegistryUnavailable,
)
"""
The failures of a find that mean the registry went away: the lookup tries
again when the manager reconnects.  Any other failure ends the lookup.
"""


@implementer(IRegistryTask)
class Lookup:
    """
    Finds the services matching a query once.

    The deadline counts from the moment the lookup is attached.  A find that
    fails because the registry went away is run again when the manager
    reconnects, within the deadline.  The lookup detaches itself when it
    ends.

    @ivar attrs: the query.
    @ivar timeout: the deadline, in seconds from attach.
    @ivar deferred: a L{Deferred} that fires with C{{name: {attr: value}}},
        or fails with L{RegistryUnavailable} when the deadline passes (the
        message says why the last attempt failed), with the error of a find
        that failed for another reason (such as
        L{txinferno.errors.MalformedAnswer}), or with L{CancelledError} if
        the lookup is detached first.  Cancelling it detaches the lookup.
    """

    _log = Logger()

    followsChanges = True

    def __init__(self, attrs=(), timeout=10):
        """
        @param attrs: the query: a mapping or a sequence of C{(attr, value)}
            pairs; a value of C{*} matches any value of an existing
            attribute; no pairs find every service.
        @param timeout: seconds from attach before giving up.
        @type timeout: L{int} or L{float}
        @raise ValueError: for an invalid query, or a timeout that is not
            positive.
        @raise TypeError: for a timeout that is not a number.
        """
        queryLine(attrs)
        self.attrs = attrs
        self.timeout = checkPositive(timeout, "the lookup timeout")
        self.deferred = Deferred(self._cancel)
        self._manager = None
        self._done = False
        self._deadline = None
        self._restoring = None
        self._finding = None
        self._findStarted = None
        self._lastFailure = None

    def __repr__(self):
        return "<Lookup %r>" % (self.attrs,)

    @property
    def manager(self):
        """
        The manager this lookup is attached to, or L{None}.  Attaching arms
        the deadline; detaching before the end cancels L{deferred}.
        """
        return self._manager

    @manager.setter
    def manager(self, manager):
        self._manager = manager
        if manager is not None:
            if self._deadline is None and not self._done:
                self._deadline = manager.clock.callLater(self.timeout, self._expire)
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if not self._done:
            self.deferred.cancel()

    def start(self):
        """
        The registry is reachable: once the manager's services are restored
        (see L{txinferno.client.manager.RegistryManager.whenRestored}), run the find.
        """
        restoring = self._restoring = self._manager.whenRestored()
        restoring.addCallback(self._restored, restoring)

    def _restored(self, manager, restoring):
        if restoring is self._restoring and not self._done:
            self._restoring = None
            self._findStarted = self._manager.clock.seconds()
            finding = self._finding = self._manager.connection.find(self.attrs)
            finding.addCallbacks(
                self._found,
                self._failed,
                callbackArgs=(finding,),
                errbackArgs=(finding,),
            )

    def stop(self):
        """
        The registry is unreachable, or the lookup is being detached: abandon
        the find in flight.
        """
        self._restoring = None
        finding, self._finding = self._finding, None
        if finding is not None:
            finding.cancel()

    def refresh(self):
        """
        The registry changed: the find in flight, or the next one, sees it.
        """

    def _found(self, services, finding):
        if finding is not self._finding:
            return
        self._finding = None
        self._end()
        self.deferred.callback(services)

    def _failed(self, reason, finding):
        if finding is not self._finding:
            return
        self._finding = None
        if reason.check(*_OUTAGES):
            self._lastFailure = reason.getErrorMessage()
            self._log.info(
                "lookup {query!r} waits for the registry: {reason}",
                query=self.attrs,
                reason=self._lastFailure,
            )
            return
        self._end()
        self.deferred.errback(reason)

    def _expire(self):
        self._deadline = None
        why = self._whyUnanswered()
        self._end()
        self.deferred.errback(
            RegistryUnavailable(
                "lookup %r found no answer within %g s: %s" % (self.attrs, self.timeout, why)
            )
        )

    def _whyUnanswered(self):
        """
        @return: what kept the lookup from its answer, in words: a find in
            flight, the wait for the manager's services, the last find's
            failure, or the registry never reached.
        """
        if self._finding is not None:
            return (
                "the registry was reachable, but the find sent %.3g s ago was not "
                "answered yet" % (self._manager.clock.seconds() - self._findStarted,)
            )
        if self._restoring is not None:
            return (
                "the registry was reachable, but the services its manager "
                "registers were still being restored"
            )
        if self._lastFailure is None:
            return "the registry was not reachable"
        if self._manager.connected:
            return "the registry was reachable, but the last find failed: %s" % (self._lastFailure,)
        return "the last find failed (%s), and the registry was not reachable since" % (
            self._lastFailure,
        )

    def _cancel(self, deferred):
        """
        L{deferred} was cancelled: give up and detach; it fails with
        L{CancelledError}.
        """
        self._end()

    def _end(self):
        """
        Mark the lookup done and detach it (which disarms the deadline),
        before its result is delivered.
        """
        self._done = True
        if self._manager is not None:
            self._manager.detach(self)
