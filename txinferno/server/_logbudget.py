"""
The budget of a kind of log line the registry's clients make it write:
its change lines (each registration, update and removal) and its warnings
about connections (each rejected registration, connection cut or closed
for a framing error).  Each is logged as a line of its own while they come
at a rate an operator can read; past it, they are counted by kind, and one
line sums them up each L{SUMMARY_INTERVAL} while they go on, then once more
when they stop.  A burst of thousands of registrations (a registry
restarted, its clients all coming back), or of thousands of connections
rejected or cut (a client gone wrong, or hostile), gives a few dozen lines,
not thousands, and costs the server little more than counting them.

The budget is a token bucket: L{LINES_BURST} lines in a row, then
L{LINES_PER_SECOND} more a second.
"""

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

__all__ = ["LogBudget", "LINES_BURST", "LINES_PER_SECOND", "SUMMARY_INTERVAL"]

LINES_BURST = 20
"""
The most lines logged one by one in a row: the bucket's size.
"""
LINES_PER_SECOND = 10
"""
How many more lines a second may be logged one by one once the burst is
spent: the bucket's refill rate.
"""
SUMMARY_INTERVAL = 1.0
"""
Seconds from the first event not logged one by one to the line that
sums it up with those after it.
"""


class LogBudget:
    """
    Decides which lines of a kind are logged one by one, and sums up the
    others.

    The caller asks L{admits} before making a line, and makes it only when
    told to: an event is either logged by the caller or counted here, and
    every count is logged in a summary (see L{flush}).  The registry asks
    for its change lines only when something would record them (see
    L{txinferno.server._loglevel.wants}), so that a filtered log costs
    nothing here either.

    A summary is scheduled only while there are events counted: an idle
    registry leaves no call with the clock.

    @ivar log: where the summaries go (the registry's logger).
    @type log: L{Logger}
    @ivar what: what a line tells of, in the singular, as the summary
        names it: C{change} or C{warning}.
    @ivar level: the level of the summaries: that of the lines.
    @type level: L{LogLevel}
    @ivar burst: see L{LINES_BURST}.
    @ivar rate: see L{LINES_PER_SECOND}.
    @ivar interval: see L{SUMMARY_INTERVAL}.
    """

    def __init__(
        self,
        log: Logger,
        clock: IReactorTime | None = None,
        what: str = "change",
        level: LogLevel = LogLevel.info,
        burst: int = LINES_BURST,
        rate: float = LINES_PER_SECOND,
        interval: float = SUMMARY_INTERVAL,
    ) -> None:
        """
        @param clock: the clock of the budget and of the summaries; with
            L{None}, there is nothing to sum up with and every event is
            admitted.
        """
        self.log = log
        self.what = what
        self.level = level
        self.burst = burst
        self.rate = rate
        self.interval = interval
        self._clock = clock
        self._tokens = float(burst)
        self._filled = 0.0
        self._counts: dict[str, int] = {}
        self._since = 0.0
        self._call: IDelayedCall | None = None

    def admits(self, kind: str) -> bool:
        """
        An event of C{kind} is to be logged: may it have a line of its own?

        @param kind: what it was, as its summary counts it, after its
            count: a participle such as C{registered} for a change, a
            plural such as C{new connections closed} for a warning.
        @return: L{True} when the caller is to log it now; L{False} when it
            is counted instead, to be summed up within L{interval}.
        """
        clock = self._clock
        if clock is None:
            return True
        now = clock.seconds()
        tokens = self._tokens
        elapsed = now - self._filled
        # A clock set back (the system clock's can be) refills nothing,
        # rather than taking lines away.
        if tokens < self.burst and elapsed > 0:
            tokens = min(self.burst, tokens + elapsed * self.rate)
        self._filled = now
        if tokens >= 1:
            self._tokens = tokens - 1
            return True
        self._tokens = tokens
        counts = self._counts
        counts[kind] = counts.get(kind, 0) + 1
        if self._call is None:
            self._since = now
            self._call = clock.callLater(self.interval, self._summarise)
        return False

    def flush(self) -> None:
        """
        Log now the summary of the events counted since the last one, if
        any, instead of at its time (the server stopping).
        """
        if self._call is not None:
            self._call.cancel()
            self._summarise()

    def _summarise(self) -> None:
        """
        Log one line for the events counted since the last summary: how
        many in all, in how long, and how many of each kind, in the order
        the kinds first came.
        """
        assert self._clock is not None
        self._call = None
        counts, self._counts = self._counts, {}
        total = sum(counts.values())
        self.log.emit(
            self.level,
            "{count:,} more {lines} not logged one by one in the last {interval:.1f} s: {kinds}",
            count=total,
            lines=self.what if total == 1 else self.what + "s",
            interval=max(0.0, self._clock.seconds() - self._since),
            counts=counts,
            kinds=", ".join("%s %s" % (format(n, ","), kind) for kind, n in counts.items()),
        )
