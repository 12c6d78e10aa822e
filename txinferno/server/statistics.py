"""
The figures a L{txinferno.server.protocols.RegistryServer} keeps about its
ports as it serves them: plain counters, cheap to bump on every read and
write, read by whoever publishes them (L{txinferno.web.metrics}).
"""

from bisect import bisect_left
from collections import Counter

__all__ = ["FIND_BUCKETS", "ServerStatistics"]

FIND_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""
The upper bounds, in seconds, of the buckets of L{ServerStatistics.findBuckets}
(a last bucket takes the slower ones).
"""


class ServerStatistics:
    """
    Counters of one registry server.

    @ivar bytesIn: bytes received, by port name (C{new}, C{find}, C{event}).
    @type bytesIn: L{Counter}
    @ivar bytesOut: bytes sent, by port name.
    @type bytesOut: L{Counter}
    @ivar finds: queries answered.
    @ivar findSeconds: the time spent answering them, in seconds.
    @ivar findBuckets: how many took at most each bound of L{FIND_BUCKETS}
        (not cumulative), and a last count of the slower ones.
    @type findBuckets: L{list} of L{int}
    @ivar reportsSent: version reports written to watchers.
    @ivar watchersDropped: watchers the server closed because their sockets
        did not drain (see L{txinferno.server.protocols.EventServerProtocol}).
    @ivar limitsHit: connections closed for a limit, by limit: C{line} (a
        line longer than the maximum) and C{idle} (no line in time).
    @type limitsHit: L{Counter}
    """

    def __init__(self) -> None:
        self.bytesIn: Counter[str] = Counter()
        self.bytesOut: Counter[str] = Counter()
        self.finds = 0
        self.findSeconds = 0.0
        self.findBuckets = [0] * (len(FIND_BUCKETS) + 1)
        self.reportsSent = 0
        self.watchersDropped = 0
        self.limitsHit: Counter[str] = Counter()

    def found(self, seconds):
        """
        Count one query answered in C{seconds}.

        @type seconds: L{float}
        """
        self.finds += 1
        self.findSeconds += seconds
        self.findBuckets[bisect_left(FIND_BUCKETS, seconds)] += 1

    def reported(self, count, size):
        """
        Count C{count} version reports of C{size} bytes each, sent to
        watchers (the server counts all the reports of a change at once).

        @type count: L{int}
        @type size: L{int}
        """
        if count:
            self.reportsSent += count
            self.bytesOut["event"] += count * size
