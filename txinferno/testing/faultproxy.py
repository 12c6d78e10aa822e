"""
A loopback TCP proxy that injects network faults on command, for tests of
anything that talks to a registry (yours included).

Put one L{FaultProxy} in front of each port of a registry, point the client
at the proxies, and break the path between them at will::

    proxy = FaultProxy(reactor, "127.0.0.1", 6702)
    yield proxy.start()
    proxy.blackhole = True      # stop forwarding, close nothing
    proxy.resetAll()            # abort every connection through it
    yield proxy.refuse()        # new connections are refused
    yield proxy.accept()        # and accepted again, on the same port

L{RegistryFaultProxy} does the same for the three ports of a registry at
once and gives the registry description string to give the client.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

__all__ = ["FaultProxy", "RegistryFaultProxy"]


class _Direction:
    """
    One direction of a proxied connection: the bytes one end receives, on
    their way, through the proxy's faults, to the other end.
    """

    def __init__(self, proxy, pair, source, sink):
        self._proxy = proxy
        self._pair = pair
        self._source = source
        self._sink = sink
        self._queue = deque()
        self._pumping = False
        self._closing = False

    def received(self, data):
        proxy = self._proxy
        if proxy.blackhole:
            proxy.dropped += len(data)
            return
        if proxy._cutArmed:
            proxy._cutArmed = False
            newline = data.find(b"\n")
            end = len(data) if newline < 0 else newline
            self._pair.cut(self._source, self._sink, data[: (end + 1) // 2])
            return
        if proxy.oneByteChunks:
            self._queue.extend(data[i : i + 1] for i in range(len(data)))
        else:
            self._queue.append(data)
        if not self._pumping and not proxy.stalled:
            self._pump()

    @property
    def pending(self):
        """
        Whether bytes wait to be forwarded.
        """
        return bool(self._queue)

    def closeWhenDrained(self):
        """
        The source has closed: close the sink once every byte received
        before is forwarded, as TCP delivers data before its FIN.
        """
        self._closing = True
        if not self._pumping and not self._proxy.stalled:
            self._pump()

    def resume(self):
        """
        The stall is over: forward what waited, then the close if one
        waited too.
        """
        if not self._pumping and (self._queue or self._closing):
            self._pump()

    def _pump(self):
        proxy = self._proxy
        if self._pair.aborted or not self._queue:
            self._pumping = False
            if self._closing and not self._pair.aborted:
                self._close()
        elif proxy.delay or proxy.oneByteChunks:
            self._pumping = True
            proxy._reactor.callLater(proxy.delay, self._sendOne)
        else:
            while self._queue:
                self._sink.transport.write(self._queue.popleft())
            if self._closing:
                self._close()

    def _close(self):
        """
        Forward the source's close, after the proxy's C{closeDelay}.
        """
        delay = self._proxy.closeDelay
        if delay:
            self._proxy._reactor.callLater(delay, self._sink.transport.loseConnection)
        else:
            self._sink.transport.loseConnection()

    def _sendOne(self):
        if self._queue and not self._pair.aborted and not self._proxy.blackhole:
            self._sink.transport.write(self._queue.popleft())
        self._pump()


class _End(Protocol):
    """
    One end of a proxied connection: the end facing the client, or the end
    facing the target.
    """

    def __init__(self, pair):
        self.pair = pair
        self.direction = None

    def connectionMade(self):
        self.pair.endConnected(self)

    def dataReceived(self, data):
        self.direction.received(data)

    def connectionLost(self, reason):
        self.pair.endLost(self)


class _Pair:
    """
    A proxied connection: the end facing the client and the end facing the
    target.  The client's end is not read until the target's end is
    connected.
    """

    def __init__(self, proxy):
        self.proxy = proxy
        self.client = _End(self)
        self.server = None
        self.closed = False
        self.aborted = False
        self._ends = set()
        self._waiting = []

    def endConnected(self, end):
        self._ends.add(end)
        if end is self.client:
            end.transport.pauseProducing()
            endpoint = TCP4ClientEndpoint(
                self.proxy._reactor, self.proxy._targetHost, self.proxy._targetPort
            )
            d = endpoint.connect(Factory.forProtocol(lambda: _End(self)))
            d.addErrback(lambda _: self.abort())
            return
        self.server = end
        if self.closed:
            end.transport.abortConnection()
            return
        self.client.direction = _Direction(self.proxy, self, self.client, end)
        end.direction = _Direction(self.proxy, self, end, self.client)
        self.client.transport.resumeProducing()

    def cut(self, source, sink, data):
        """
        Send C{data}, then close C{sink} once it is written, and abort
        C{source}.
        """
        self.closed = self.aborted = True
        sink.transport.write(data)
        sink.transport.loseConnection()
        source.transport.abortConnection()

    def abort(self):
        self.closed = self.aborted = True
        for end in list(self._ends):
            end.transport.abortConnection()

    def endLost(self, end):
        self.closed = True
        self._ends.discard(end)
        if end is self.server and self.proxy.holdCloses and not self.aborted:
            # The client's end stays open until the client closes it.
            return
        for other in self._ends:
            waits = end.direction is not None and (end.direction.pending or self.proxy.stalled)
            if waits and not self.aborted:
                end.direction.closeWhenDrained()
            else:
                other.transport.loseConnection()
        if not self._ends:
            self.proxy._pairs.discard(self)
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def whenLost(self):
        """
        @return: a L{Deferred} that fires once both ends are closed.
        """
        if not self._ends:
            return succeed(None)
        d = Deferred()
        self._waiting.append(d)
        return d


class _ClientSideFactory(Factory):
    def __init__(self, proxy):
        self.proxy = proxy

    def buildProtocol(self, addr):
        pair = _Pair(self.proxy)
        self.proxy._pairs.add(pair)
        return pair.client


class FaultProxy:
    """
    A TCP proxy on a loopback address in front of one target port, with
    faults switched on and off by its attributes and methods.

    @ivar blackhole: while L{True}, bytes are dropped in both directions and
        no connection is closed (the half-open path of a vanished host).
    @ivar dropped: how many bytes the black hole has swallowed.
    @ivar delay: seconds to hold each chunk before it is forwarded.
    @ivar oneByteChunks: while L{True}, every chunk is forwarded one byte at
        a time, each byte in a write of its own on a later reactor turn.
    @ivar stalled: while L{True}, bytes and closes are held in both
        directions, and forwarded in order by L{resume}: the path to a
        registry process that is stopped (C{SIGSTOP}) while its kernel
        keeps accepting and queueing.
    @ivar closeDelay: seconds by which a close is forwarded after the bytes
        before it (a registry working through its queue after a stall reads
        a connection's line, then, a while later, its close).
    @ivar holdCloses: while L{True}, a connection the target closes stays
        open on the client's side until the client closes it, as the real
        registry's bridge holds back the close of a duplicate registration
        made at the same moment as another (spec section 4).
    @ivar port: the port the proxy listens on (set by L{start}).
    """

    _log = Logger()

    def __init__(
        self, reactor: Any, targetHost: str, targetPort: int, host: str = "127.0.0.1"
    ) -> None:
        self._reactor = reactor
        self._targetHost = targetHost
        self._targetPort = targetPort
        self.host = host
        self.port = 0
        self.blackhole = False
        self.dropped = 0
        self.delay: float = 0
        self.oneByteChunks = False
        self.holdCloses = False
        self.stalled = False
        self.closeDelay: float = 0
        self._cutArmed = False
        self._listening: IListeningPort | None = None
        self._pairs: set[_Pair] = set()

    @property
    def connections(self) -> int:
        """
        The number of connections open through the proxy.
        """
        return len(self._pairs)

    def start(self) -> Deferred[FaultProxy]:
        """
        Listen (on a free port the first time, on the same port after).

        @return: a L{Deferred} that fires with this proxy once listening.
        """
        endpoint = TCP4ServerEndpoint(self._reactor, self.port, interface=self.host)
        d = endpoint.listen(_ClientSideFactory(self))

        def listening(port):
            self._listening = port
            self.port = port.getHost().port
            return self

        return d.addCallback(listening)

    def accept(self) -> Deferred[FaultProxy]:
        """
        Accept new connections again after L{refuse}.

        @return: a L{Deferred} that fires once listening.
        """
        if self._listening is not None:
            return succeed(self)
        return self.start()

    def refuse(self) -> Deferred[None]:
        """
        Stop listening, so that new connections are refused; open ones stay.

        @return: a L{Deferred} that fires once the port is closed.
        """
        port, self._listening = self._listening, None
        if port is None:
            return succeed(None)
        # A TCP port's stopListening returns a Deferred; IListeningPort allows None.
        return port.stopListening()  # type: ignore[return-value]

    def resetAll(self) -> Deferred[list[None]]:
        """
        Abort every connection through the proxy, on both sides.

        @return: a L{Deferred} that fires once they are all closed.
        """
        pairs = list(self._pairs)
        for pair in pairs:
            pair.abort()
        return gatherResults([pair.whenLost() for pair in pairs])

    def stall(self) -> None:
        """
        Hold every byte and close from now on (see L{stalled}).
        """
        self.stalled = True

    def resume(self) -> None:
        """
        End a L{stall}: forward what waited, in order, and go on forwarding.
        """
        self.stalled = False
        for pair in list(self._pairs):
            for end in (pair.client, pair.server):
                if end is not None and end.direction is not None:
                    end.direction.resume()

    def cutNextChunk(self) -> None:
        """
        Cut the next chunk in either direction in the middle of its first
        line: forward the first half of that line, then close both ends.
        """
        self._cutArmed = True

    def stop(self) -> Deferred[list[Any]]:
        """
        Stop listening and abort every connection.

        @return: a L{Deferred} that fires once all is closed.
        """
        return gatherResults([self.refuse(), self.resetAll()])


class RegistryFaultProxy:
    """
    Three L{FaultProxy} objects, one in front of each port of a registry.

    @ivar new: the proxy in front of the new port.
    @ivar find: the proxy in front of the find port.
    @ivar event: the proxy in front of the event port.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        newPort: int,
        findPort: int,
        eventPort: int,
        listenHost: str = "127.0.0.1",
    ) -> None:
        self.new = FaultProxy(reactor, host, newPort, listenHost)
        self.find = FaultProxy(reactor, host, findPort, listenHost)
        self.event = FaultProxy(reactor, host, eventPort, listenHost)
        self.proxies = (self.new, self.find, self.event)

    @property
    def description(self) -> str:
        """
        The registry description string that reaches the registry through
        the proxies.
        """
        return "tcp:host=%s:new=%d:find=%d:event=%d" % (
            self.new.host,
            self.new.port,
            self.find.port,
            self.event.port,
        )

    def _each(self, method: str) -> Deferred[list[Any]]:
        return gatherResults([getattr(p, method)() for p in self.proxies])

    def start(self) -> Deferred[RegistryFaultProxy]:
        """
        Start the three proxies.

        @return: a L{Deferred} that fires with this object once all listen.
        """
        return self._each("start").addCallback(lambda _: self)

    def refuse(self) -> Deferred[list[Any]]:
        """
        Refuse new connections on all three ports.
        """
        return self._each("refuse")

    def accept(self) -> Deferred[list[Any]]:
        """
        Accept new connections again on all three ports.
        """
        return self._each("accept")

    def resetAll(self) -> Deferred[list[Any]]:
        """
        Abort every connection on all three ports.
        """
        return self._each("resetAll")

    def stop(self) -> Deferred[list[Any]]:
        """
        Stop all three proxies.
        """
        return self._each("stop")

    def setBlackhole(self, on: bool) -> None:
        """
        Switch the black hole on or off on all three ports.
        """
        for proxy in self.proxies:
            proxy.blackhole = on

    def stall(self) -> None:
        """
        Stall all three ports (see L{FaultProxy.stall}).
        """
        for proxy in self.proxies:
            proxy.stall()

    def resume(self) -> None:
        """
        Resume all three ports (see L{FaultProxy.resume}).
        """
        for proxy in self.proxies:
            proxy.resume()
