"""
Tests for L{txinferno.client.lookup.Lookup} and L{RegistryManager.lookup}, against
the embedded registry over loopback TCP, and of its deadline on a L{Clock}.
"""

import pytest
import pytest_twisted
from support import bounded, managerFor, startedManager
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Factory, Protocol
from zope.interface.verify import verifyObject

from txinferno.client.lookup import Lookup
from txinferno.client.manager import RegistryManager
from txinferno.client.service import ServiceTask
from txinferno.client.tcp import connectionFromString
from txinferno.errors import MalformedAnswer, RegistryUnavailable
from txinferno.interfaces import IRegistryTask
from txinferno.testing.memory import MemoryConnection


def test_provides():
    verifyObject(IRegistryTask, Lookup({"a": "1"}))


def test_invalidQuery():
    """
    An invalid query is a L{ValueError} at once.
    """
    with pytest.raises(ValueError, match="NUL"):
        Lookup({"a": "\x00"})
    with pytest.raises(ValueError, match="odd attribute set"):
        Lookup(["a"])


@pytest_twisted.ensureDeferred
async def test_lookupStar(manager):
    """
    A lookup finds what matches, C{*} matching any value of an existing
    attribute; it detaches itself when done.
    """
    services = [
        ServiceTask("fa", {"k": "1", "z": "two words"}),
        ServiceTask("fb", {"k": "2", "z": "y"}),
        ServiceTask("fc", {"k": "1"}),
    ]
    for svc in services:
        manager.attach(svc)
    for svc in services:
        await bounded(svc.whenRegistered())
    assert set(await bounded(manager.lookup({"k": "*"}))) == {"fa", "fb", "fc"}
    assert await bounded(manager.lookup({"k": "1", "z": "*"})) == {
        "fa": {"k": "1", "z": "two words"}
    }
    assert await bounded(manager.lookup([("k", "1"), ("k", "2")])) == {}
    assert set(await bounded(manager.lookup({}))) == {"fa", "fb", "fc"}
    assert manager.tasks == tuple(services)


@pytest_twisted.ensureDeferred
async def test_lookupSurvivesOutage(registry_server):
    """
    A lookup attached while the registry is down fires once it is back,
    within its deadline.
    """
    manager = managerFor(registry_server)
    svc = manager.attach(ServiceTask("svc", {"a": "1"}))
    await bounded(svc.whenRegistered())
    await registry_server.stop()
    lookup = manager.attach(Lookup({"a": "*"}, timeout=8))
    assert not lookup.deferred.called
    await registry_server.start()
    assert await bounded(lookup.deferred) == {"svc": {"a": "1"}}
    assert lookup.manager is None
    assert manager.tasks == (svc,)
    await bounded(manager.stopService())


@pytest_twisted.ensureDeferred
async def test_deadline(registry_server):
    """
    A lookup that cannot be answered fails after its deadline, counted from
    attach on the manager's clock, with a clear error.
    """
    await registry_server.stop()
    manager, clock = startedManager(
        connectionFromString(reactor, registry_server.description), unreachableWarning=None
    )
    lookup = manager.attach(Lookup({"a": "*"}, timeout=5))
    clock.advance(4.9)
    assert not lookup.deferred.called
    clock.advance(0.1)
    with pytest.raises(RegistryUnavailable, match="within 5 s"):
        await lookup.deferred
    assert manager.tasks == ()
    assert clock.getDelayedCalls() == []
    await bounded(manager.stopService())


@pytest_twisted.ensureDeferred
async def test_cancel(registry_server):
    """
    Cancelling a lookup's Deferred detaches it; detaching it cancels its
    Deferred.
    """
    await registry_server.stop()
    manager = managerFor(registry_server)
    first = manager.attach(Lookup({}, timeout=5))
    first.deferred.cancel()
    assert first.manager is None
    with pytest.raises(CancelledError):
        await first.deferred
    second = manager.attach(Lookup({}, timeout=5))
    await manager.detach(second)
    with pytest.raises(CancelledError):
        await second.deferred
    assert manager.tasks == ()
    await bounded(manager.stopService())


class Garbage(Protocol):
    def connectionMade(self):
        self.transport.write(b"'unterminated \x00garbage")
        self.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_malformedAnswerFailsAtOnce(manager, registry_server):
    """
    A find port that answers garbage fails the lookup at once with
    L{MalformedAnswer}, rather than waiting for the deadline.
    """
    port = reactor.listenTCP(0, Factory.forProtocol(Garbage), interface="127.0.0.1")
    try:
        description = "tcp:host=127.0.0.1:new=%d:find=%d:event=%d" % (
            registry_server.newPort,
            port.getHost().port,
            registry_server.eventPort,
        )
        bad = RegistryManager.fromDescription(reactor, description)
        bad.startService()
        with pytest.raises(MalformedAnswer):
            await bounded(bad.lookup({"a": "1"}, timeout=8), 5)
        assert bad.tasks == ()
        await bounded(bad.stopService())
    finally:
        await port.stopListening()


class Unanswered(MemoryConnection):
    """
    A registry whose change stream is ready and whose find port never
    answers.
    """

    def find(self, attrs):
        self.finds += 1
        return Deferred()


def test_deadlineSaysAFindWasUnanswered():
    """
    When the registry is reachable and the find is in flight, the deadline
    says so, rather than that the registry was not reachable.
    """
    manager, clock = startedManager(Unanswered())
    lookup = manager.attach(Lookup({"a": "*"}, timeout=5))
    clock.advance(1)
    assert manager.connection.finds == 1
    clock.advance(4)
    failure = lookup.deferred.result
    lookup.deferred.addErrback(lambda f: None)
    assert failure.check(RegistryUnavailable)
    assert str(failure.value) == (
        "lookup {'a': '*'} found no answer within 5 s: the registry was reachable, "
        "but the find sent 4 s ago was not answered yet"
    )
    manager.stopService()


def test_deadlineSaysTheRegistryWasNotReachable():
    connection = MemoryConnection()
    connection.reachable = False
    manager, clock = startedManager(connection)
    lookup = manager.attach(Lookup({}, timeout=2))
    clock.advance(2)
    failure = lookup.deferred.result
    lookup.deferred.addErrback(lambda f: None)
    assert str(failure.value).endswith("within 2 s: the registry was not reachable")
    manager.stopService()
