"""
A test kit: a real registry server on loopback ports, for tests of code that
talks to a registry.

Usage with pytest-twisted::

    from txinferno.testing import registry_server  # the fixture

    @pytest_twisted.ensureDeferred
    async def test_something(registry_server):
        conn = connect(registry_server.description)  # tcp:host=...:new=...
        ...
        await registry_server.restart()   # crash: every connection aborted,
                                          # same ports, empty registry
        assert "svc" not in registry_server.registry

Or by hand (with trial too)::

    server = EmbeddedRegistry(static="services.db")
    await server.start()
    ...
    await server.stop()

L{EmbeddedRegistry.stop} simulates a registry crash: the ports stop
listening and every open connection is aborted; L{EmbeddedRegistry.start}
then serves again on the same ports.
"""

from collections import deque

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from txinferno.server.protocols import RegistryServer
from txinferno.server.registry import Registry

__all__ = ["EmbeddedRegistry", "RawConnection", "connectRaw", "exchange"]


class EmbeddedRegistry:
    """
    A registry served on three loopback TCP ports.

    @ivar registry: the current registry model (a fresh one after each
        L{start}); L{None} before the first.
    @type registry: L{txinferno.server.registry.Registry}
    @ivar server: the current L{RegistryServer}, L{None} before the first
        start.
    @ivar host: the address listened on.
    @ivar newPort: the C{new} port number (0 before the first start).
    @ivar findPort: the C{find} port number.
    @ivar eventPort: the C{event} port number.
    @ivar running: whether it is listening.
    """

    def __init__(self, reactor=None, host="127.0.0.1", static=None, backlog=1024, **serverOptions):
        """
        @param reactor: the reactor; the global one when L{None}.
        @param host: the IPv4 address to listen on.
        @param static: an attrdb(6) file of static services (a path or an
            open file), loaded into every fresh registry.
        @param backlog: the listen queue length of each port.
        @param serverOptions: more keyword arguments for L{RegistryServer}
            (C{maxLineLength}, C{idleTimeout}).
        """
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.host = host
        self.static = static
        self.backlog = backlog
        self.serverOptions = serverOptions
        self.registry = None
        self.server = None
        self.newPort = self.findPort = self.eventPort = 0
        self.running = False

    @property
    def description(self):
        """
        The registry description string:
        C{tcp:host=HOST:new=PORT:find=PORT:event=PORT}.
        """
        return "tcp:host=%s:new=%d:find=%d:event=%d" % (
            self.host,
            self.newPort,
            self.findPort,
            self.eventPort,
        )

    def start(self):
        """
        Serve a fresh registry (static services loaded): on ports chosen by
        the system the first time, on the same ports afterwards.

        @return: a L{Deferred} that fires with this object once the three
            ports listen.
        """
        if self.running:
            raise RuntimeError("the embedded registry is already running")
        self.registry = Registry()
        if self.static is not None:
            if hasattr(self.static, "seek"):
                self.static.seek(0)
            self.registry.loadStatic(self.static)
        self.server = RegistryServer(self.registry, self.reactor, **self.serverOptions)
        endpoints = [
            TCP4ServerEndpoint(self.reactor, port, backlog=self.backlog, interface=self.host)
            for port in (self.newPort, self.findPort, self.eventPort)
        ]

        def listening(ports):
            self.running = True
            self.newPort, self.findPort, self.eventPort = [p.getHost().port for p in ports]
            return self

        return self.server.listen(*endpoints).addCallback(listening)

    def stop(self):
        """
        Stop listening and abort every open connection, as a crash of the
        registry would.  Does nothing when not running.

        @return: a L{Deferred} that fires with L{None} once the ports are
            closed and every connection is closed.
        """
        if not self.running:
            return succeed(None)
        self.running = False
        server = self.server
        d = server.stopListening()
        d.addCallback(lambda _: server.disconnectAll())
        return d

    def restart(self):
        """
        L{stop}, then L{start} with a fresh, empty registry (static services
        reloaded) on the same ports.

        @return: a L{Deferred} that fires with this object once serving.
        """
        return self.stop().addCallback(lambda _: self.start())


class RawConnection(Protocol):
    """
    A plain TCP client for tests: sends what it is told and keeps
    everything it receives, as a whole and as newline-ended lines.

    @ivar received: every byte received so far.
    @type received: L{bytes}
    @ivar lost: the reason the connection closed (a L{Failure}), or
        L{None} while it is open.
    """

    def __init__(self):
        self.received = b""
        self.lost = None
        self._buffer = b""
        self._lines = deque()
        self._lineWaiters = deque()
        self._closeWaiters = []

    def dataReceived(self, data):
        self.received += data
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if self._lineWaiters:
                self._lineWaiters.popleft().callback(line)
            else:
                self._lines.append(line)

    def connectionLost(self, reason):
        self.lost = reason
        waiting, self._lineWaiters = self._lineWaiters, deque()
        for d in waiting:
            d.errback(reason)
        closeWaiters, self._closeWaiters = self._closeWaiters, []
        for d in closeWaiters:
            d.callback(self.received)

    def send(self, data):
        """
        Send C{data} in one write.

        @type data: L{bytes}
        """
        self.transport.write(data)

    def readLine(self):
        """
        @return: a L{Deferred} that fires with the next line received
            (without its newline), or fails with the reason the connection
            closed before one came.
        """
        if self._lines:
            return succeed(self._lines.popleft())
        if self.lost is not None:
            return fail(self.lost)
        d = Deferred()
        self._lineWaiters.append(d)
        return d

    def whenClosed(self):
        """
        @return: a L{Deferred} that fires with every byte received once the
            connection is closed.
        """
        if self.lost is not None:
            return succeed(self.received)
        d = Deferred()
        self._closeWaiters.append(d)
        return d

    def close(self):
        """
        Close the connection.

        @return: see L{whenClosed}.
        """
        self.transport.loseConnection()
        return self.whenClosed()


def connectRaw(reactor, host, port):
    """
    Open a L{RawConnection}.

    @return: a L{Deferred} that fires with the connected L{RawConnection}.
    """
    return connectProtocol(TCP4ClientEndpoint(reactor, host, port), RawConnection())


def exchange(reactor, host, port, data):
    """
    Connect, send C{data} in one write and wait for the server to close.

    @return: a L{Deferred} that fires with every byte received.
    """
    d = connectRaw(reactor, host, port)

    def connected(conn):
        conn.send(data)
        return conn.whenClosed()

    return d.addCallback(connected)


try:
    import pytest_twisted
except ImportError:  # pragma: no cover - the kit works without pytest too
    pass
else:
    __all__.append("registry_server")

    @pytest_twisted.async_yield_fixture
    async def registry_server():
        """
        A pytest fixture: a running L{EmbeddedRegistry}, stopped after the
        test.
        """
        server = EmbeddedRegistry()
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
