"""
The server's protocols with deterministic time and transports: coalescing of
event reports, watchers that do not read, idle timeouts, line limits and the
one-read-one-write quote rule.
"""

from support import onStringTransport
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent

from txinferno.server.connections import ArrivalTimeouts
from txinferno.server.protocols import IDLE_TIMEOUT, RegistryServer
from txinferno.server.registry import Registry


def makeServer(**kwargs):
    clock = MemoryReactorClock()
    return RegistryServer(Registry(), clock, **kwargs), clock


def test_coalescedReports():
    """
    Changes made before the reactor turns give one report of the latest
    version to every watcher; the next change gives the next report.
    """
    server, clock = makeServer()
    watchers = [onStringTransport(server.eventFactory) for _ in range(3)]
    new, _ = onStringTransport(server.newFactory)
    new.dataReceived(b"svc a 1\n")
    new.dataReceived(b"b 2\nc 3\n")
    assert [t.value() for _, t in watchers] == [b"READY\n"] * 3
    clock.advance(0)
    assert [t.value() for _, t in watchers] == [b"READY\n00000003\n"] * 3
    new.connectionLost(None)
    clock.advance(0)
    assert [t.value() for _, t in watchers] == [b"READY\n00000003\n00000004\n"] * 3
    assert clock.getDelayedCalls() == []


def test_pausedWatcherOwesOneReport():
    """
    While its transport is full a watcher is sent nothing, however many
    changes happen; when it can write again it gets the current version.
    """
    server, clock = makeServer()
    watcher, transport = onStringTransport(server.eventFactory)
    assert transport.producer is watcher and transport.streaming
    watcher.pauseProducing()
    new, _ = onStringTransport(server.newFactory)
    new.dataReceived(b"svc\n")
    for i in range(1000):
        new.dataReceived(b"a %d\n" % (i,))
        clock.advance(0)
    assert transport.value() == b"READY\n"
    watcher.resumeProducing()
    assert transport.value() == b"READY\n00001001\n"
    watcher.resumeProducing()
    assert transport.value() == b"READY\n00001001\n"


def test_newNeverWrites():
    """
    Registration, updates and rejection write nothing; a rejection closes
    the connection, is logged with Inferno's text and ignores what follows.
    """
    server, clock = makeServer()
    first, firstTransport = onStringTransport(server.newFactory)
    first.dataReceived(b"dup a 1\n")
    second, transport = onStringTransport(server.newFactory)
    with capturedLogs() as events:
        second.dataReceived(b"dup b 2\nmore words\n")
    assert transport.disconnecting and transport.value() == b""
    assert firstTransport.value() == b""
    [event] = [e for e in events if e["log_level"] == LogLevel.warn]
    assert event["error"] == "duplicate service name" and event["name"] == "dup"
    assert server.registry.answer([]) == b"dup a 1\n"


def test_oneReadOneWriteQuoteRule():
    """
    Bytes that end with a newline inside an open quote, with nothing more
    for C{quotedNewlineDelay} seconds, are applied as one write (vector 14);
    a quoted newline followed by more bytes in the same read, or in a later
    read within the delay, is part of the line.
    """
    server, clock = makeServer()
    a, _ = onStringTransport(server.newFactory)
    a.dataReceived(b"q2 v1 it''s v2 'unbalanced\n")
    b, _ = onStringTransport(server.newFactory)
    b.dataReceived(b"q3 v 'x\ny' w")
    b.dataReceived(b" 1\n")
    c, _ = onStringTransport(server.newFactory)
    c.dataReceived(b"q4 v 'x\n")
    clock.advance(server.quotedNewlineDelay / 2)
    c.dataReceived(b"y'\n")
    assert server.registry.answer([]) == b"q3 w 1 v 'x\ny'\nq4 v 'x\ny'\n"
    clock.advance(server.quotedNewlineDelay)
    assert server.registry.answer([]) == (
        b"q3 w 1 v 'x\ny'\nq4 v 'x\ny'\nq2 v2 'unbalanced\n' v1 its\n"
    )
    assert not clock.getDelayedCalls()


