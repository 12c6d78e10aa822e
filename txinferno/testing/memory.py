"""
An in-memory connection plugin for unit tests of programs that use a
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

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno.errors import RegistrationLost, RegistrationRejected, RegistryError
from txinferno.interfaces import IChangeStream, IRegistration, IRegistryConnection
from txinferno.server.registry import Registry
from txinferno.wire.rules import queryLine, registrationLine, updateLine
from txinferno.wire.words import splitWords

__all__ = ["MemoryConnection", "MemoryRegistration", "MemoryStream"]


@implementer(IRegistration)
class MemoryRegistration:
    """
    A registration held in a L{MemoryConnection}'s registry.
    """

    def __init__(self, connection, service, attrs):
        self._connection = connection
        self._service = service
        self._lost = []
        self.name = service.name
        self.attrs = dict(attrs)

    def update(self, attrs):
        line, pairs = updateLine(attrs)
        if self._service is None:
            raise RegistrationLost(self.name)
        self._connection.registry.update(self._service, splitWords(line))
        self.attrs.update(pairs)

    def unregister(self):
        self._end(None)
        return succeed(None)

    def whenLost(self):
        d = Deferred()
        self._lost.append(d)
        return d

    def _end(self, reason):
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

    def __init__(self, connection, observer):
        self._connection = connection
        self.observer = observer
        self.connected = False

    def stop(self):
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

    def __init__(self):
        self.registry = Registry()
        self.reachable = True
        self.registrations = []
        self.streams = []
        self.finds = 0

    def register(self, name, attrs):
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

    def find(self, attrs):
        line, _ = queryLine(attrs)
        if not self.reachable:
            return fail(ConnectionRefusedError())
        self.finds += 1
        return succeed(
            {s.name: dict(s.attributes()) for s in self.registry.find(splitWords(line))}
        )

    def watch(self, observer):
        stream = MemoryStream(self, observer)
        self.streams.append(stream)
        if self.reachable:
            self._ready(stream)
        return stream

    def _ready(self, stream):
        stream.connected = True
        self.registry.addObserver(stream.observer.registryChanged)
        stream.observer.streamReady()

    def crash(self):
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

    def recover(self):
        """
        The registry is back (it kept its services, as a new one with
        persistent services would).
        """
        self.reachable = True
        for stream in list(self.streams):
            self._ready(stream)
