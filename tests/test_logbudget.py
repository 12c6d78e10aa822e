"""
Tests for the registry's log budgets (L{txinferno.server._logbudget}): each
change, and each warning a client can make the server repeat, a line of its
own within its budget, the others counted and summed up, nothing lost and
nothing left scheduled once quiet.
"""

import io

import pytest_twisted
from support import bounded, logLines, tapOptions
from test_loglevel import filtered
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs

from txinferno.server._logbudget import (
    LINES_BURST,
    LINES_PER_SECOND,
    SUMMARY_INTERVAL,
    LogBudget,
)
from txinferno.server.registry import Registry
from txinferno.tap import makeService
from txinferno.testing import EmbeddedRegistry, connectRaw
from txinferno.testing.embedded import exchange

NAMESPACE = "txinferno.server.registry.Registry"


def registryEvents(events, level=LogLevel.info):
    """
    @return: the events of C{level} the registry logged.
    """
    return [e for e in events if e.get("log_namespace") == NAMESPACE and e["log_level"] == level]


def summaries(events):
    """
    @return: the summary events among C{events}.
    """
    return [e for e in registryEvents(events) if "counts" in e]


def oneByOne(events):
    """
    @return: the change lines among C{events}, logged one by one.
    """
    return [e for e in registryEvents(events) if "counts" not in e]


def logged(events):
    """
    @return: how many changes C{events} tell of, one by one or summed up.
    """
    return len(oneByOne(events)) + sum(e["count"] for e in summaries(events))


def churn(registry, count, prefix="s"):
    """
    Register C{count} services, then remove them: C{2 * count} changes.
    """
    services = [registry.register(None, ["%s%d" % (prefix, i), "a", "1"]) for i in range(count)]
    for service in services:
        registry.release(service)


