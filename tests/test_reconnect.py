"""
Tests for L{txinferno.client._reconnect}: L{ReconnectingClientFactory} over any
endpoint, and its backoff timing, on a L{MemoryReactorClock}.
"""

import math
import random

import pytest
from support import MemoryNetwork
from twisted.internet import error
from twisted.internet.interfaces import IAddress, IConnector
from twisted.internet.protocol import (
    ClientFactory,
    Protocol,
    ReconnectingClientFactory,
)
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from txinferno.client._reconnect import EndpointAddress, EndpointConnector, connectionStarter

PORT = 6703


class Network(MemoryNetwork):
    """
    A memory network with a client endpoint to a listening server.
    """

    def __init__(self):
        MemoryNetwork.__init__(self)
        self.listen(PORT)
        self.endpoint = self.clientEndpoint(PORT)

    def attempts(self):
        return len(self.reactor.tcpClients)

    def nextDelay(self):
        """
        @return: the delay of the one pending call.
        """
        [call] = self.reactor.getDelayedCalls()
        return call.getTime() - self.reactor.seconds()


class RecordingFactory(ClientFactory):
    """
    A client factory that writes down what its connector tells it.
    """

    protocol = Protocol

    def __init__(self):
        self.events = []

    def doStart(self):
        self.events.append("doStart")

    def doStop(self):
        self.events.append("doStop")

    def startedConnecting(self, connector):
        self.events.append(("startedConnecting", connector))

    def clientConnectionFailed(self, connector, reason):
        self.events.append(("failed", connector, reason.type))

    def clientConnectionLost(self, connector, reason):
        self.events.append(("lost", connector, reason.type))

    def buildProtocol(self, addr):
        self.protocolInstance = ClientFactory.buildProtocol(self, addr)
        return self.protocolInstance


@pytest.fixture
def network():
    return Network()


def test_interfaces(network):
    connector = EndpointConnector(network.endpoint, RecordingFactory())
    assert verifyObject(IConnector, connector)
    assert verifyObject(IAddress, connector.getDestination())


def test_destination(network):
    """
    The destination is the endpoint, unless one is given.
    """
    connector = EndpointConnector(network.endpoint, RecordingFactory())
    assert connector.getDestination() == EndpointAddress(network.endpoint)
    assert connector.getDestination() != EndpointAddress(object())
    marker = EndpointAddress("tcp:host=h:port=1")
    assert EndpointConnector(network.endpoint, None, marker).getDestination() is marker


def test_failedAttempt(network):
    """
    A failed attempt tells the factory C{clientConnectionFailed} with the
    connector and the reason, then stops it.
    """
    factory = RecordingFactory()
    connector = EndpointConnector(network.endpoint, factory)
    connector.connect()
    assert connector.state == "connecting"
    assert factory.events == ["doStart", ("startedConnecting", connector)]
    network.completer.failOnce()
    assert connector.state == "disconnected"
    assert factory.events[2:] == [
        ("failed", connector, error.ConnectionRefusedError),
        "doStop",
    ]


def test_connectionAndLoss(network):
    """
    The factory's protocol gets the real transport and the data; a loss
    tells the factory C{clientConnectionLost}.
    """
    factory = RecordingFactory()
    connector = EndpointConnector(network.endpoint, factory)
    connector.connect()
    pump = network.completer.succeedOnce()
    assert connector.state == "connected"
    protocol = factory.protocolInstance
    assert protocol.transport is pump.clientIO
    received = []
    protocol.dataReceived = received.append
    network.serverProtocols[0].transport.write(b"hello")
    pump.flush()
    assert received == [b"hello"]
    network.serverProtocols[0].transport.loseConnection()
    pump.flush()
    assert connector.state == "disconnected"
    assert factory.events[-2:] == [("lost", connector, error.ConnectionDone), "doStop"]


def test_disconnect(network):
    factory = RecordingFactory()
    connector = EndpointConnector(network.endpoint, factory)
    connector.connect()
    pump = network.completer.succeedOnce()
    connector.disconnect()
    pump.flush()
    assert factory.events[-2:] == [("lost", connector, error.ConnectionDone), "doStop"]


def test_stopConnecting(network):
    """
    C{stopConnecting} cancels the attempt: the factory is told it failed,
    and the endpoint's connector stops.
    """
    factory = RecordingFactory()
    connector = EndpointConnector(network.endpoint, factory)
    connector.connect()
    connector.stopConnecting()
    assert network.reactor.connectors[0].stoppedConnecting
    assert factory.events[2:] == [
        ("failed", connector, error.ConnectingCancelledError),
        "doStop",
    ]
    with pytest.raises(error.NotConnectingError):
        connector.stopConnecting()


def test_disconnectWhileConnecting(network):
    factory = RecordingFactory()
    connector = EndpointConnector(network.endpoint, factory)
    connector.connect()
    connector.disconnect()
    assert connector.state == "disconnected"
    assert ("failed", connector, error.ConnectingCancelledError) in factory.events


