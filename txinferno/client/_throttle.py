"""
Connection attempts to the new port, a few at a time and each with a
deadline: a burst of registrations reaches the registry as a steady stream
rather than as one flood of connections its listen queue may not hold, and
a registration waiting for its turn or its connection is given up on time.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

__all__ = ["ConnectionThrottle", "Turn"]


class Turn:
    """
    One connection attempt's place in a L{ConnectionThrottle}: waiting for
    its turn, then in progress, until L{end}.
    """

    __slots__ = ("_throttle", "_expired", "_acquired")

    def __init__(self, throttle: ConnectionThrottle, expired: Callable[[], object]) -> None:
        self._throttle = throttle
        self._expired = expired
        self._acquired: Deferred[DeferredSemaphore] = throttle._semaphore.acquire()

    def whenStarted(self, started: Callable[[DeferredSemaphore], object]) -> None:
        """
        Call C{started} when the turn comes: at once when fewer than the
        limit are in progress; never for a turn ended while it waits.

        @param started: takes the throttle's L{DeferredSemaphore}.
        """
        self._acquired.addCallbacks(started, _ignoreCancel)

    def end(self) -> None:
        """
        The attempt succeeded, failed or was given up: leave the throttle
        (the next attempt waiting takes this one's place).  Ending a turn
        twice, or after its deadline, does nothing.
        """
        self._throttle._end(self)


class ConnectionThrottle:
    """
    Lets at most C{limit} connection attempts run at once, in the order
    they are asked for, through a L{DeferredSemaphore}; each has a deadline
    C{timeout} seconds after it is asked for, its wait for a turn included.
    One timer serves every deadline: all have the same timeout and come in
    order, so the oldest is always the next due.
    """

    def __init__(self, clock: IReactorTime, limit: int, timeout: float) -> None:
        """
        @param clock: times the deadlines.
        @param limit: the most attempts in progress at once.
        @param timeout: seconds from asking for a turn to the attempt's end.
        """
        self._clock = clock
        self._timeout = timeout
        self._semaphore = DeferredSemaphore(limit)
        self._deadlines: dict[Turn, float] = {}
        self._timer: IDelayedCall | None = None

    def ask(self, expired: Callable[[], object]) -> Turn:
        """
        Ask for a turn.

        @param expired: called, once the turn is ended, when it has not
            ended within the timeout.
        @return: the turn: L{Turn.whenStarted} says what to do when it
            comes; L{Turn.end} it when the attempt ends.
        """
        turn = Turn(self, expired)
        self._deadlines[turn] = self._clock.seconds() + self._timeout
        if self._timer is None:
            self._timer = self._clock.callLater(self._timeout, self._expire)
        return turn

    def busy(self) -> bool:
        """
        @return: whether any attempt is waiting for its turn or in progress.
        """
        return bool(self._deadlines)

    def _end(self, turn: Turn) -> None:
        if self._deadlines.pop(turn, None) is None:
            return
        if turn._acquired.called:
            self._semaphore.release()
        else:
            turn._acquired.cancel()
        if not self._deadlines and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        """
        End the turns whose deadline has passed, then tell each: the turns
        still waiting are taken out of the queue before any place is given
        up, so that none of them takes a place another leaves.
        """
        self._timer = None
        now = self._clock.seconds()
        expired = []
        for turn, deadline in self._deadlines.items():
            if deadline > now:
                self._timer = self._clock.callLater(deadline - now, self._expire)
                break
            expired.append(turn)
        expired.sort(key=lambda turn: turn._acquired.called)
        for turn in expired:
            self._end(turn)
        for turn in expired:
            turn._expired()


def _ignoreCancel(reason: Failure) -> None:
    """
    A turn ended while it waited: its wait is cancelled, and nothing is
    started.
    """
    reason.trap(CancelledError)
