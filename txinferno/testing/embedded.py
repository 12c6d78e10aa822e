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
        await registry_server.waitFor("svc")  # registered again

Or by hand (with trial too)::

    server = EmbeddedRegistry(static="services.db")
    await server.start()
    ...
    await server.stop()

L{EmbeddedRegistry.stop} simulates a registry crash: the ports stop
listening and every open connection is aborted; L{EmbeddedRegistry.start}
then serves again on the same ports.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterator
from typing import IO, Any

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTCP
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from txinferno.server.protocols import RegistryServer
from txinferno.server.registry import RegisteredService, Registry
from txinferno.server.styx import StyxRegistryServer

__all__ = ["EmbeddedRegistry", "RawConnection", "connectRaw", "exchange"]


class EmbeddedRegistry:
    """
    A registry served on three loopback TCP ports, and over Styx on a
    fourth.

    @ivar registry: the current registry model (a fresh one after each
        L{start}); L{None} before the first.
    @type registry: L{txinferno.server.registry.Registry}
    @ivar server: the current L{RegistryServer}, L{None} before the first
        start.
    @ivar host: the address listened on.
    @ivar newPort: the C{new} port number (0 before the first start).
    @ivar findPort: the C{find} port number.
    @ivar eventPort: the C{event} port number.
    @ivar styxServer: the current L{StyxRegistryServer}, serving the same
        registry; L{None} before the first start.
    @ivar styxPort: the Styx port number.
    @ivar running: whether it is listening.
    """

    def __init__(
        self,
        reactor: Any = None,
        host: str = "127.0.0.1",
        static: str | os.PathLike[str] | IO[str] | IO[bytes] | None = None,
        backlog: int = 1024,
        **serverOptions: Any,
    ) -> None:
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
        self.registry: Registry | None = None
        self.server: RegistryServer | None = None
        self.styxServer: StyxRegistryServer | None = None
        self.newPort = self.findPort = self.eventPort = self.styxPort = 0
        self.running = False
        self._waiters: list[tuple[str, Deferred[RegisteredService]]] = []

    @property
    def description(self) -> str:
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

    @property
    def styxAddress(self) -> tuple[str, int]:
        """
        Where the Styx port listens: C{(host, port)}.
        """
        return (self.host, self.styxPort)

    def start(self) -> Deferred[EmbeddedRegistry]:
        """
        Serve a fresh registry (static services loaded): on ports chosen by
        the system the first time, on the same ports afterwards.

        @return: a L{Deferred} that fires with this object once the four
            ports listen.
        """
        if self.running:
            raise RuntimeError("the embedded registry is already running")
        self.registry = Registry(self.reactor)
        if self.static is not None:
            if hasattr(self.static, "seek"):
                self.static.seek(0)
            self.registry.loadStatic(self.static)
        registry = self.registry
        registry.addObserver(lambda version: self._changed(registry))
        self.server = RegistryServer(self.registry, self.reactor, **self.serverOptions)
        self.styxServer = StyxRegistryServer(self.registry, self.reactor)
        endpoints = [
            TCP4ServerEndpoint(self.reactor, port, backlog=self.backlog, interface=self.host)
            for port in (self.newPort, self.findPort, self.eventPort, self.styxPort)
        ]

        def listening(ports):
            self.newPort, self.findPort, self.eventPort = [p.getHost().port for p in ports]
            return self.styxServer.listen(endpoints[3]).addErrback(styxFailed)

        def styxFailed(failure):
            return self.server.stopListening().addCallback(lambda _: failure)

        def styxListening(port):
            self.running = True
            self.styxPort = port.getHost().port
            return self

        d = self.server.listen(*endpoints[:3]).addCallback(listening)
        return d.addCallback(styxListening)

    def stop(self) -> Deferred[None]:
        """
        Stop listening and abort every open connection, as a crash of the
        registry would.  Does nothing when not running.

        The registry's change log is flushed once every connection is
        closed (see L{Registry.flushLog}): the summary of the changes not
        logged one by one is logged before the L{Deferred} fires, and no
        call of it is left with the reactor.

        @return: a L{Deferred} that fires with L{None} once the ports are
            closed and every connection is closed.
        """
        if not self.running:
            return succeed(None)
        self.running = False
        registry = self.registry
        assert self.server is not None and self.styxServer is not None and registry is not None
        servers: list[RegistryServer | StyxRegistryServer] = [self.server, self.styxServer]
        d = gatherResults([s.stopListening() for s in servers])
        d.addCallback(lambda _: gatherResults([s.disconnectAll() for s in servers]))
        return d.addCallback(lambda _: registry.flushLog())

    def waitFor(self, name: str, timeout: float | None = 10) -> Deferred[RegisteredService]:
        """
        Wait until a service called C{name} is in the registry: registered
        by a client, or registered again after L{restart}, whatever the
        restarts in between.

        @param name: the service name.
        @param timeout: seconds to wait at most, or L{None} for no limit.
        @return: a L{Deferred} that fires with the
            L{txinferno.server.registry.RegisteredService} (at once when it
            is there now), or fails with L{twisted.internet.defer.TimeoutError}
            after C{timeout} seconds; cancelling it stops the wait.
        """
        if self.registry is not None and name in self.registry:
            return succeed(self.registry[name])
        waiter: tuple[str, Deferred[RegisteredService]] = (
            name,
            Deferred(lambda d: self._waiters.remove(waiter)),
        )
        self._waiters.append(waiter)
        if timeout is not None:
            waiter[1].addTimeout(timeout, self.reactor)
        return waiter[1]

    def _changed(self, registry: Registry) -> None:
        if registry is not self.registry:
            return
        for waiter in list(self._waiters):
            name, d = waiter
            if name in registry:
                self._waiters.remove(waiter)
                d.callback(registry[name])

    def restart(self) -> Deferred[EmbeddedRegistry]:
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

    def __init__(self) -> None:
        self.received = b""
        self.lost: Failure | None = None
        self._buffer = b""
        self._lines: deque[bytes] = deque()
        self._lineWaiters: deque[Deferred[bytes]] = deque()
        self._closeWaiters: list[Deferred[bytes]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if self._lineWaiters:
                self._lineWaiters.popleft().callback(line)
            else:
                self._lines.append(line)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = reason
        waiting, self._lineWaiters = self._lineWaiters, deque()
        for d in waiting:
            d.errback(reason)
        closeWaiters, self._closeWaiters = self._closeWaiters, []
        for d in closeWaiters:
            d.callback(self.received)

    def send(self, data: bytes) -> None:
        """
        Send C{data} in one write.

        @type data: L{bytes}
        """
        assert self.transport is not None
        self.transport.write(data)

    def readLine(self) -> Deferred[bytes]:
        """
        @return: a L{Deferred} that fires with the next line received
            (without its newline), or fails with the reason the connection
            closed before one came.
        """
        if self._lines:
            return succeed(self._lines.popleft())
        if self.lost is not None:
            return fail(self.lost)
        d: Deferred[bytes] = Deferred()
        self._lineWaiters.append(d)
        return d

    def whenClosed(self) -> Deferred[bytes]:
        """
        @return: a L{Deferred} that fires with every byte received once the
            connection is closed.
        """
        if self.lost is not None:
            return succeed(self.received)
        d: Deferred[bytes] = Deferred()
        self._closeWaiters.append(d)
        return d

    def close(self) -> Deferred[bytes]:
        """
        Close the connection.

        @return: see L{whenClosed}.
        """
        assert self.transport is not None
        self.transport.loseConnection()
        return self.whenClosed()


def connectRaw(reactor: IReactorTCP, host: str, port: int) -> Deferred[RawConnection]:
    """
    Open a L{RawConnection}.

    @return: a L{Deferred} that fires with the connected L{RawConnection}.
    """
    return connectProtocol(TCP4ClientEndpoint(reactor, host, port), RawConnection())


def exchange(reactor: IReactorTCP, host: str, port: int, data: bytes) -> Deferred[bytes]:
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
    async def registry_server() -> AsyncIterator[EmbeddedRegistry]:
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
