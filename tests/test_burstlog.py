"""
Tests for L{txinferno.client._burstlog.BurstLog}.
"""

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, capturedLogs, formatEvent

from txinferno.client._burstlog import BurstLog

ONE, MANY = "service {name} went: {reason}", "{count} services went: {reason}"


def test_onePerKindInOrder():
    """
    One event per kind (level, formats, reason), by name for one service
    and counted for several, in the order the kinds first came.
    """
    log = BurstLog(Logger(), Clock())
    for name, reason in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "x")]:
        log.add(LogLevel.warn, ONE, MANY, name, reason)
    log.add(LogLevel.info, "service {name} came", "{count} services came", "e")
    with capturedLogs() as events:
        log.flush()
    assert [formatEvent(e) for e in events] == [
        "3 services went: x",
        "service b went: y",
        "service e came",
    ]
    assert events[0]["names"] == ["a", "c", "d"]
    assert [e["log_level"] for e in events] == [LogLevel.warn, LogLevel.warn, LogLevel.info]


def test_flushSoon():
    """
    L{BurstLog.flushSoon} flushes once, on the next turn, with what came
    meanwhile; an earlier L{BurstLog.flush} takes its place.
    """
    clock = Clock()
    log = BurstLog(Logger(), clock)
    with capturedLogs() as events:
        log.add(LogLevel.warn, ONE, MANY, "a", "x")
        log.flushSoon()
        log.add(LogLevel.warn, ONE, MANY, "b", "x")
        log.flushSoon()
        assert events == [] and len(clock.getDelayedCalls()) == 1
        clock.advance(0)
        assert [formatEvent(e) for e in events] == ["2 services went: x"]
        log.add(LogLevel.warn, ONE, MANY, "c", "x")
        log.flushSoon()
        log.flush()
        assert clock.getDelayedCalls() == []
        log.flush()
    assert [formatEvent(e) for e in events] == ["2 services went: x", "service c went: x"]


def test_reportFailure():
    """
    A task's failure is reported when its reason is new for that task: the
    same reason again is not, another is, and after a success (the task
    passing L{None}) the same reason is reported again.
    """
    clock = Clock()
    log = BurstLog(Logger(), clock)
    reported = None
    with capturedLogs() as events:
        for reason in ["x", "x", "y", "y", None, "y"]:
            if reason is None:
                reported = None
                continue
            reported = log.reportFailure(reported, ONE, MANY, "a", reason)
            clock.advance(0)
    assert [formatEvent(e) for e in events] == [
        "service a went: x",
        "service a went: y",
        "service a went: y",
    ]
    assert all(e["log_level"] == LogLevel.warn for e in events)
