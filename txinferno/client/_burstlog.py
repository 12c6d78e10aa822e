"""
Log lines about services that come in bursts: thousands of services
registered, unregistered, lost or rejected together give one line each,
not thousands.
"""

from twisted.logger import LogLevel

__all__ = ["BurstLog"]


class BurstLog:
    """
    Collects events about services, each of a kind (a level, a format for
    one service and one for several, and an optional reason), and emits one
    event per kind: by name for one service, as a count with the names in
    the event's C{names} field for several.  The events are emitted when
    L{flush} is called, by the caller or, after L{flushSoon}, on the next
    turn of the clock.
    """

    def __init__(self, log, clock):
        """
        @param log: where the events go.
        @type log: L{twisted.logger.Logger}
        @param clock: runs L{flushSoon}'s flush.
        @type clock: L{twisted.internet.interfaces.IReactorTime}
        """
        self._log = log
        self._clock = clock
        self._pending = {}
        self._call = None

    def add(self, level, one, many, name, reason=None):
        """
        Record that something happened to service C{name}.

        @param level: the L{twisted.logger.LogLevel} of the event.
        @param one: the format for one service, with C{{name}}.
        @param many: the format for several, with C{{count}}.
        @param reason: a text in the event's C{reason} field, for the
            formats to show; services with different reasons are logged
            apart.
        """
        self._pending.setdefault((level, one, many, reason), []).append(name)

    def reportFailure(self, reported, one, many, name, reason):
        """
        Log a task's failure as a warning on the next turn, with the others
        of this turn, unless the same reason was the last one reported for
        this task: a task that keeps failing for one reason is logged once.

        @param reported: the reason last reported for this task, or
            L{None}.
        @param one: see L{add}.
        @param many: see L{add}.
        @param name: see L{add}.
        @param reason: why the task failed, in words.
        @return: the reason now reported, to pass as C{reported} next time
            (L{None} again once the task succeeds).
        """
        if reason != reported:
            self.add(LogLevel.warn, one, many, name, reason)
            self.flushSoon()
        return reason

    def flushSoon(self, within=0):
        """
        Flush on the next turn of the clock, or C{within} seconds from now,
        with what is added meanwhile (unless a flush is due sooner).
        """
        if self._call is None:
            self._call = self._clock.callLater(within, self.flush)

    def flush(self):
        """
        Emit an event per kind for what was added, in the order each kind
        first came.
        """
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        pending, self._pending = self._pending, {}
        for (level, one, many, reason), names in pending.items():
            fields = {} if reason is None else {"reason": reason}
            if len(names) == 1:
                self._log.emit(level, one, name=names[0], **fields)
            else:
                self._log.emit(level, many, count=len(names), names=names, **fields)
