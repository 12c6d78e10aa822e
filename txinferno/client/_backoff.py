"""
The backoff of every task that retries (a L{txinferno.client.service.ServiceTask}
after a rejection or a loss, a L{txinferno.client.monitor.Monitor} after a
failed find): Twisted's own exponential policy,
L{twisted.application.internet.backoffPolicy} (the one
L{twisted.application.internet.ClientService} uses), on an injectable clock.
"""

import random
from collections.abc import Callable

from twisted.application.internet import backoffPolicy
from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["Backoff"]


def _noJitter() -> float:
    return 0.0


class Backoff:
    """
    Calls something again after delays that grow: the first after
    C{initialDelay}, each next one C{factor} times longer, up to
    C{maxDelay}, each moved by normal jitter of C{jitter} times the delay
    (as L{twisted.internet.protocol.ReconnectingClientFactory} does), until
    L{reset}.  At most one call is pending.

    @ivar attempts: the calls scheduled since the last L{reset}.
    """

    def __init__(
        self,
        clock: IReactorTime,
        initialDelay: float,
        factor: float,
        jitter: float,
        maxDelay: float,
    ) -> None:
        """
        @param clock: schedules the calls.
        @param initialDelay: the first delay, in seconds.
        @param factor: how much each delay grows over the last.
        @param jitter: the standard deviation of the jitter, as a fraction of
            the delay; 0 for none.
        @param maxDelay: the longest delay, before jitter.
        """
        self._clock = clock
        self._policy = backoffPolicy(initialDelay, maxDelay, factor, _noJitter)
        self._jitter = jitter
        self._call: IDelayedCall | None = None
        self.attempts = 0

    @property
    def nextDelay(self) -> float:
        """
        The delay, before jitter, that the next L{schedule} waits.
        """
        return self._policy(self.attempts)

    def schedule(self, call: Callable[[], object]) -> None:
        """
        Call C{call} after the next delay, instead of any call pending.
        """
        self.cancel()
        delay = self.nextDelay
        if self._jitter:
            delay = max(0.0, random.normalvariate(delay, delay * self._jitter))
        self.attempts += 1
        self._call = self._clock.callLater(delay, self._due, call)

    def _due(self, call: Callable[[], object]) -> None:
        self._call = None
        call()

    def cancel(self) -> None:
        """
        Cancel the pending call, if any.
        """
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    def reset(self) -> None:
        """
        The next delay is C{initialDelay} again.
        """
        self.attempts = 0
