"""
The registry's three TCP ports, served by Twisted from one
L{txinferno.server.registry.Registry}: C{new} (register, update, unregister),
C{find} (one query, one answer) and C{event} (change notification).

The protocols behave as Inferno's own TCP bridges do, with two deliberate
differences: lines are assembled whole whatever the TCP segmentation (the
real bridge turns each read into one write), and every connection has an
explicit maximum line length.  For compatibility, bytes that a single read
leaves ending with a newline inside an open quote are applied as one write,
as the real bridge would (C{q2 v1 it''s v2 'unbalanced\\n} registers C{q2}
with C{v2} set to C{unbalanced\\n}).

What a client can make the server hold is bounded: a C{find} answer is
written as the client reads it, a watcher that stops reading is dropped, and
every accepted connection has TCP keepalive, so that a peer whose host
vanished is noticed (see L{RegistryServer}).
"""

import socket
from bisect import bisect_right
from itertools import accumulate

from twisted.internet import defer, tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno.errors import RegistryError, TxInfernoError
from txinferno.server.connections import (
    ArrivalTimeouts,
    ConnectionTracking,
    sendDirect,
)
from txinferno.server.registry import shortened
from txinferno.server.statistics import ServerStatistics
from txinferno.wire.rules import PORT_NAMES, READY, versionLine
from txinferno.wire.words import MAX_LINE, LineAssembler, quote, splitWords

__all__ = [
    "NewServerProtocol",
    "FindServerProtocol",
    "EventServerProtocol",
    "RegistryPortFactory",
    "RegistryServer",
    "PortListenError",
]

IDLE_TIMEOUT = 60.0
"""
Default of L{RegistryServer.idleTimeout}.
"""
QUOTED_NEWLINE_DELAY = 0.1
"""
Default of L{RegistryServer.quotedNewlineDelay}.
"""
MAX_FINDS = 16
"""
Default of L{RegistryServer.maxFinds}.
"""
FIND_BUFFER = 65536
"""
Default of L{RegistryServer.findBufferSize}.
"""
FIND_CHUNKS = 4
"""
A streamed C{find} answer is written in pieces of about a quarter of
L{RegistryServer.findBufferSize} (or one line, when a line is longer).
"""
WATCHER_TIMEOUT = 30.0
"""
Default of L{RegistryServer.watcherTimeout}.
"""
WATCHER_SEND_BUFFER = 4096
"""
Default of L{RegistryServer.watcherSendBuffer}.
"""
KEEPALIVE = (20, 10, 4)
"""
Default of L{RegistryServer.keepAlive}: the first probe after 20 s of
silence, then 4 probes 10 s apart, so that a vanished peer is noticed about
a minute after it falls silent.
"""


class _WriteCutter:
    """
    Cut a connection's bytes into the writes the registry applies: every
    line ended by a newline outside quotes, and, on demand, the pending
    bytes when they end with a newline inside an open quote (the real
    bridge's one-read-one-write rule).  Each write keeps its newline.
    """

    def __init__(self):
        self._lines = LineAssembler()

    @property
    def pending(self):
        """
        The bytes received that are not yet part of a write.
        """
        return self._lines.pending

    def feed(self, data):
        """
        @type data: L{bytes}
        @return: the writes completed by C{data}.
        @rtype: L{list} of L{bytes}
        """
        return [line + b"\n" for line in self._lines.feed(data)]

    def endsInQuotedNewline(self):
        """
        @return: whether the pending bytes end with a newline inside an open
            quote.
        """
        return self._lines.pending.endswith(b"\n") and self._lines.inQuote()

    def takePending(self):
        """
        @return: the pending bytes, as one write; nothing is pending after.
        @rtype: L{bytes}
        """
        pending = self._lines.pending
        self._lines = LineAssembler()
        return pending


def _cancelled(call):
    """
    Cancel a delayed call if it is still pending.

    @param call: the call, or L{None}.
    @return: L{None}, to store in place of the call.
    """
    if call is not None and call.active():
        call.cancel()
    return None