def test_underBudget():
    """
    Up to L{LINES_BURST} changes at once, then any number at a
    little under L{LINES_PER_SECOND}, each have a line of their
    own; nothing is summed up and no call is left with the clock.
    """
    clock = Clock()
    registry = Registry(clock)
    gap = 1.01 / LINES_PER_SECOND
    with capturedLogs() as events:
        churn(registry, LINES_BURST // 2)
        assert clock.getDelayedCalls() == []
        for i in range(300):
            clock.advance(gap)
            service = registry.register(None, ["t%d" % i])
            clock.advance(gap)
            registry.release(service)
            assert clock.getDelayedCalls() == []
    lines = logLines(oneByOne(events))
    assert len(lines) == LINES_BURST + 600 and summaries(events) == []
    assert lines[:2] == ["service s0 registered with a 1", "service s1 registered with a 1"]
    assert lines[-2:] == ["service t299 registered with ", "service t299 removed"]


def test_burstSummedUp():
    """
    A burst of 5,000 registrations and their removals at once: the
    budget's lines, then one summary a second later that reads as a
    sentence, with the count of each kind, the interval, and counts that
    add up exactly to the changes; then nothing is left scheduled.
    """
    clock = Clock()
    registry = Registry(clock)
    with capturedLogs() as events:
        churn(registry, 5000)
        assert len(oneByOne(events)) == LINES_BURST and summaries(events) == []
        assert len(clock.getDelayedCalls()) == 1
        clock.advance(SUMMARY_INTERVAL)
    assert clock.getDelayedCalls() == []
    [summary] = summaries(events)
    assert logLines([summary]) == [
        "9,980 more changes not logged one by one in the last 1.0 s: "
        "4,980 registered, 5,000 removed"
    ]
    assert summary["counts"] == {"registered": 4980, "removed": 5000}
    assert summary["count"] == 9980 and summary["interval"] == SUMMARY_INTERVAL
    assert logged(events) == 10000


def test_longBurst():
    """
    While changes come faster than the budget, a summary each second
    (and the budget's refill logged one by one between them), then one
    when they stop; every change is told of once, and once quiet nothing
    is scheduled.
    """
    clock = Clock()
    registry = Registry(clock)
    with capturedLogs() as events:
        for step in range(50):
            churn(registry, 50, "s%d-" % (step,))
            clock.advance(0.1)
        for _ in range(15):
            clock.advance(0.1)
    assert clock.getDelayedCalls() == []
    assert logged(events) == 50 * 100
    found = summaries(events)
    assert len(found) == 5
    assert all(SUMMARY_INTERVAL <= e["interval"] <= SUMMARY_INTERVAL + 0.11 for e in found)
    # The burst, then the refill of the 4.9 s from the first changes to
    # the last, give or take a line.
    lines = len(oneByOne(events))
    assert abs(lines - (LINES_BURST + 4.9 * LINES_PER_SECOND)) <= 1


def test_refilledWhenQuiet():
    """
    Once changes have been quiet long enough for the budget to refill, the
    next burst starts with its own lines again.
    """
    clock = Clock()
    registry = Registry(clock)
    churn(registry, 100)
    clock.advance(LINES_BURST / LINES_PER_SECOND)
    with capturedLogs() as events:
        churn(registry, 100)
    assert len(oneByOne(events)) == LINES_BURST


def test_clockSetBack():
    """
    A clock set back an hour neither takes lines away from the budget nor
    gives a summary a negative interval: the budget refills from the new
    time on.
    """
    clock = Clock()
    clock.advance(7200)
    registry = Registry(clock)
    with capturedLogs() as events:
        churn(registry, LINES_BURST)
        clock.rightNow -= 3600
        registry.release(registry.register(None, ["back"]))
        clock.advance(LINES_BURST / LINES_PER_SECOND)
        churn(registry, LINES_BURST // 2, "t")
        registry.flushLog()
    assert len(oneByOne(events)) == 2 * LINES_BURST
    [summary] = summaries(events)
    assert summary["count"] == LINES_BURST + 2 and summary["interval"] == 0


def test_everyKind():
    """
    Every kind of change line is counted past the budget: updates,
    services that persist, registrations refused for odd words, static
    services loaded; the kinds in the order they first came.
    """
    clock = Clock()
    registry = Registry(clock)
    with capturedLogs() as events:
        for i in range(LINES_BURST):
            registry.update(registry.register(None, ["s%d" % i]), ["k", "v"])
        kept = registry.register(None, ["p", "persist", "1"])
        registry.update(kept, ["k", "v"])
        registry.release(kept)
        try:
            registry.register(None, ["odd", "a"])
        except Exception:
            pass
        registry.loadStatic(io.StringIO("service=static1\nservice=static2\n"))
        clock.advance(SUMMARY_INTERVAL)
    assert logLines(summaries(events)) == [
        "26 more changes not logged one by one in the last 1.0 s: 11 registered,"
        " 11 updated, 1 persisting, 1 refused, 2 loaded"
    ]
    assert logged(events) == 2 * LINES_BURST + 6


def test_fullChangesAtDebug():
    """
    With C{logFullChanges}, every change still has its debug line with all
    its attributes, however many come; only the info lines are summed up.
    """
    clock = Clock()
    registry = Registry(clock, logFullChanges=True)
    with capturedLogs() as events:
        services = [registry.register(None, ["s%d" % i, "a", "x" * 200]) for i in range(1000)]
        clock.advance(SUMMARY_INTERVAL)
    debug = logLines(registryEvents(events, LogLevel.debug))
    assert debug == ["service s%d registered with a %s" % (i, "x" * 200) for i in range(1000)]
    assert logged(events) == 1000 and len(oneByOne(events)) == LINES_BURST
    del services


def test_filteredOutCountsNothing():
    """
    With the log filtered above info, no change is admitted, counted or
    summed up, nothing is scheduled, and the budget is left whole for when
    the log is at info again.
    """
    clock = Clock()
    registry = Registry(clock)
    events = []
    registry._log.observer = filtered(LogLevel.warn, events.append)[0]
    churn(registry, 1000)
    assert events == [] and clock.getDelayedCalls() == []
    registry._log.observer = filtered(LogLevel.info, events.append)[0]
    churn(registry, LINES_BURST // 2)
    assert len(oneByOne(events)) == LINES_BURST and clock.getDelayedCalls() == []


def test_noClockNoSummary():
    """
    A registry without a clock has nothing to sum up with: every change
    has its line, and nothing is scheduled anywhere.
    """
    before = len(reactor.getDelayedCalls())
    with capturedLogs() as events:
        churn(Registry(), 100)
    assert len(oneByOne(events)) == 200 and summaries(events) == []
    assert len(reactor.getDelayedCalls()) == before


def test_flush():
    """
    L{LogBudget.flush} logs the pending summary at once, with the time so
    far, and cancels its call; with nothing pending it logs nothing.
    """
    clock = Clock()
    registry = Registry(clock)
    with capturedLogs() as events:
        churn(registry, 30)
        clock.advance(0.25)
        registry.flushLog()
        assert clock.getDelayedCalls() == []
        registry.flushLog()
        clock.advance(SUMMARY_INTERVAL)
    assert logLines(summaries(events)) == [
        "40 more changes not logged one by one in the last 0.2 s: 10 registered, 30 removed"
    ]
    assert summaries(events)[0]["interval"] == 0.25


def test_budgetParameters():
    """
    The budget and the interval are the change log's parameters: a bucket
    of 2 lines refilled at 1 a second, summed up every 5 seconds; one
    change is summed up in the singular.
    """
    clock = Clock()
    with capturedLogs() as events:
        log = LogBudget(Registry._log, clock, burst=2, rate=1, interval=5)
        assert [log.admits("x") for _ in range(4)] == [True, True, False, False]
        clock.advance(1)
        assert [log.admits("y") for _ in range(2)] == [True, False]
        [call] = clock.getDelayedCalls()
        assert call.getTime() == 5
        clock.advance(4)
        clock.advance(2)
        assert [log.admits("z") for _ in range(3)] == [True, True, False]
        clock.advance(5)
    assert [e["counts"] for e in events] == [{"x": 2, "y": 1}, {"z": 1}]
    assert logLines(events)[1] == "1 more change not logged one by one in the last 5.0 s: 1 z"


@pytest_twisted.ensureDeferred
async def test_embeddedStopFlushes():
    """
    Stopping the embedded server after a burst over real connections logs
    the summary of the removals of the crash before its L{Deferred} fires,
    and leaves no call of it with the reactor: every registration and
    every removal is told of.
    """
    server = EmbeddedRegistry(reactor)
    await server.start()
    count = 200
    try:
        conns = await bounded(
            gatherResults([connectRaw(reactor, "127.0.0.1", server.newPort) for _ in range(count)])
        )
        with capturedLogs() as events:
            for i, conn in enumerate(conns):
                conn.send(b"s%d a 1\n" % (i,))
            await bounded(gatherResults([server.waitFor("s%d" % (i,)) for i in range(count)]))
        registry = server.registry
    finally:
        with capturedLogs() as stopping:
            await server.stop()
    assert len(registry) == 0
    assert logged(events + stopping) == 2 * count
    [summary] = summaries(stopping)
    assert summary["counts"]["removed"] >= count // 2
    assert not [c for c in reactor.getDelayedCalls() if "_summarise" in repr(c)]


def test_tapFlushesAtShutdown():
    """
    The regmgr server has its reactor log the pending summary once the
    shutdown has aborted the connections left (their removals counted),
    and cancel its call.
    """
    clock = MemoryReactorClock()
    options = tapOptions("--no-web", "--no-styx", "--port", "0")
    makeService(options, clock)
    with capturedLogs() as events:
        churn(options.registry, LINES_BURST)
        for trigger, args, kwargs in clock.triggers["after"]["shutdown"]:
            trigger(*args, **kwargs)
    assert logLines(summaries(events)) == [
        "20 more changes not logged one by one in the last 0.0 s: 20 removed"
    ]
    assert not [c for c in reactor.getDelayedCalls() if "_summarise" in repr(c)]


def warnings(events):
    """
    @return: the warnings among C{events} logged one by one, by whichever
        part of the server.
    """
    return [e for e in events if e["log_level"] == LogLevel.warn and "counts" not in e]


def warningSummaries(events):
    """
    @return: the summaries of warnings among C{events}.
    """
    return [e for e in registryEvents(events, LogLevel.warn) if "counts" in e]


@pytest_twisted.ensureDeferred
async def test_rejectionStormSummedUp():
    """
    300 connections to the new port at once, each refused a duplicate
    name: the budget's warnings, each as before, then the others counted
    as closed new connections and summed up at warn when the server stops;
    every rejection is told of, and the change lines are not touched.
    """
    server = EmbeddedRegistry(reactor)
    await server.start()
    count = 300
    try:
        holder = await connectRaw(reactor, "127.0.0.1", server.newPort)
        holder.send(b"dup a 1\n")
        await bounded(server.waitFor("dup"))
        with capturedLogs() as events:
            closed = await bounded(
                gatherResults(
                    [
                        exchange(reactor, "127.0.0.1", server.newPort, b"dup a 2\n")
                        for _ in range(count)
                    ]
                )
            )
    finally:
        with capturedLogs() as stopping:
            await server.stop()
    assert closed == [b""] * count
    lines = logLines(warnings(events))
    assert len(lines) == LINES_BURST
    assert all(
        line.startswith("new connection from 127.0.0.1:")
        and line.endswith(" for dup closed: duplicate service name")
        for line in lines
    )
    assert warningSummaries(events) == []
    [summary] = warningSummaries(stopping)
    assert summary["counts"] == {"new connections closed": count - LINES_BURST}
    assert logLines([summary])[0].startswith(
        "%d more warnings not logged one by one in the last " % (count - LINES_BURST,)
    )
    assert oneByOne(events) == []


@pytest_twisted.ensureDeferred
async def test_styxGarbageStormSummedUp():
    """
    100 Styx connections closed at once for a malformed message (a size
    field of 4): the budget's warnings, then one summary a second later,
    at warn, of the Styx connections closed; the server goes on serving.
    """
    server = EmbeddedRegistry(reactor)
    await server.start()
    count = 100
    try:
        with capturedLogs() as events:
            closed = await bounded(
                gatherResults(
                    [
                        exchange(reactor, "127.0.0.1", server.styxPort, b"\x04\x00\x00\x00")
                        for _ in range(count)
                    ]
                )
            )
            assert closed == [b""] * count
            [call] = [c for c in reactor.getDelayedCalls() if "_summarise" in repr(c)]
            summarised = Deferred()
            reactor.callLater(call.getTime() - reactor.seconds() + 0.01, summarised.callback, None)
            await bounded(summarised)
        service = await connectRaw(reactor, "127.0.0.1", server.newPort)
        service.send(b"after a 1\n")
        await bounded(server.waitFor("after"))
    finally:
        await server.stop()
    assert len(warnings(events)) == LINES_BURST
    assert logLines(warnings(events))[0].endswith(" closed: Styx size field 4: at least 7")
    [summary] = warningSummaries(events)
    assert summary["counts"] == {"Styx connections closed": count - LINES_BURST}


def test_warningsHaveTheirOwnBudget():
    """
    Services removed instead of persisting, past their origin's limit,
    are warnings with a budget of their own: a burst of changes that has
    spent the change lines' budget leaves the first of them logged one by
    one, the rest summed up at warn by kind.
    """
    clock = Clock()
    registry = Registry(clock, maxPersistentPerOrigin=0)
    with capturedLogs() as events:
        churn(registry, 1000)
        services = [
            registry.register(None, ["p%d" % (i,), "persist", "1"], "10.0.0.1") for i in range(50)
        ]
        for service in services:
            registry.release(service)
        clock.advance(SUMMARY_INTERVAL)
    lines = logLines(warnings(events))
    assert len(lines) == LINES_BURST
    assert lines[0] == (
        "service p0 removed instead of persisting: 10.0.0.1 already left 0 persistent services"
    )
    [summary] = warningSummaries(events)
    assert summary["counts"] == {"services removed instead of persisting": 50 - LINES_BURST}
    assert logLines([summary]) == [
        "30 more warnings not logged one by one in the last 1.0 s: "
        "30 services removed instead of persisting"
    ]
    # The 2,000 changes of the churn and the 50 registrations, each told of.
    assert logged(events) == 2050
