"""
The Lookup task: one search that waits through outages until a deadline.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from zope.interface import implementer

from txinferno.client._reading import RegistryReader
from txinferno.errors import RegistryUnavailable
from txinferno.interfaces import IRegistryTask
from txinferno.wire.rules import AttributesLike, Services, checkPositive, queryLine

if TYPE_CHECKING:
    from txinferno.client.manager import RegistryManager

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


class _LookupState(Enum):
    """
    The states of a L{Lookup}.
    """

    waiting = "waiting for the registry to be reachable"
    restoring = "waiting for the manager to restore its services"
    finding = "a find in flight"
    done = "answered, failed, expired, cancelled or detached"


@implementer(IRegistryTask)
class Lookup(RegistryReader):
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

    def __init__(self, attrs: AttributesLike = (), timeout: float = 10) -> None:
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
        self.deferred: Deferred[Services] = Deferred(self._cancelled)
        self._state = _LookupState.waiting
        self._manager: RegistryManager | None = None
        self._deadline: IDelayedCall | None = None
        self._lastFailure: str | None = None

    def __repr__(self):
        return "<Lookup %r>" % (self.attrs,)

    @property
    def manager(self) -> RegistryManager | None:
        """
        The manager this lookup is attached to, or L{None}.  Attaching arms
        the deadline; detaching before the end cancels L{deferred}.
        """
        return self._manager

    @manager.setter
    def manager(self, manager: RegistryManager | None) -> None:
        self._manager = manager
        if manager is None:
            self._handle("detach")
        elif self._deadline is None and self._state is not _LookupState.done:
            self._deadline = manager.clock.callLater(self.timeout, self._handle, "expire")

    def start(self) -> None:
        """
        The registry is reachable: once the manager's services are restored
        (see L{txinferno.client.manager.RegistryManager.whenRestored}), run the find.
        """
        self._handle("start")

    def stop(self) -> None:
        """
        The registry is unreachable, or the lookup is being detached: abandon
        the find in flight.
        """
        self._handle("stop")

    def refresh(self) -> None:
        """
        The registry changed: the find in flight, or the next one, sees it.
        """

    # Events from what the lookup waits for (and, from RegistryReader,
    # restored and found).

    def _failed(self, reason):
        self._handle("outage" if reason.check(*_OUTAGES) else "failed", reason)

    def _cancelled(self, deferred):
        """
        L{deferred} was cancelled: give up and detach; it fails with
        L{CancelledError}.
        """
        self._handle("cancel")

    # Actions.

    def _waitAgain(self, reason):
        """
        The find failed because the registry went away: wait for it.
        """
        self._finding = None
        self._lastFailure = reason.getErrorMessage()
        self._log.info(
            "lookup {query!r} waits for the registry: {reason}",
            query=self.attrs,
            reason=self._lastFailure,
        )

    def _answer(self, services):
        self._finding = None
        self._end()
        self.deferred.callback(services)

    def _fail(self, reason):
        self._finding = None
        self._end()
        self.deferred.errback(reason)

    def _expire(self, why):
        self._deadline = None
        self._end()
        self.deferred.errback(
            RegistryUnavailable(
                "lookup %r found no answer within %g s: %s" % (self.attrs, self.timeout, why)
            )
        )

    def _expireWaiting(self):
        if self._lastFailure is None:
            why = "the registry was not reachable"
        elif self._manager.connected:
            why = "the registry was reachable, but the last find failed: %s" % (self._lastFailure,)
        else:
            why = "the last find failed (%s), and the registry was not reachable since" % (
                self._lastFailure,
            )
        self._expire(why)

    def _expireRestoring(self):
        self._cancelRestore()
        self._expire(
            "the registry was reachable, but the services its manager "
            "registers were still being restored"
        )

    def _expireFinding(self):
        why = "the registry was reachable, but the find sent %.3g s ago was not answered yet" % (
            self._manager.clock.seconds() - self._findStarted,
        )
        self._cancelFind()
        self._expire(why)

    def _abandon(self):
        """
        Detached, or L{deferred} cancelled, before the end: release what is
        in flight, disarm the deadline, and fail L{deferred} with
        L{CancelledError} (unless it is the one cancelled).
        """
        self._cancelRestore()
        self._cancelFind()
        self._end()
        self.deferred.cancel()

    def _end(self):
        """
        Disarm the deadline and detach (the lookup is done), before its
        result is delivered.
        """
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        if self._manager is not None:
            self._manager.detach(self)

    _transitions = {
        _LookupState.waiting: {
            "start": (_LookupState.restoring, RegistryReader._awaitRestored),
            "expire": (_LookupState.done, _expireWaiting),
            "detach": (_LookupState.done, _abandon),
            "cancel": (_LookupState.done, _abandon),
        },
        _LookupState.restoring: {
            "restored": (_LookupState.finding, RegistryReader._find),
            "stop": (_LookupState.waiting, RegistryReader._cancelRestore),
            "expire": (_LookupState.done, _expireRestoring),
            "detach": (_LookupState.done, _abandon),
            "cancel": (_LookupState.done, _abandon),
        },
        _LookupState.finding: {
            "found": (_LookupState.done, _answer),
            "failed": (_LookupState.done, _fail),
            "outage": (_LookupState.waiting, _waitAgain),
            "stop": (_LookupState.waiting, RegistryReader._cancelFind),
            "expire": (_LookupState.done, _expireFinding),
            "detach": (_LookupState.done, _abandon),
            "cancel": (_LookupState.done, _abandon),
        },
        _LookupState.done: {},
    }