def test_connectTwice(network):
    connector = EndpointConnector(network.endpoint, RecordingFactory())
    connector.connect()
    with pytest.raises(RuntimeError, match="can't connect in state connecting"):
        connector.connect()


def reconnecting(network, **attributes):
    factory = ReconnectingClientFactory()
    factory.protocol = Protocol
    factory.clock = network.reactor
    factory.initialDelay = factory.delay = 0.5
    factory.maxDelay = 30
    for name, value in attributes.items():
        setattr(factory, name, value)
    connector = EndpointConnector(network.endpoint, factory)
    connector.connect()
    return factory, connector


def failAndMeasure(network, count):
    """
    Fail C{count} attempts in a row, returning the delay before each retry.
    """
    delays = []
    for _ in range(count):
        network.completer.failOnce()
        delays.append(network.nextDelay())
        network.reactor.advance(delays[-1])
        assert network.attempts() == 1
    return delays


def test_backoff(network):
    """
    Without jitter, the delays are 0.5 s times powers of e, capped at 30 s;
    a connection followed by C{resetDelay} starts again from 0.5 s.
    """
    factory, connector = reconnecting(network, jitter=0)
    delays = failAndMeasure(network, 8)
    expected = [min(0.5 * math.e**i, 30) for i in range(8)]
    assert delays == pytest.approx(expected)
    assert delays[-3:] == pytest.approx([30, 30, 30])
    pump = network.completer.succeedOnce()
    factory.resetDelay()
    network.serverProtocols[-1].transport.loseConnection()
    pump.flush()
    assert network.nextDelay() == pytest.approx(0.5)


def test_backoffWithoutReset(network):
    """
    A connection that is lost without C{resetDelay} keeps growing the
    delay.
    """
    factory, connector = reconnecting(network, jitter=0)
    failAndMeasure(network, 3)
    pump = network.completer.succeedOnce()
    connector.disconnect()
    pump.flush()
    assert network.nextDelay() == pytest.approx(0.5 * math.e**3)


def test_jitter(network):
    """
    With the default jitter the delays spread around the same curve, stay
    near the cap, and differ from the curve.
    """
    state = random.getstate()
    random.seed(20240601)
    try:
        factory, connector = reconnecting(network)
        delays = failAndMeasure(network, 12)
    finally:
        random.setstate(state)
    assert 0.5 * 0.5 < delays[0] < 0.5 * 1.5
    assert delays[3] > delays[1] > delays[0]
    assert all(d < 30 * (1 + 6 * factory.jitter) for d in delays)
    assert all(d > 30 * (1 - 6 * factory.jitter) for d in delays[-4:])
    assert delays != pytest.approx([min(0.5 * math.e**i, 30) for i in range(12)])


def test_stopTrying(network):
    """
    C{stopTrying} while retrying cancels the attempt; no retry follows.
    """
    factory, connector = reconnecting(network)
    failAndMeasure(network, 1)
    factory.stopTrying()
    assert network.reactor.connectors[0].stoppedConnecting
    assert network.reactor.getDelayedCalls() == []
    assert connector.state == "disconnected"


@pytest.mark.parametrize(
    "endpoint, host, port",
    [
        ("tcp:host=127.0.0.1:port=6701", "127.0.0.1", 6701),
        ("tcp:port=7:host=reg.example", "reg.example", 7),
        ("tcp:host=\\:\\:1:port=6701", "::1", 6701),
    ],
)
def test_connectionStarterPlainTCP(endpoint, host, port):
    """
    A plain TCP endpoint string is connected with C{connectTCP} itself, with
    no timeout (the caller times attempts); the factory is the caller's.
    """
    reactor = MemoryReactorClock()
    factory = RecordingFactory()
    connector = connectionStarter(reactor, endpoint)(factory)
    assert reactor.tcpClients == [(host, port, factory, None, None)]
    assert connector is reactor.connectors[0]


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp:host=127.0.0.1:port=6701:timeout=5",
        "tcp:127.0.0.1:6701",
        "unix:path=/tmp/registry",
    ],
)
def test_connectionStarterOtherEndpoints(endpoint):
    """
    Any other endpoint string goes through the endpoint Twisted builds from
    it, in an L{EndpointConnector}.
    """
    reactor = MemoryReactorClock()
    factory = RecordingFactory()
    connector = connectionStarter(reactor, endpoint)(factory)
    assert isinstance(connector, EndpointConnector)
    assert connector.state == "connecting"
    assert factory.events[:1] == ["doStart"]
    assert reactor.tcpClients == [] or reactor.tcpClients[0][2] is not factory


def test_connectionStarterEndpointObject(network):
    """
    An endpoint object goes through an L{EndpointConnector}, which reports
    failure to the factory.
    """
    factory = RecordingFactory()
    connector = connectionStarter(network.reactor, network.endpoint)(factory)
    assert isinstance(connector, EndpointConnector)
    network.completer.failOnce()
    assert factory.events[-2][0] == "failed"


def test_connectionStarterBadString():
    with pytest.raises(ValueError):
        connectionStarter(MemoryReactorClock(), "nonsense:x")
