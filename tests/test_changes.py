"""
Unit tests for L{txinferno.client.event}: the event port's protocol and the
change stream's reconnection, on a L{MemoryReactorClock}.
"""

import pytest
from support import SaysReady
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure
from twisted.test.iosim import ConnectionCompleter
from zope.interface.verify import verifyObject

from txinferno.client.event import EventClientFactory, EventClientProtocol
from txinferno.errors import MalformedAnswer, RegistryTimeout, RegistryUnavailable
from txinferno.interfaces import IChangeObserver, IChangeStream
from txinferno.testing.recorders import ChangeRecorder


class Probes:
    """
    A probe whose answers the test gives.
    """

    def __init__(self):
        self.calls = []

    def __call__(self):
        d = defer.Deferred()
        self.calls.append(d)
        return d


class Stream:
    """
    A change stream on a memory reactor, its observer, and its protocol on
    a L{StringTransport} when connected by L{connect}.
    """

    def __init__(self, **options):
        self.reactor = MemoryReactorClock()
        self.observer = ChangeRecorder()
        self.endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", 6703)
        self.stream = EventClientFactory(self.endpoint, self.observer, self.reactor, **options)
        self.logged = []

    def connect(self):
        self.protocol = self.stream.buildProtocol(None)
        self.protocol._log = Logger(observer=self.logged.append)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        return self.protocol

    def lose(self, reason=None):
        self.protocol.connectionLost(reason or Failure(ConnectionDone()))


def test_interfaces():
    s = Stream()
    assert verifyObject(IChangeStream, s.stream)
    assert verifyObject(IChangeObserver, s.observer)


def test_readyInPieces():
    """
    C{READY} sent one byte at a time makes the stream ready once, and
    resets the backoff delay.
    """
    s = Stream(initialDelay=0.5)
    s.stream.delay = 17
    protocol = s.connect()
    for byte in b"READY\n":
        assert s.observer.events == []
        protocol.dataReceived(bytes([byte]))
    assert s.observer.events == ["ready"]
    assert s.stream.connected
    assert s.stream.delay == 0.5


def test_versions():
    """
    Each version line reports the version; 8 digits or more.
    """
    s = Stream()
    s.connect().dataReceived(b"READY\n00000001\n0000")
    s.protocol.dataReceived(b"0012\n00000014\n123456789\n")
    assert s.observer.events == ["ready", 1, 12, 14, 123456789]


@pytest.mark.parametrize(
    "noise",
    [
        b'29 "Sh":28 "Cat":killed',
        b"0000001",
        b"READY",
        b"",
        b"00000001 ",
        b"x00000001",
        b"\xff\xfe",
    ],
)
def test_noiseIgnored(noise):
    """
    After C{READY}, a line that is not a version number is logged and
    ignored; the stream goes on.
    """
    s = Stream()
    s.connect().dataReceived(b"READY\n" + noise + b"\n00000002\n")
    assert s.observer.events == ["ready", 2]
    assert not s.transport.disconnecting
    assert [e["line"] for e in s.logged if e.get("line") is not None] == [noise]


def test_garbageBeforeReady():
    """
    Another line before C{READY}: this is not an event port; the
    connection is dropped, with an error logged, and the observer, whose
    stream was never ready, is not troubled.
    """
    s = Stream()
    s.connect().dataReceived(b"HTTP/1.1 400 Bad Request\r\n00000001\n")
    assert s.transport.disconnected
    s.lose()
    assert s.observer.events == []
    [error] = [e["error"] for e in s.logged if "error" in e]
    assert isinstance(error, MalformedAnswer)
    assert "instead of READY" in str(error)


def test_lineTooLong():
    """
    A line over the limit drops the connection; the observer is told why.
    """
    s = Stream()
    s.connect().dataReceived(b"READY\n")
    s.protocol.dataReceived(b"1" * (EventClientProtocol.MAX_LENGTH + 1))
    assert s.transport.disconnected
    s.lose()
    [ready, (lost, reason)] = s.observer.events
    assert reason.check(MalformedAnswer)
    assert "line over 1024 bytes" in str(reason.value)
    assert not s.stream.connected


def test_readyTimeout():
    s = Stream(readyTimeout=4)
    s.connect()
    s.reactor.advance(3.9)
    assert not s.transport.disconnecting
    s.reactor.advance(0.1)
    assert s.transport.disconnected
    s.lose()
    assert s.reactor.getDelayedCalls() == []
    [error] = [e["error"] for e in s.logged if "error" in e]
    assert isinstance(error, RegistryTimeout)


def test_readyCancelsTimeout():
    s = Stream(readyTimeout=4)
    s.connect().dataReceived(b"READY\n")
    assert s.reactor.getDelayedCalls() == []


def test_nothingAfterOurClose():
    """
    Once stopped, what the server sends (such as the bridge's stray status
    line) is ignored, the observer hears of the loss, and C{stop}'s
    L{Deferred} fires once the connection is closed.
    """
    s = Stream()
    s.connect().dataReceived(b"READY\n")
    stopped = s.stream.stop()
    assert s.transport.disconnecting
    s.protocol.dataReceived(b'00000003\n29 "Sh":28 "Cat":killed')
    assert not stopped.called
    s.lose()
    assert stopped.called
    assert s.observer.events[:1] == ["ready"]
    [(lost, reason)] = s.observer.events[1:]
    assert reason.check(ConnectionDone)
    assert s.reactor.getDelayedCalls() == []


