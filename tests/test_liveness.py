"""
The liveness probe of L{txinferno.client.tcp.TCPRegistryConnection}, on by
default (issue 14, item 4): a registry that keeps its sockets open and
stops answering (a stopped process, whose kernel still answers TCP
keepalive) is declared lost within 30 s, on a L{MemoryReactorClock}.
"""

import pytest
from support import NeverAnswers, SaysReady
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.test.iosim import ConnectionCompleter
from zope.interface import implementer

from txinferno.client.tcp import DEFAULT_PROBE_INTERVAL, TCPRegistryConnection
from txinferno.errors import RegistryUnavailable
from txinferno.interfaces import IChangeObserver


@implementer(IChangeObserver)
class Observer:
    def __init__(self, clock):
        self.clock = clock
        self.events = []
        self.lost = []

    def streamReady(self):
        self.events.append("ready")

    def registryChanged(self, version):
        self.events.append(version)

    def streamLost(self, reason):
        self.events.append("lost")
        self.lost.append((self.clock.seconds(), reason))


def silentRegistry(**options):
    """
    A connection to a registry on a memory reactor whose event port says
    C{READY} and whose find port accepts and never answers, and its
    stream, ready.
    """
    reactor = MemoryReactorClock()
    TCP4ServerEndpoint(reactor, 6702).listen(Factory.forProtocol(NeverAnswers))
    TCP4ServerEndpoint(reactor, 6703).listen(Factory.forProtocol(SaysReady))
    conn = TCPRegistryConnection(
        reactor,
        "tcp:host=127.0.0.1:port=6701",
        "tcp:host=127.0.0.1:port=6702",
        "tcp:host=127.0.0.1:port=6703",
        **options,
    )
    observer = Observer(reactor)
    stream = conn.watch(observer)
    completer = ConnectionCompleter(reactor)
    pumps = [completer.succeedOnce()]
    pumps[0].flush()
    assert observer.events == ["ready"]
    return reactor, completer, pumps, observer, stream


def advanceTo(reactor, completer, pumps, until):
    """
    Let the clock run to C{until} seconds, a second at a time, completing
    every connection asked for and pumping every one.
    """
    while reactor.seconds() < until:
        reactor.advance(1)
        pump = completer.succeedOnce()
        if pump is not None:
            pumps.append(pump)
        for pump in pumps:
            pump.flush()


def test_silentRegistryDetectedByDefault():
    """
    With no option given, a registry whose find port stops answering is
    declared lost within 30 s, the reason naming the probe.
    """
    reactor, completer, pumps, observer, stream = silentRegistry()
    advanceTo(reactor, completer, pumps, 30)
    [(when, reason)] = observer.lost
    assert when <= 30
    assert reason.check(RegistryUnavailable)
    assert "liveness probe failed" in str(reason.value)
    stream.stop()


def test_probeTunable():
    """
    The interval and the timeout are options: detection then comes after
    their sum, not before.
    """
    reactor, completer, pumps, observer, stream = silentRegistry(probeInterval=2, probeTimeout=1)
    advanceTo(reactor, completer, pumps, 2)
    assert observer.events == ["ready"]
    advanceTo(reactor, completer, pumps, 3)
    assert [when for when, reason in observer.lost] == [3]
    stream.stop()


def test_probeSwitchedOff():
    """
    C{probeInterval=None} switches the probe off: a silent registry stays
    connected.
    """
    reactor, completer, pumps, observer, stream = silentRegistry(probeInterval=None)
    advanceTo(reactor, completer, pumps, 120)
    assert observer.events == ["ready"]
    assert stream.connected
    stream.stop()


def test_defaultDetectionWithin30Seconds():
    assert DEFAULT_PROBE_INTERVAL + 10 <= 30


@pytest.mark.parametrize(
    "value, error, message",
    [(v, ValueError, "probeInterval must be positive") for v in (0, -1, float("nan"), float("inf"))]
    + [(v, TypeError, "probeInterval must be a number") for v in ("5", True, object())],
)
def test_badProbeInterval(value, error, message):
    with pytest.raises(error, match=message):
        TCPRegistryConnection(
            MemoryReactorClock(),
            "tcp:host=a:port=1",
            "tcp:host=a:port=2",
            "tcp:host=a:port=3",
            probeInterval=value,
        )