def test_lineLimit():
    """
    A write of exactly C{maxLineLength} bytes is accepted; one byte more,
    complete or pending, closes the connection.
    """
    server, clock = makeServer(maxLineLength=16)
    ok, okTransport = onStringTransport(server.newFactory)
    ok.dataReceived(b"s v 0123456789a\n")
    assert not okTransport.disconnecting
    ok.dataReceived(b"v 0123456789abcd")
    assert okTransport.disconnecting
    assert len(server.registry) == 0
    find, findTransport = onStringTransport(server.findFactory)
    find.dataReceived(b"v 0123456789abc\n")
    assert findTransport.disconnecting and findTransport.value() == b""


def test_idleTimeout():
    """
    With an idle timeout, a new or find connection that sends no first line
    in time is closed; one that did is not.
    """
    server, clock = makeServer(idleTimeout=5)
    silentNew, silentNewTransport = onStringTransport(server.newFactory)
    silentFind, silentFindTransport = onStringTransport(server.findFactory)
    busy, busyTransport = onStringTransport(server.newFactory)
    busy.dataReceived(b"svc\n")
    clock.advance(4.9)
    assert not silentNewTransport.disconnecting
    clock.advance(0.2)
    assert silentNewTransport.disconnecting and silentFindTransport.disconnecting
    assert not busyTransport.disconnecting
    assert clock.getDelayedCalls() == []


def test_idleTimeoutByDefault():
    """
    By default a C{new} or C{find} connection that sends nothing for
    L{IDLE_TIMEOUT} seconds is closed; one that sent its line has no timer.
    """
    server, clock = makeServer()
    assert server.idleTimeout == IDLE_TIMEOUT == 60
    _, silentNew = onStringTransport(server.newFactory)
    _, silentFind = onStringTransport(server.findFactory)
    talker, talkerTransport = onStringTransport(server.newFactory)
    talker.dataReceived(b"svc a 1\n")
    clock.advance(IDLE_TIMEOUT - 1)
    assert not silentNew.disconnecting and not silentFind.disconnecting
    clock.advance(1)
    assert silentNew.disconnecting and silentFind.disconnecting
    assert not talkerTransport.disconnecting
    assert clock.getDelayedCalls() == []


def test_findStreamsAsTheTransportAsks():
    """
    A find answer longer than the server's find buffer is written in pieces
    while the transport does not pause its producer; a reader that takes
    nothing for the idle timeout has its answer cut, which is logged; a
    further long answer waits for a free place and then comes whole.
    """
    server, clock = makeServer(findBufferSize=1000, maxFinds=1)
    for i in range(100):
        server.registry.register(None, ["svc%02d" % i, "pad", "x" * 40])
    everything = server.registry.answer([])
    first, firstTransport = onStringTransport(server.findFactory)
    first.dataReceived(b"\n")
    assert firstTransport.value() == everything and firstTransport.disconnecting
    assert firstTransport.producer is None and not server._streaming

    slow, slowTransport = onStringTransport(server.findFactory)
    slowTransport.write = lambda data, write=slowTransport.write: (
        write(data),
        slow.pauseProducing(),
    )
    slow.dataReceived(b"\n")
    assert 0 < len(slowTransport.value()) <= 250 + 50
    waiting, waitingTransport = onStringTransport(server.findFactory)
    waiting.dataReceived(b"pad *\n")
    assert waitingTransport.value() == b"" and list(server._waiting) == [waiting]
    small, smallTransport = onStringTransport(server.findFactory)
    small.dataReceived(b"pad nothing\n")
    assert smallTransport.disconnecting
    with capturedLogs() as events:
        clock.advance(IDLE_TIMEOUT)
    assert slowTransport.disconnecting
    [event] = [e for e in events if e["log_level"] == LogLevel.warn]
    assert "cut: it read nothing of its answer for 60.0 seconds" in formatEvent(event)
    slow.connectionLost(None)
    assert waitingTransport.value() == everything and not server._waiting


