"""
The open connections of a server, aborting them all, and sending to a
connection's socket directly.
"""

from twisted.internet import defer

__all__ = ["ConnectionTracking", "sendDirect"]


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
    L{_untrack} when they are lost: it gives L{disconnectAll}.  Call
    L{_initConnections} from C{__init__}.
    """

    def _initConnections(self):
        self._connections = set()
        self._allClosed = []

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
