"""
Registries in memory, for deterministic unit tests on a clock.

L{InMemoryRegistry} joins the real TCP connection plugin to the real
registry server through Twisted's L{twisted.test.iosim} on a
L{MemoryReactorClock}: every byte goes through the real protocols of both
sides, and nothing touches a socket::

    registry = InMemoryRegistry()
    manager = RegistryManager.fromDescription(registry.reactor, registry.description)
    manager.startService()
    web = manager.attach(ServiceTask("tcp!host!80", {"proto": "http"}))
    registry.advance(1)           # time passes; connections complete, bytes move
    assert "tcp!host!80" in registry.registry

L{MemoryConnection} is an in-memory connection plugin for unit tests of programs that use a
registry: L{MemoryConnection} holds a real registry model
(L{txinferno.server.registry.Registry}) in the test's own process, applies
the same word and name rules as the TCP plugin, and fires every Deferred at
once, so that a test on a L{twisted.internet.task.Clock} is deterministic.
L{MemoryConnection.crash} and L{MemoryConnection.recover} play an outage::

    connection = MemoryConnection()
    manager = RegistryManager(connection, clock=Clock())
    manager.startService()
    web = manager.attach(ServiceTask("tcp!host!80", {"proto": "http"}))
    ...
    connection.crash()      # every registration and stream is lost
    connection.recover()    # the registry is back, with its services
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test.iosim import ConnectionCompleter, IOPump
from zope.interface import implementer

from txinferno.errors import RegistrationLost, RegistrationRejected, RegistryError
from txinferno.interfaces import IChangeObserver, IChangeStream, IRegistration, IRegistryConnection
from txinferno.server.protocols import RegistryServer
from txinferno.server.registry import RegisteredService, Registry
from txinferno.wire.rules import AttributesLike, Services, queryLine, registrationLine, updateLine
from txinferno.wire.words import splitWords

__all__ = ["InMemoryRegistry", "MemoryConnection", "MemoryRegistration", "MemoryStream"]


@implementer(IRegistration)
class MemoryRegistration:
    """
    A registration held in a L{MemoryConnection}'s registry.
    """

    def __init__(
        self,
        connection: MemoryConnection,
        service: RegisteredService,
        attrs: Iterable[tuple[str, str]],
    ) -> None:
        self._connection = connection
        self._service: RegisteredService | None = service
        self._lost: list[Deferred[None]] = []
        self.name = service.name
        self.attrs = dict(attrs)

    def update(self, attrs: AttributesLike) -> None:
        line, pairs = updateLine(attrs)
        if self._service is None:
            raise RegistrationLost(self.name)
        self._connection.registry.update(self._service, splitWords(line))
        self.attrs.update(pairs)

    def unregister(self) -> Deferred[None]:
        self._end(None)
        return succeed(None)

    def whenLost(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._lost.append(d)
        return d

    def _end(self, reason: Failure | None) -> None:
        service, self._service = self._service, None
        if service is None:
            return
        self._connection.registry.release(service)
        self._connection.registrations.remove(self)
        for d in self._lost:
            d.callback(None) if reason is None else d.errback(reason)


@implementer(IChangeStream)
class MemoryStream:
    """
    A change stream of a L{MemoryConnection}.
    """

    def __init__(self, connection: MemoryConnection, observer: IChangeObserver) -> None:
        self._connection = connection
        self.observer = observer
        self.connected = False

    def stop(self) -> Deferred[None]:
        self._connection.streams.remove(self)
        if self.connected:
            self.connected = False
            self._connection.registry.removeObserver(self.observer.registryChanged)
        return succeed(None)


@implementer(IRegistryConnection)
class MemoryConnection:
    """
    A connection plugin whose registry lives in this process; L{crash} and
    L{recover} simulate an outage.

    @ivar registry: the registry.
    """

    description = "memory"

    def __init__(self) -> None:
        self.registry = Registry()
        self.reachable = True
        self.registrations: list[MemoryRegistration] = []
        self.streams: list[MemoryStream] = []
        self.finds = 0

    def register(self, name: str, attrs: AttributesLike) -> Deferred[IRegistration]:
        line, pairs = registrationLine(name, attrs)
        if not self.reachable:
            return fail(ConnectionRefusedError())
        try:
            service = self.registry.register(self, splitWords(line))
        except RegistryError as e:
            return fail(RegistrationRejected(name, e.text))
        registration = MemoryRegistration(self, service, pairs)
        self.registrations.append(registration)
        return succeed(registration)

    def find(self, attrs: AttributesLike) -> Deferred[Services]:
        line, _ = queryLine(attrs)
        if not self.reachable:
            return fail(ConnectionRefusedError())
        self.finds += 1
        return succeed({s.name: dict(s.attributes()) for s in self.registry.find(splitWords(line))})

    def watch(self, observer: IChangeObserver) -> IChangeStream:
        stream = MemoryStream(self, observer)
        self.streams.append(stream)
        if self.reachable:
            self._ready(stream)
        return stream

    def _ready(self, stream: MemoryStream) -> None:
        stream.connected = True
        self.registry.addObserver(stream.observer.registryChanged)
        stream.observer.streamReady()

    def crash(self) -> None:
        """
        The registry goes away: every registration and stream is lost.
        """
        self.reachable = False
        reason = Failure(ConnectionLost("crash"))
        for registration in list(self.registrations):
            registration._end(Failure(RegistrationLost(registration.name)))
        for stream in list(self.streams):
            stream.connected = False
            self.registry.removeObserver(stream.observer.registryChanged)
            stream.observer.streamLost(reason)

    def recover(self) -> None:
        """
        The registry is back (it kept its services, as a new one with
        persistent services would).
        """
        self.reachable = True
        for stream in list(self.streams):
            self._ready(stream)


class InMemoryRegistry:
    """
    The embedded registry server's three ports on a L{MemoryReactorClock},
    for the real client to reach with L{description}; L{flush} and
    L{advance} complete the connections it makes and move their bytes.

    @ivar reactor: the memory reactor (and clock) both sides run on.
    @ivar registry: the registry model served.
    @ivar server: the L{RegistryServer} serving it.
    @ivar description: the registry description that reaches it.
    """

    HOST = "127.0.0.1"
    PORTS = (6701, 6702, 6703)
    MAX_TURNS = 10000
    """
    The most rounds of moving bytes one L{flush} makes before it decides
    that the two sides will never be quiet.
    """

    def __init__(self, registry: Registry | None = None, **serverOptions: Any) -> None:
        """
        @param registry: the registry to serve; a new, empty one on the
            memory reactor's clock when L{None}.
        @param serverOptions: keyword arguments for L{RegistryServer}.
        """
        self.reactor = MemoryReactorClock()
        self.registry = Registry(self.reactor) if registry is None else registry
        self.server = RegistryServer(self.registry, reactor=self.reactor, **serverOptions)
        factories = (self.server.newFactory, self.server.findFactory, self.server.eventFactory)
        for port, factory in zip(self.PORTS, factories):
            self.reactor.listenTCP(port, factory, interface=self.HOST)
        self.description = "tcp:host=%s:new=%d:find=%d:event=%d" % ((self.HOST,) + self.PORTS)
        self._completer = ConnectionCompleter(self.reactor)
        self._pumps: list[IOPump] = []

    def flush(self) -> None:
        """
        Complete every connection attempt and move bytes both ways (running
        the calls due now) until nothing more moves.

        @raise RuntimeError: when the two sides still exchange bytes after
            L{MAX_TURNS} rounds.
        """
        for _ in range(self.MAX_TURNS):
            moved = False
            self.reactor.advance(0)
            self._dropStoppedAttempts()
            pump = self._completer.succeedOnce()
            while pump is not None:
                self._pumps.append(pump)
                moved = True
                pump = self._completer.succeedOnce()
            for pump in list(self._pumps):
                if pump.pump():
                    moved = True
                elif pump.clientIO.disconnected and pump.serverIO.disconnected:
                    self._pumps.remove(pump)
            if not moved:
                return
        raise RuntimeError("the connections were still busy after %d rounds" % (self.MAX_TURNS,))

    def _dropStoppedAttempts(self) -> None:
        """
        Forget the connection attempts their clients gave up (a memory
        reactor keeps them, where a real one would not connect them).
        """
        reactor = self.reactor
        kept = [
            (client, connector)
            for client, connector in zip(reactor.tcpClients, reactor.connectors)
            if not connector.stoppedConnecting
        ]
        reactor.tcpClients[:] = [client for client, _ in kept]
        reactor.connectors[:] = [connector for _, connector in kept]

    def advance(self, seconds: float) -> None:
        """
        Let C{seconds} pass in small steps, flushing after each, so that
        timers and the traffic they start both run.
        """
        step = 0.01
        steps = max(1, round(seconds / step))
        for _ in range(steps):
            self.reactor.advance(seconds / steps)
            self.flush()

    def connections(self) -> int:
        """
        @return: how many connections are open between the two sides.
        """
        return sum(1 for p in self._pumps if not p.clientIO.disconnected)
