"""
An L{IConnector} over any client endpoint, so that
L{twisted.internet.protocol.ReconnectingClientFactory} (which needs a
connector whose C{connect()} can be called again) keeps a connection open
through a TCP, TLS, UNIX or any other L{IStreamClientEndpoint}; and
L{connectionStarter}, which starts connections as connectors, directly
with C{connectTCP} for a plain TCP endpoint string.
"""

from twisted.internet import error
from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import IAddress, IConnector
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from txinferno.wire.description import tcpAddress

__all__ = ["EndpointAddress", "EndpointConnector", "checkPositive", "connectionStarter"]


@implementer(IAddress)
class EndpointAddress:
    """
    The destination of an L{EndpointConnector}: the endpoint itself, since
    an endpoint has no address of its own until it connects.

    @ivar endpoint: the endpoint.
    """

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def __eq__(self, other):
        if not isinstance(other, EndpointAddress):
            return NotImplemented
        return self.endpoint == other.endpoint

    def __hash__(self):
        return hash(self.endpoint)

    def __repr__(self):
        return "EndpointAddress(%r)" % (self.endpoint,)


class _NotifyingProtocol(Protocol):
    """
    Wraps the protocol a connector's factory builds, to tell the connector
    when the connection ends.  The wrapped protocol sees the real
    transport.
    """

    def __init__(self, connector, wrapped):
        self._connector = connector
        self.wrapped = wrapped

    def makeConnection(self, transport):
        Protocol.makeConnection(self, transport)
        self.wrapped.makeConnection(transport)

    def dataReceived(self, data):
        self.wrapped.dataReceived(data)

    def connectionLost(self, reason):
        self.wrapped.connectionLost(reason)
        self._connector._connectionLost(reason)


class _ConnectorFactory(Factory):
    """
    What a connector hands its endpoint: builds the user factory's
    protocol, wrapped.
    """

    noisy = False

    def __init__(self, connector):
        self._connector = connector

    def buildProtocol(self, addr):
        wrapped = self._connector.factory.buildProtocol(addr)
        if wrapped is None:
            return None
        return _NotifyingProtocol(self._connector, wrapped)


@implementer(IConnector)
class EndpointConnector:
    """
    Connect a L{ClientFactory} through an endpoint, telling it what
    L{IReactorTCP.connectTCP}'s connectors tell theirs: C{startedConnecting},
    C{clientConnectionFailed} and C{clientConnectionLost}, with this
    connector, so that a L{ReconnectingClientFactory} can call
    L{connect} again.  Like Twisted's connectors it calls the factory's
    C{doStart} before an attempt and C{doStop} when an attempt ends without
    the factory asking for another.

    Half-close (L{IHalfCloseableProtocol}) is not passed on to the
    factory's protocols.

    @ivar factory: the client factory.
    @ivar endpoint: the endpoint connected through.
    @ivar state: C{"disconnected"}, C{"connecting"} or C{"connected"}.
    """

    _log = Logger()

    def __init__(self, endpoint, factory, destination=None):
        """
        @param endpoint: how to connect.
        @type endpoint: L{IStreamClientEndpoint}
        @param factory: told of every attempt and loss.
        @type factory: L{twisted.internet.protocol.ClientFactory}
        @param destination: what L{getDestination} returns; by default an
            L{EndpointAddress} of C{endpoint}.
        @type destination: L{IAddress}
        """
        self.endpoint = endpoint
        self.factory = factory
        self._destination = destination or EndpointAddress(endpoint)
        self.state = "disconnected"
        self._factoryStarted = False
        self._attempt = None
        self._protocol = None

    def __repr__(self):
        return "<EndpointConnector to %r, %s>" % (self._destination, self.state)

    def connect(self):
        """
        Start a connection attempt.

        @raise RuntimeError: when already connecting or connected.
        """
        if self.state != "disconnected":
            raise RuntimeError("can't connect in state %s" % (self.state,))
        self.state = "connecting"
        if not self._factoryStarted:
            self.factory.doStart()
            self._factoryStarted = True
        self.factory.startedConnecting(self)
        attempt = self._attempt = self.endpoint.connect(_ConnectorFactory(self))
        attempt.addCallbacks(self._connected, self._failed)

    def _connected(self, protocol):
        self._attempt = None
        self.state = "connected"
        self._protocol = protocol

    def _failed(self, reason):
        self._attempt = None
        self.state = "disconnected"
        self.factory.clientConnectionFailed(self, reason)
        self._stopFactoryUnlessConnecting()

    def _connectionLost(self, reason):
        self._protocol = None
        self.state = "disconnected"
        self.factory.clientConnectionLost(self, reason)
        self._stopFactoryUnlessConnecting()

    def _stopFactoryUnlessConnecting(self):
        if self.state == "disconnected" and self._factoryStarted:
            self._factoryStarted = False
            self.factory.doStop()

    def stopConnecting(self):
        """
        Cancel the attempt in progress; the factory's
        C{clientConnectionFailed} is told, with the endpoint's cancellation
        error.

        @raise twisted.internet.error.NotConnectingError: when not
            connecting.
        """
        if self.state != "connecting":
            raise error.NotConnectingError("not connecting, but %s" % (self.state,))
        self._attempt.cancel()

    def disconnect(self):
        """
        Cancel the attempt in progress, or close the connection.
        """
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected":
            self._protocol.transport.loseConnection()

    def getDestination(self):
        """
        @return: the destination given to the constructor, or an
            L{EndpointAddress} of the endpoint.
        @rtype: L{IAddress}
        """
        return self._destination


def connectionStarter(reactor, endpoint):
    """
    How to start connections to one destination, each reported to its
    L{ClientFactory} as C{connectTCP} reports them (C{buildProtocol},
    C{clientConnectionFailed}, C{clientConnectionLost}).

    A plain TCP endpoint string (C{tcp:host=H:port=P}, see
    L{txinferno.wire.description.tcpAddress}) is connected with
    C{reactor.connectTCP} itself, without an endpoint's wrapping protocol,
    L{Deferred} or timeout timer: the cheapest way to make many short
    connections.  Anything else goes through an L{EndpointConnector}.
    Neither has a timeout: the caller times its attempts, and stops one
    with the connector's C{stopConnecting()}.

    @param reactor: an L{IReactorTCP}; it also builds an endpoint from a
        string.
    @param endpoint: an L{IStreamClientEndpoint}, or a client endpoint
        string for L{clientFromString}.
    @return: a callable taking a L{ClientFactory}, starting a connection
        for it and returning its L{IConnector}.
    @raise ValueError: for a bad endpoint string.
    """
    address = tcpAddress(endpoint) if isinstance(endpoint, str) else None
    if address is not None:
        host, port = address

        def connectTCP(factory):
            return reactor.connectTCP(host, port, factory, timeout=None)

        return connectTCP
    if isinstance(endpoint, str):
        endpoint = clientFromString(reactor, endpoint)

    def connectThroughEndpoint(factory):
        connector = EndpointConnector(endpoint, factory)
        connector.connect()
        return connector

    return connectThroughEndpoint


def checkPositive(**options):
    """
    Check a connection plugin's timeouts, delays, sizes and intervals.

    @param options: each option's value, or L{None} when not given.
    @raise ValueError: for a value given that is not positive.
    """
    for option, value in options.items():
        if value is not None and not value > 0:
            raise ValueError("%s must be positive, not %r" % (option, value))