def _handOver(transport, handle, data):
    """
    Send C{data} straight on C{handle} (a plain TCP transport's socket,
    used only while the transport's buffer is empty), and give the
    transport what the socket does not take.  Sending straight spares the
    reactor a round of write notifications; bytes left in a TCP transport
    are marked as pausing its producer, so that the transport resumes it
    once they are sent.

    @param handle: the socket, or L{None} to write through the transport.
    @return: whether bytes now wait in a TCP transport (the producer must
        pause until it resumes it).
    @rtype: L{bool}
    """
    if handle is not None:
        data = sendDirect(handle, data)
        if not data:
            return False
    transport.write(data)
    if isinstance(transport, FileDescriptor):
        transport.producerPaused = True
        return True
    return False


class _WriteProtocol(Protocol):
    """
    The common part of the C{new} and C{find} protocols: cut the bytes into
    writes of at most C{server.maxLineLength} bytes, and close a connection
    that sends no first write within C{server.idleTimeout} seconds.

    @ivar server: the L{RegistryServer}, set by the factory.
    @ivar portName: the port's name in the server's statistics.
    """

    server: "RegistryServer | None" = None
    portName: str | None = None
    _done = False
    _idleLimit: tuple[ArrivalTimeouts, list] | None = None
    _quotedCall = None

    def connectionMade(self):
        self.server._track(self)
        self._cutter = _WriteCutter()
        self._idleLimit = self.server._idleLimit(self)

    def dataReceived(self, data):
        self.server.statistics.bytesIn[self.portName] += len(data)
        if self._done:
            return
        self._cancelQuoted()
        for write in self._cutter.feed(data):
            self._apply(write)
            if self._done:
                return
        limit = self.server.maxLineLength
        if len(self._cutter.pending) >= limit:
            self._lineTooLong()
        elif self._cutter.endsInQuotedNewline():
            self._quotedCall = self.server.reactor.callLater(
                self.server.quotedNewlineDelay, self._applyQuoted
            )

    def _apply(self, write):
        self._cancelIdle()
        if len(write) > self.server.maxLineLength:
            self._lineTooLong()
        else:
            self.writeReceived(write)

    def _lineTooLong(self):
        self.server.statistics.limitsHit["line"] += 1
        self.writeFailed(RegistryError("line longer than %d bytes" % (self.server.maxLineLength,)))

    def _applyQuoted(self):
        """
        No more bytes came after a newline inside an open quote: apply what
        is pending as one write, as the real bridge applies each read.
        """
        self._quotedCall = None
        self._apply(self._cutter.takePending())

    def _cancelQuoted(self):
        self._quotedCall = _cancelled(self._quotedCall)

    def connectionLost(self, reason):
        self._done = True
        self._cancelIdle()
        self._cancelQuoted()
        self.server._untrack(self)

    def finish(self):
        """
        Ignore any further bytes and close the connection once what was
        written has been sent.
        """
        self._done = True
        self.transport.loseConnection()

    def _cancelIdle(self):
        if self._idleLimit is not None:
            timeouts, entry = self._idleLimit
            self._idleLimit = None
            timeouts.done(entry)

    def _idle(self):
        """
        No first write came within C{server.idleTimeout} seconds.
        """
        self._idleLimit = None
        self.server.statistics.limitsHit["idle"] += 1
        self.writeFailed(RegistryError("no line within %s seconds" % (self.server.idleTimeout,)))

    def writeReceived(self, write):
        """
        Apply one write.

        @type write: L{bytes}
        """
        raise NotImplementedError()

    def writeFailed(self, error):
        """
        Close the connection because of C{error}.

        @type error: L{RegistryError}
        """
        raise NotImplementedError()


class NewServerProtocol(_WriteProtocol):
    """
    The C{new} port: the first write registers a service, each later one
    updates it, and the close of the connection unregisters it (unless it
    persists).  Never writes a byte: any error closes the connection.

    @ivar service: the service this connection registered, or L{None}.
    @type service: L{txinferno.server.registry.RegisteredService}
    """

    _log = Logger()
    portName = "new"
    service = None

    def writeReceived(self, write):
        words = splitWords(write)
        registry = self.server.registry
        try:
            if self.service is None:
                peer = self.transport.getPeer()
                self.service = registry.register(self, words, getattr(peer, "host", None))
            else:
                registry.update(self.service, words)
        except RegistryError as e:
            self.writeFailed(e, words[0] if self.service is None and words else None)

    def writeFailed(self, error, name=None):
        if name is None and self.service is not None:
            name = self.service.name
        self.server.registry.warn(
            "new connections closed",
            self._log,
            "new connection from {peer}{forName} closed: {error}",
            peer=addressText(self.transport.getPeer()),
            name=name,
            forName="" if name is None else " for " + quote(shortened(name)),
            error=error.text,
        )
        self.server.registry.reportRejection(name, error.text)
        self._releaseService()
        self.finish()

    def connectionLost(self, reason):
        # The service goes before the connection counts as closed, so that
        # whoever waits for the last one (disconnectAll) finds it gone.
        self._releaseService()
        _WriteProtocol.connectionLost(self, reason)

    def _releaseService(self):
        if self.service is not None:
            service, self.service = self.service, None
            self.server.registry.release(service)