def test_probeKeepsStream():
    """
    The probe runs every interval while the stream is ready, one at a
    time; a successful probe keeps it.
    """
    probes = Probes()
    s = Stream(probe=probes, probeInterval=5)
    s.connect()
    s.reactor.advance(5)
    assert probes.calls == []
    s.protocol.dataReceived(b"READY\n")
    s.reactor.advance(5)
    assert len(probes.calls) == 1
    s.reactor.advance(5)
    assert len(probes.calls) == 1
    probes.calls[0].callback({})
    s.reactor.advance(5)
    assert len(probes.calls) == 2
    assert not s.transport.disconnecting


def test_probeFailureDropsStream():
    """
    A failed probe declares the registry lost: the connection is aborted
    and the observer is told, with the probe's error.
    """
    probes = Probes()
    s = Stream(probe=probes, probeInterval=5)
    s.connect().dataReceived(b"READY\n")
    s.reactor.advance(5)
    probes.calls[0].errback(RegistryTimeout("no answer"))
    assert s.transport.disconnected
    s.lose()
    [ready, (lost, reason)] = s.observer.events
    assert reason.check(RegistryUnavailable)
    assert "liveness probe failed: no answer" in str(reason.value)
    assert s.reactor.getDelayedCalls() == []


def test_probeCancelledOnLoss():
    probes = Probes()
    s = Stream(probe=probes, probeInterval=5)
    s.connect().dataReceived(b"READY\n")
    s.reactor.advance(5)
    s.lose()
    assert probes.calls[0].called
    assert s.reactor.getDelayedCalls() == []
    assert [e for e in s.observer.events if e == "ready"] == ["ready"]


def test_probeIntervalNeedsProbe():
    with pytest.raises(ValueError, match="needs a probe"):
        Stream(probeInterval=5)


def test_reconnects():
    """
    Failed attempts are retried with backoff and do not reach the
    observer; after C{READY} the delay is reset, so a lost stream is
    reopened after the initial delay.
    """
    s = Stream(initialDelay=0.5, maxDelay=30)
    s.stream.jitter = 0
    server = Factory.forProtocol(SaysReady)
    TCP4ServerEndpoint(s.reactor, 6703).listen(server)
    completer = ConnectionCompleter(s.reactor)
    s.stream.start()
    for delay in (0.5, 0.5 * 2.718281828459045):
        completer.failOnce()
        [call] = s.reactor.getDelayedCalls()
        assert call.getTime() - s.reactor.seconds() == pytest.approx(delay)
        s.reactor.advance(delay)
    assert s.observer.events == []
    pump = completer.succeedOnce()
    assert s.observer.events == ["ready"]
    pump.serverIO.loseConnection()
    pump.flush()
    assert s.observer.events[1][0] == "lost"
    [call] = s.reactor.getDelayedCalls()
    assert call.getTime() - s.reactor.seconds() == pytest.approx(0.5)
    s.reactor.advance(0.5)
    pump = completer.succeedOnce()
    assert s.observer.events[2:] == ["ready"]
    stopped = s.stream.stop()
    assert not stopped.called
    pump.flush()
    assert stopped.called
    assert s.reactor.getDelayedCalls() == []


def test_stopWhileWaiting():
    """
    C{stop} between attempts cancels the next one.
    """
    s = Stream()
    s.stream.start()
    ConnectionCompleter(s.reactor).failOnce()
    assert len(s.reactor.getDelayedCalls()) == 1
    assert s.stream.stop().called
    assert s.reactor.getDelayedCalls() == []


def test_stopWhileConnecting():
    s = Stream()
    s.stream.start()
    assert s.stream.stop().called
    assert s.reactor.connectors[0].stoppedConnecting
    assert s.reactor.getDelayedCalls() == []


def test_retryLinesGiveTheNextTry():
    """
    Each failed attempt and each lost connection is logged as one
    sentence that says when the next attempt is due; none once stopped.
    """
    s = Stream(initialDelay=0.5, maxDelay=30)
    s.stream.jitter = 0
    s.stream._log = Logger(observer=s.logged.append)
    TCP4ServerEndpoint(s.reactor, 6703).listen(Factory.forProtocol(SaysReady))
    completer = ConnectionCompleter(s.reactor)
    s.stream.start()
    completer.failOnce()
    s.reactor.advance(0.5)
    pump = completer.succeedOnce()
    pump.serverIO.loseConnection()
    pump.flush()
    s.reactor.advance(0.5)
    pump = completer.succeedOnce()
    s.stream.stop()
    pump.flush()
    assert [formatEvent(e) for e in s.logged if "what" in e] == [
        "cannot reach the event port: Connection was refused by other side; next try in 0.5 s",
        "the event connection was lost: Connection was closed cleanly: Connection done; "
        "next try in 0.5 s",
        "the event connection was lost: Connection was closed cleanly: Connection done",
    ]
    assert [e["delay"] for e in s.logged if "what" in e] == [0.5, 0.5, None]


def test_defaultBackoffCap():
    """
    The reconnection delay is capped at a few seconds by default, with
    jitter.
    """
    s = Stream()
    assert s.stream.maxDelay == 5
    assert s.stream.jitter > 0