def test_waitingFindCountedOnce():
    """
    A streamed find that waits its turn is counted once in the statistics,
    when it is answered: one find, one time, the bytes of its answer once.
    """
    server, clock = makeServer(findBufferSize=1000, maxFinds=1)
    for i in range(100):
        server.registry.register(None, ["svc%02d" % i, "pad", "x" * 40])
    everything = server.registry.answer([])
    slow, slowTransport = onStringTransport(server.findFactory)
    slowTransport.write = lambda data, write=slowTransport.write: (
        write(data),
        slow.pauseProducing(),
    )
    slow.dataReceived(b"\n")
    waiting, waitingTransport = onStringTransport(server.findFactory)
    waiting.dataReceived(b"\n")
    assert list(server._waiting) == [waiting]
    stats = server.statistics
    assert stats.finds == 1 and stats.bytesOut["find"] == len(everything)
    slow.connectionLost(None)
    assert waitingTransport.value() == everything
    assert stats.finds == 2 and sum(stats.findBuckets) == 2
    assert stats.bytesOut["find"] == 2 * len(everything)


def test_eventReportsCounted():
    """
    The reports of a change are counted once each, with their bytes; a
    paused watcher's owed report is counted when it is sent.
    """
    server, clock = makeServer()
    watchers = [onStringTransport(server.eventFactory) for _ in range(3)]
    watchers[0][0].pauseProducing()
    new, _ = onStringTransport(server.newFactory)
    new.dataReceived(b"svc\n")
    clock.advance(0)
    stats = server.statistics
    assert stats.reportsSent == 2
    assert stats.bytesOut["event"] == 3 * len(b"READY\n") + 2 * len(b"00000001\n")
    watchers[0][0].resumeProducing()
    assert watchers[0][1].value() == b"READY\n00000001\n"
    assert stats.reportsSent == 3
    assert stats.bytesOut["event"] == 3 * len(b"READY\n00000001\n")


def test_oneTimerForAllIdleLimits():
    """
    The idle limits of many connections take one delayed call; each
    connection is closed at its own deadline, counted from its arrival.
    """
    server, clock = makeServer(idleTimeout=5)
    first = [onStringTransport(server.newFactory) for _ in range(50)]
    clock.advance(2)
    later = [onStringTransport(server.findFactory) for _ in range(50)]
    assert len(clock.getDelayedCalls()) == 1
    first[0][0].dataReceived(b"svc\n")
    clock.advance(3)
    assert [t.disconnecting for _, t in first] == [False] + [True] * 49
    assert not any(t.disconnecting for _, t in later)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(2)
    assert all(t.disconnecting for _, t in later)
    assert server.statistics.limitsHit["idle"] == 99
    assert clock.getDelayedCalls() == []


def test_arrivalTimeouts():
    """
    L{ArrivalTimeouts} calls back each arrival not done by its deadline, in
    order, with one delayed call that goes once none waits; an arrival
    added while it calls back is timed from then.
    """
    clock = Clock()
    expired = []
    timeouts = ArrivalTimeouts(clock, 10, expired.append)
    a = timeouts.add("a")
    clock.advance(1)
    timeouts.add("b")
    c = timeouts.add("c")
    timeouts.done(c)
    timeouts.done(a)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(9)
    assert expired == []
    clock.advance(1)
    assert expired == ["b"] and clock.getDelayedCalls() == []
    timeouts._expired = lambda arrival: (expired.append(arrival), timeouts.add("late"))
    timeouts.add("d")
    clock.advance(10)
    assert expired == ["b", "d"]
    clock.advance(9.5)
    assert expired == ["b", "d"]
    clock.advance(0.5)
    assert expired == ["b", "d", "late"]
