"""
The open connections of a server, aborting them all, sending to a
connection's socket directly, the socket options of the connections a
server accepts, and the time limit from a connection's arrival.
"""

import socket
from collections import deque
from collections.abc import Callable, Sequence
from weakref import WeakKeyDictionary

from twisted.internet import defer, tcp
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport

from txinferno._keepalive import enableKeepAlive, keepAliveOptions

__all__ = [
    "ConnectionTracking",
    "sendDirect",
    "AcceptedSocketOptions",
    "acceptedSocketOptions",
    "ArrivalTimeouts",
]

_INHERITED = object()
"""
L{AcceptedSocketOptions}' mark of a port whose accepted sockets inherit the
options.
"""


def sendDirect(sock, data):
    """
    Send what a non-blocking socket takes of C{data} at once, bypassing the
    transport's buffer (which spares the reactor a round of write
    notifications; only valid while that buffer is empty).

    @return: the bytes the socket did not take, to hand to the transport;
        empty when all were sent, or when the connection is broken (the
        reactor will notice).
    @rtype: L{bytes}
    """
    try:
        sent = sock.send(data)
    except BlockingIOError:
        return data
    except OSError:
        return b""
    return data[sent:]


class ConnectionTracking:
    """
    A mixin for a server whose protocols call L{_track} when they connect and
    L{_untrack} when they are lost: it gives L{disconnectAll}, and
    L{_giveOptions} for the sockets it accepts.  Call L{_initConnections}
    from C{__init__}.
    """

    def _initConnections(self):
        self._connections = set()
        self._allClosed = []
        self._acceptedOptions = {}

    def _giveOptions(self, protocol, port, keepAlive=None, sendBuffer=None, noDelay=False):
        """
        Give the socket of C{protocol}, accepted on the port called C{port},
        the options of L{acceptedSocketOptions}: made once for each port and
        made again only when the settings change.
        """
        settings = (keepAlive, sendBuffer, noDelay)
        known = self._acceptedOptions.get(port)
        if known is None or known[0] != settings:
            known = self._acceptedOptions[port] = (settings, acceptedSocketOptions(*settings))
        if known[1] is not None:
            known[1].apply(protocol.transport)

    def disconnectAll(self):
        """
        Abort every open connection.

        @return: a L{Deferred} that fires with L{None} once every connection
            is closed.
        """
        if not self._connections:
            return defer.succeed(None)
        d = defer.Deferred()
        self._allClosed.append(d)
        for protocol in list(self._connections):
            protocol.transport.abortConnection()
        return d

    def _track(self, protocol):
        self._connections.add(protocol)

    def _untrack(self, protocol):
        self._connections.discard(protocol)
        if not self._connections:
            self._noConnections()
            waiting, self._allClosed = self._allClosed, []
            for d in waiting:
                d.callback(None)

    def _noConnections(self):
        """
        The last open connection has closed (before the waiters of
        L{disconnectAll} are told).
        """


class AcceptedSocketOptions:
    """
    Socket options that every connection a server accepts must have, set
    with as few system calls as the platform allows.

    The options are set once on the listening socket of each TCP port the
    connections come from: where the sockets it accepts inherit them (as
    Linux's and the BSDs' do), a connection costs no system call at all.
    Sockets already waiting to be accepted when the options were set have
    not got them: each accepted socket is checked with one call (the last
    option read back) until one has inherited them, and those that have
    not are given them directly; every socket accepted after one that
    inherited them inherits them too, since a port's connections are
    accepted in the order they were made.  A connection that is not a
    plain TCP one is handed to C{fallback}.

    @ivar options: C{(level, option, value)}, set in this order.
    """

    def __init__(
        self,
        options: Sequence[tuple[int, int, int]],
        fallback: Callable[[object], object] | None = None,
    ):
        """
        @param options: see L{options}; the last one is the one read back.
        @param fallback: called with the transport of a connection that is
            not a plain TCP one, or L{None} to leave those alone.
        """
        self.options = list(options)
        self._fallback = fallback
        self._ports: WeakKeyDictionary[object, object] = WeakKeyDictionary()

    def apply(self, transport: object) -> None:
        """
        Give the options to the socket of an accepted connection.
        """
        if type(transport) is not tcp.Server:
            if self._fallback is not None:
                self._fallback(transport)
            return
        port = transport.server
        expected = self._ports.get(port)
        if expected is _INHERITED:
            return
        handle = transport.getHandle()
        if expected is None:
            listening = port.socket
            _setOptions(listening, self.options)
            level, option, _ = self.options[-1]
            self._ports[port] = listening.getsockopt(level, option)
        else:
            level, option, _ = self.options[-1]
            if handle.getsockopt(level, option) == expected:
                self._ports[port] = _INHERITED
                return
        _setOptions(handle, self.options)


def _setOptions(sock, options):
    for level, option, value in options:
        sock.setsockopt(level, option, value)


def acceptedSocketOptions(keepAlive=None, sendBuffer=None, noDelay=False):
    """
    @param keepAlive: C{(idle, interval, count)} TCP keepalive timers (see
        L{txinferno._keepalive.enableKeepAlive}), or L{None} for none.
    @param sendBuffer: the sockets' C{SO_SNDBUF}, or L{None}.
    @param noDelay: whether the sockets get C{TCP_NODELAY}.
    @return: the L{AcceptedSocketOptions} of a port's connections, or
        L{None} when they get none.
    """
    options = []
    if keepAlive is not None:
        options += keepAliveOptions(*keepAlive)
    if sendBuffer is not None:
        options.append((socket.SOL_SOCKET, socket.SO_SNDBUF, sendBuffer))
    if noDelay:
        options.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))
    if not options:
        return None

    def fallback(transport):
        if keepAlive is not None:
            enableKeepAlive(transport, *keepAlive)
        if noDelay and ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)

    return AcceptedSocketOptions(options, fallback)


class ArrivalTimeouts:
    """
    A time limit counted from each connection's arrival, the same for all,
    kept with one delayed call instead of one per connection: deadlines
    come in the order of arrival, so the arrivals wait in a queue and the
    call is set for the first one still waiting.

    @ivar delay: the limit, in seconds.
    """

    def __init__(self, clock: IReactorTime, delay: float, expired: Callable[[object], object]):
        """
        @param clock: the clock of the deadlines.
        @param expired: called with each arrival whose deadline passes
            before it is L{done}.
        """
        self.delay = delay
        self._clock = clock
        self._expired = expired
        self._queue: deque[list] = deque()
        self._call: IDelayedCall | None = None

    def add(self, arrival: object) -> list:
        """
        Start the limit of C{arrival}.

        @return: its entry, to give to L{done}.
        """
        entry = [self._clock.seconds() + self.delay, arrival]
        self._queue.append(entry)
        if self._call is None:
            self._call = self._clock.callLater(self.delay, self._fire)
        return entry

    def done(self, entry: list) -> None:
        """
        The arrival of C{entry} has met its limit, or is gone: forget it.
        The delayed call goes once no arrival waits.
        """
        entry[1] = None
        queue = self._queue
        while queue and queue[0][1] is None:
            queue.popleft()
        if not queue and self._call is not None:
            self._call.cancel()
            self._call = None

    def _fire(self):
        self._call = None
        queue = self._queue
        now = self._clock.seconds()
        while queue and (queue[0][1] is None or queue[0][0] <= now):
            deadline, arrival = queue.popleft()
            if arrival is not None:
                self._expired(arrival)
        if queue and self._call is None:
            self._call = self._clock.callLater(max(0, queue[0][0] - now), self._fire)