@implementer(IHalfCloseableProtocol, IPushProducer)
class FindServerProtocol(_WriteProtocol):
    """
    The C{find} port: answer the first write (or what arrived before the
    client shut down its sending side) with one line per matching service,
    then close.

    An answer of more than C{server.findBufferSize} bytes is streamed: the
    lines of the matching services are taken when the answer starts and
    written a quarter of C{server.findBufferSize} at a time as the
    socket takes them (straight while it takes them whole, see
    L{_handOver}; this protocol is its transport's push producer), so that the
    connection never holds more than C{server.findBufferSize} bytes and one
    piece (or one line, when a line is longer).  At most
    C{server.maxFinds} answers stream at once; more wait their turn (see
    L{RegistryServer}).  A reader that takes nothing for
    C{server.idleTimeout} seconds has its answer cut.
    """

    _log = Logger()
    portName = "find"
    _lines = None
    _ends = None
    _next = 0
    _paused = False
    _stallCall = None

    def writeReceived(self, write):
        self._done = True
        self.server._findReceived(self, splitWords(write))

    def answerNow(self, lines):
        """
        Write a short answer whole, and close.

        @type lines: L{list} of L{bytes}
        """
        if lines:
            self.transport.write(b"".join(lines))
        self.finish()

    def stream(self, lines, ends):
        """
        Write a long answer as the transport drains, and close.

        @param lines: the answer's lines, as the registry held them when the
            answer started.
        @type lines: L{list} of L{bytes}
        @param ends: the offset in the answer of the end of each line.
        @type ends: L{list} of L{int}
        """
        self._lines = lines
        self._ends = ends
        if isinstance(self.transport, FileDescriptor):
            self.transport.bufferSize = self.server.findBufferSize
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self):
        self._paused = True
        if self.server.idleTimeout is not None and self._stallCall is None:
            self._stallCall = self.server.reactor.callLater(self.server.idleTimeout, self._stalled)

    def resumeProducing(self):
        self._paused = False
        self._stallCall = _cancelled(self._stallCall)
        chunk = max(1, self.server.findBufferSize // FIND_CHUNKS)
        handle = self.transport.getHandle() if type(self.transport) is tcp.Server else None
        while not self._paused and self._lines is not None:
            start = self._next
            offset = self._ends[start - 1] if start else 0
            end = self._next = max(start + 1, bisect_right(self._ends, offset + chunk, start))
            piece = b"".join(self._lines[start:end])
            if end >= len(self._lines):
                self._lines = self._ends = None
                self.transport.unregisterProducer()
                self.server._findAnswered(self)
                _handOver(self.transport, handle, piece)
                self.finish()
            elif _handOver(self.transport, handle, piece):
                self.pauseProducing()

    def stopProducing(self):
        self._paused = True
        self._stallCall = _cancelled(self._stallCall)
        if self._lines is not None:
            self._lines = self._ends = None
            self.server._findAnswered(self)

    def _stalled(self):
        self._stallCall = None
        self.server.registry.warn(
            "find connections cut for reading nothing",
            self._log,
            "find connection from {peer} cut: it read nothing of its answer for {timeout} seconds",
            peer=addressText(self.transport.getPeer()),
            timeout=self.server.idleTimeout,
        )
        self.transport.abortConnection()

    def writeFailed(self, error):
        self.server.registry.warn(
            "find connections closed",
            self._log,
            "find connection from {peer} closed: {error}",
            peer=addressText(self.transport.getPeer()),
            error=error.text,
        )
        self.finish()

    def readConnectionLost(self):
        if not self._done:
            self._cancelIdle()
            self._cancelQuoted()
            self.writeReceived(self._cutter.pending)

    def writeConnectionLost(self):
        self.finish()

    def connectionLost(self, reason):
        _WriteProtocol.connectionLost(self, reason)
        self.stopProducing()
        self.server._findGone(self)


@implementer(IPushProducer)
class EventServerProtocol(Protocol):
    """
    The C{event} port: C{READY\\n}, then the current version as C{%08d\\n}
    after changes.  The server coalesces changes (L{RegistryServer}); while
    the transport holds bytes the socket did not take, this protocol only
    remembers that a report is owed and sends the then-current version when
    the transport has drained, so a watcher never has more than one report
    pending in the server.  What the client sends is ignored.

    A watcher that stops reading costs little and not for long: its
    socket's send buffer is set to C{server.watcherSendBuffer} bytes (so
    the kernel holds little for it), and once the socket has not drained
    for C{server.watcherTimeout} seconds the watcher is dropped, which is
    logged once.  A watcher that reads is never dropped.

    On a plain TCP transport, bytes go straight to the socket while it
    takes them whole (see L{_handOver}; it matters for a report to 1,000
    watchers); after a short send the rest waits in the transport's buffer,
    and this producer is paused until the transport has drained it.

    @ivar server: the L{RegistryServer}, set by the factory.
    """

    _log = Logger()
    server = None
    portName = "event"
    _paused = False
    _owed = False
    _socket = None
    _dropCall = None

    def connectionMade(self):
        self.server._track(self)
        self.server._watchers.add(self)
        self.transport.registerProducer(self, True)
        if type(self.transport) is tcp.Server:
            self._socket = self.transport.getHandle()
        self.server.statistics.bytesOut["event"] += len(READY) + 1
        self._send(READY + b"\n")

    def _send(self, data):
        if _handOver(self.transport, self._socket, data):
            self._socket = None
            self.pauseProducing()

    def dataReceived(self, data):
        self.server.statistics.bytesIn["event"] += len(data)

    def report(self, version, line=None):
        """
        Tell the client of the current version, or remember to.  The
        caller counts the report in the server's statistics.

        @type version: L{int}
        @param line: C{version} as the line to send (L{versionLine}), when
            the caller has it (the server makes it once for all watchers).
        @return: whether the report was sent (else it is owed).
        @rtype: L{bool}
        """
        if self._paused:
            self._owed = True
            return False
        self._send(versionLine(version) if line is None else line)
        return True

    def pauseProducing(self):
        self._paused = True
        timeout = self.server.watcherTimeout
        if timeout is not None and self._dropCall is None:
            self._dropCall = self.server.reactor.callLater(timeout, self._drop)

    def resumeProducing(self):
        self._paused = False
        self._dropCall = _cancelled(self._dropCall)
        if type(self.transport) is tcp.Server:
            self._socket = self.transport.getHandle()
        if self._owed:
            self._owed = False
            line = versionLine(self.server.registry.version)
            if self.report(self.server.registry.version, line):
                self.server.statistics.reported(1, len(line))

    def stopProducing(self):
        self._paused = True
        self._owed = False
        self._dropCall = _cancelled(self._dropCall)

    def _drop(self):
        self._dropCall = None
        self.server.statistics.watchersDropped += 1
        self.server.registry.warn(
            "event watchers dropped",
            self._log,
            "event watcher {peer} dropped: its socket has not drained for {timeout} seconds",
            peer=addressText(self.transport.getPeer()),
            timeout=self.server.watcherTimeout,
        )
        self.transport.abortConnection()

    def connectionLost(self, reason):
        self._socket = None
        self._dropCall = _cancelled(self._dropCall)
        self.server._watchers.discard(self)
        self.server._untrack(self)


class RegistryPortFactory(Factory):
    """
    Build one port's protocols, all serving the same L{RegistryServer}.

    @ivar role: C{new}, C{find} or C{event}; Twisted's line for a port that
        starts listening names it (C{event port starting on 6703}).
    """

    noisy = False

    def __init__(self, server, protocol, role):
        """
        @type server: L{RegistryServer}
        @param protocol: L{NewServerProtocol}, L{FindServerProtocol} or L{EventServerProtocol}.
        @param role: see L{role}.
        """
        self.server = server
        self.protocol = protocol
        self.role = role

    def logPrefix(self):
        return "%s port" % (self.role,)

    def buildProtocol(self, addr):
        p = Factory.buildProtocol(self, addr)
        p.server = self.server
        return p


class RegistryServer(ConnectionTracking):
    """
    The three ports of one L{txinferno.server.registry.Registry}.

    @ivar registry: the registry served.
    @ivar reactor: the reactor (also the clock of the idle timeout and of
        the coalescing of event reports).
    @ivar maxLineLength: the longest write accepted, newline included; a
        longer line closes its connection.
    @ivar idleTimeout: seconds a C{new} or C{find} connection may stay
        without sending its first line, or L{None} for no limit.
    @ivar quotedNewlineDelay: seconds to wait, when the bytes received end
        with a newline inside an open quote, before applying them as one
        write as the real bridge would (more bytes in the meantime mean the
        newline belongs to a quoted value that goes on).
    @ivar maxFinds: how many C{find} answers longer than L{findBufferSize}
        are written at once; more wait, in order of arrival, and are
        answered as the registry is when their turn comes.  A shorter answer
        never waits.
    @ivar findBufferSize: the most bytes of answer a C{find} connection
        holds in the server (beside one piece being written, see
        L{FIND_CHUNKS}); a longer answer is made as the client reads.
    @ivar watcherTimeout: seconds an C{event} connection's socket may stay
        undrained before the watcher is dropped, or L{None} for no limit.
    @ivar watcherSendBuffer: the kernel send buffer size (C{SO_SNDBUF}) set
        on each C{event} connection, or L{None} to keep the system's.
    @ivar keepAlive: the TCP keepalive timers of every accepted connection,
        C{(idle, interval, count)} in seconds and probes (see
        L{enableKeepAlive}), or L{None} to leave keepalive off.
    @ivar newFactory: the factory of the C{new} port.
    @ivar findFactory: the factory of the C{find} port.
    @ivar eventFactory: the factory of the C{event} port.
    @ivar ports: the listening ports (C{new}, C{find}, C{event}) after
        L{listen}, else an empty list.
    @ivar statistics: the server's counters.
    @type statistics: L{ServerStatistics}
    """

    _log = Logger()

    def __init__(
        self,
        registry,
        reactor=None,
        maxLineLength=MAX_LINE,
        idleTimeout=IDLE_TIMEOUT,
        quotedNewlineDelay=QUOTED_NEWLINE_DELAY,
        maxFinds: int = MAX_FINDS,
        findBufferSize: int = FIND_BUFFER,
        watcherTimeout: float | None = WATCHER_TIMEOUT,
        watcherSendBuffer: int | None = WATCHER_SEND_BUFFER,
        keepAlive: tuple[int, int, int] | None = KEEPALIVE,
    ):
        """
        @type registry: L{txinferno.server.registry.Registry}
        @param reactor: the reactor; the global one when L{None}.
        @type maxLineLength: L{int}
        @type idleTimeout: L{float} or L{None}
        """
        if reactor is None:
            from twisted.internet import reactor
        self.registry = registry
        self.reactor = reactor
        self.maxLineLength = maxLineLength
        self.idleTimeout = idleTimeout
        self.quotedNewlineDelay = quotedNewlineDelay
        self.maxFinds = maxFinds
        self.findBufferSize = findBufferSize
        self.watcherTimeout = watcherTimeout
        self.watcherSendBuffer = watcherSendBuffer
        self.keepAlive = keepAlive
        self._streaming: set[FindServerProtocol] = set()
        self._waiting: dict[FindServerProtocol, list[str]] = {}
        self._startingFinds = False
        self._idleTimeouts: ArrivalTimeouts | None = None
        self.newFactory = RegistryPortFactory(self, NewServerProtocol, "new")
        self.findFactory = RegistryPortFactory(self, FindServerProtocol, "find")
        self.eventFactory = RegistryPortFactory(self, EventServerProtocol, "event")
        self.ports: list = []
        self._initConnections()
        self.statistics = ServerStatistics()
        self._watchers: set[EventServerProtocol] = set()
        self._reportCall = None
        registry.addObserver(self._changed)

    def listen(self, new, find, event, also=()):
        """
        Start listening on the three ports, and on any other port given to
        open with them (the Styx port).  A TCP port that cannot be had (in
        use, say) is found before any port opens, so that nothing listens,
        even for a moment, when one of them cannot.

        @param new: where to serve C{new}.
        @type new: L{IStreamServerEndpoint} or a server endpoint string
        @param find: where to serve C{find} (same types).
        @param event: where to serve C{event} (same types).
        @param also: more ports, each C{(role, endpoint, factory)}: they
            open with the three, all or none, and close with them.

        @return: a L{Deferred} that fires with the L{list} of the listening
            ports (L{IListeningPort}: C{new}, C{find}, C{event}, then those
            of C{also}), or fails with a L{PortListenError} for the first
            port that could not listen, after any port that did listen has
            been stopped again.
        """
        also = list(also)
        endpoints = [
            serverFromString(self.reactor, e) if isinstance(e, str) else e
            for e in [new, find, event] + [endpoint for _, endpoint, _ in also]
        ]
        roles = PORT_NAMES + tuple(role for role, _, _ in also)
        try:
            _checkFree(roles, endpoints)
        except PortListenError as e:
            return defer.fail(e)
        factories = [self.newFactory, self.findFactory, self.eventFactory]
        factories += [factory for _, _, factory in also]
        d = defer.DeferredList(
            [e.listen(f) for e, f in zip(endpoints, factories)], consumeErrors=True
        )

        def listened(results):
            ports = [r for ok, r in results if ok]
            failures = [
                PortListenError.fromFailure(role, r)
                for role, (ok, r) in zip(roles, results)
                if not ok
            ]
            if failures:
                stops = defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
                return stops.addCallback(lambda _: defer.fail(failures[0]))
            self.ports = ports
            more = "".join(
                ", %s=%s" % (role, addressText(port.getHost()))
                for role, port in zip(roles[3:], ports[3:])
            )
            self._log.info(
                "registry serving new={new}, find={find}, event={event}{more}, "
                "{static} static services",
                new=addressText(ports[0].getHost()),
                find=addressText(ports[1].getHost()),
                event=addressText(ports[2].getHost()),
                more=more,
                static=sum(1 for service in self.registry if service.static),
            )
            return ports

        return d.addCallback(listened)

    def stopListening(self):
        """
        Stop listening; open connections stay open.

        @return: a L{Deferred} that fires with L{None} once every port is
            closed.
        """
        ports, self.ports = self.ports, []
        d = defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
        return d.addCallback(lambda _: None)

    def disconnectAll(self):
        """
        Abort every open connection on the three ports (services release as
        their connections close).

        @return: a L{Deferred} that fires with L{None} once every connection
            is closed.
        """
        return ConnectionTracking.disconnectAll(self)

    def connectionCounts(self) -> dict[str, int]:
        """
        @return: the open connections, by port name (C{new}, C{find},
            C{event}).
        @rtype: L{dict} of L{str} to L{int}
        """
        counts = dict.fromkeys(PORT_NAMES, 0)
        for protocol in self._connections:
            counts[protocol.portName] += 1
        return counts

    def _track(self, protocol):
        """
        A connection is made: count it, and give its socket the server's
        options (see L{txinferno.server.connections.acceptedSocketOptions}):
        keepalive, and for the C{event} port the send buffer of
        L{watcherSendBuffer}.
        """
        ConnectionTracking._track(self, protocol)
        port = protocol.portName
        self._giveOptions(
            protocol, port, self.keepAlive, self.watcherSendBuffer if port == "event" else None
        )

    def _idleLimit(self, protocol):
        """
        Start the L{idleTimeout} of a C{new} or C{find} connection.

        @return: what the protocol gives back to end it (the timeouts and
            its entry), or L{None} when there is no limit.
        """
        timeout = self.idleTimeout
        if timeout is None:
            return None
        timeouts = self._idleTimeouts
        if timeouts is None or timeouts.delay != timeout:
            timeouts = self._idleTimeouts = ArrivalTimeouts(self.reactor, timeout, _idleExpired)
        return (timeouts, timeouts.add(protocol))

    def watcherCount(self) -> int:
        """
        @return: the open C{event} connections.
        """
        return len(self._watchers)

    def _noConnections(self):
        if self._reportCall is not None and not self._watchers:
            self._reportCall.cancel()
            self._reportCall = None

    def _findReceived(self, protocol, words):
        """
        Answer a query: at once when its answer is short, else as a stream
        when fewer than L{maxFinds} are streaming, else later.
        """
        started = self.reactor.seconds()
        lines = [s.line() for s in self.registry.find(words)]
        ends = list(accumulate(map(len, lines)))
        long = ends and ends[-1] > self.findBufferSize
        if long and len(self._streaming) >= self.maxFinds:
            # Counted when its turn comes, with the answer it gets then.
            self._waiting[protocol] = words
            return
        self.statistics.found(self.reactor.seconds() - started)
        if ends:
            self.statistics.bytesOut["find"] += ends[-1]
        if long:
            self._streaming.add(protocol)
            protocol.stream(lines, ends)
        else:
            protocol.answerNow(lines)

    def _findAnswered(self, protocol):
        """
        A streamed answer is over (written, or its connection lost): start
        the answers waiting for its place.
        """
        self._streaming.discard(protocol)
        if self._startingFinds:
            return
        self._startingFinds = True
        try:
            while self._waiting and len(self._streaming) < self.maxFinds:
                waiting = next(iter(self._waiting))
                self._findReceived(waiting, self._waiting.pop(waiting))
        finally:
            self._startingFinds = False

    def _findGone(self, protocol):
        """
        A C{find} connection is lost: forget its query if it was waiting.
        """
        self._waiting.pop(protocol, None)

    def _changed(self, version):
        """
        Registry observer: schedule one report for every watcher at the end
        of this reactor turn, so that the changes of one turn give one
        report.
        """
        if self._watchers and self._reportCall is None:
            self._reportCall = self.reactor.callLater(0, self._report)

    def _report(self):
        self._reportCall = None
        version = self.registry.version
        line = versionLine(version)
        sent = 0
        for watcher in list(self._watchers):
            if watcher.report(version, line):
                sent += 1
        self.statistics.reported(sent, len(line))


def _idleExpired(protocol):
    protocol._idle()


def addressText(address):
    """
    An address as a log line gives it: C{HOST:PORT} (C{[HOST]:PORT} for
    IPv6), a UNIX socket's path, or the address's own text.
    """
    if isinstance(address, IPv6Address):
        return "[%s]:%d" % (address.host, address.port)
    if isinstance(address, IPv4Address):
        return "%s:%d" % (address.host, address.port)
    name = getattr(address, "name", None)
    if isinstance(name, bytes):
        return name.decode("utf-8", "replace")
    return str(name if name is not None else address)


class PortListenError(TxInfernoError):
    """
    One of the registry's ports could not listen.

    @ivar role: C{new}, C{find} or C{event}.
    @ivar address: where it was to listen (C{HOST:PORT}), or L{None} when
        the error does not say.
    @ivar reason: why, such as C{address already in use}.
    """

    def __init__(self, role, address, reason):
        where = "" if address is None else " on " + address
        TxInfernoError.__init__(self, "cannot listen for the %s port%s: %s" % (role, where, reason))
        self.role = role
        self.address = address
        self.reason = reason

    @classmethod
    def fromFailure(cls, role, failure):
        """
        @param failure: why an endpoint's C{listen} failed.
        @type failure: L{Failure}
        @rtype: L{PortListenError}
        """
        error = failure.value
        if isinstance(error, CannotListenError):
            family = IPv6Address if ":" in (error.interface or "") else IPv4Address
            address = addressText(family("TCP", error.interface or "0.0.0.0", error.port))
            cause = error.socketError
            if isinstance(cause, OSError) and cause.strerror:
                reason = cause.strerror[:1].lower() + cause.strerror[1:]
            else:
                reason = str(cause)
            return cls(role, address, reason)
        return cls(role, None, str(error) or type(error).__name__)


def _checkFree(roles, endpoints):
    """
    Bind, and release, a socket where each TCP endpoint (of the port
    C{roles} names) is to listen.

    @raise PortListenError: for the first that cannot be bound; no socket
        stays open.
    """
    held = []
    try:
        for role, endpoint in zip(roles, endpoints):
            if not isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)):
                continue
            ipv6 = isinstance(endpoint, TCP6ServerEndpoint)
            probe = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET)
            held.append(probe)
            # As Twisted's own TCP ports do on POSIX.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((endpoint._interface, endpoint._port))
            except OSError as e:
                raise PortListenError.fromFailure(
                    role, Failure(CannotListenError(endpoint._interface, endpoint._port, e))
                ) from e
    finally:
        for probe in held:
            probe.close()
