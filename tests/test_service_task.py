"""
Tests for L{txinferno.client.service.ServiceTask} against the embedded registry over
loopback TCP, and of its retry backoff on a L{Clock}.
"""

import random

import pytest
import pytest_twisted
from support import (
    bounded,
    managerFor,
    registryServices,
    startedManager,
)
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.logger import LogLevel, globalLogPublisher
from zope.interface.verify import verifyObject

from txinferno.client.monitor import Monitor
from txinferno.client.service import ServiceTask
from txinferno.client.tcp import connectionFromString
from txinferno.errors import RegistrationLost, RegistrationRejected
from txinferno.interfaces import IRegistryTask
from txinferno.testing import connectRaw
from txinferno.testing.recorders import ConnectionStateRecorder, MonitorRecorder
from txinferno.testing.sockets import clientSockets


async def watching(manager, attrs=()):
    """
    @return: a recorder of a monitor of C{attrs}, once it has its first
        view.
    """
    recorder = MonitorRecorder()
    manager.attach(Monitor(attrs, recorder))
    await recorder.waitUntil(lambda r: r.count("resynced"))
    return recorder


async def holdName(server, name):
    """
    Register C{name} by hand and keep it; the raw connection.
    """
    raw = await bounded(connectRaw(reactor, server.host, server.newPort))
    raw.send(b"%s holder 1\n" % (name.encode(),))
    return raw


def retries(clock):
    """
    @return: the calls C{clock} has for later (not the manager's refresh,
        due now).
    """
    return [c for c in clock.getDelayedCalls() if c.getTime() > clock.seconds()]


def test_provides():
    verifyObject(IRegistryTask, ServiceTask("svc", {"a": "1"}))


@pytest.mark.parametrize(
    "name, attrs, message",
    [
        ("two words", {}, "bad character in service name"),
        ("a/b", {}, "bad character in service name"),
        ("new", {}, "bad service name"),
        ("", {}, "bad service name"),
        ("svc", {"a": "x\x00y"}, "NUL"),
        ("svc", {"": "v"}, "empty attribute name"),
        ("svc", ["odd"], "odd attribute set"),
        ("svc", {"big": "x" * 9000}, "over the registry's limit"),
    ],
)
def test_invalidAtConstruction(name, attrs, message):
    """
    What the registry would reject is a L{ValueError} at once.
    """
    with pytest.raises(ValueError, match=message):
        ServiceTask(name, attrs)


@pytest_twisted.ensureDeferred
async def test_registerUpdateUnregister(manager, registry_server):
    """
    A service is registered while attached, its updates reach the registry,
    and detaching unregisters it.
    """
    recorder = await watching(manager)
    svc = manager.attach(ServiceTask("svc", [("a", "1"), ("b", "2"), ("c", "3")]))
    assert await bounded(svc.whenRegistered()) is svc
    assert svc.registered
    assert registryServices(registry_server)["svc"] == {"a": "1", "b": "2", "c": "3"}
    assert (await svc.whenRegistered()) is svc
    await recorder.waitUntil(lambda r: "svc" in r.view)
    version = registry_server.registry.version
    svc.update({"a": "1", "b": "2"})
    assert registry_server.registry.version == version
    svc.update({"a": "1", "b": "2", "c": "9"})
    await recorder.waitUntil(lambda r: r.view.get("svc", {}).get("c") == "9")
    # Only c was sent: resending a would have moved the others (spec 3).
    assert registry_server.registry["svc"].attributes() == [("c", "9"), ("b", "2"), ("a", "1")]
    assert svc.attrs == {"a": "1", "b": "2", "c": "9"}
    await bounded(manager.detach(svc))
    assert svc.manager is None and not svc.registered
    await recorder.waitUntil(lambda r: "svc" not in r.view)
    assert "svc" not in registry_server.registry
    assert recorder.kinds() == ["resynced", "added", "updated", "removed"]


@pytest.mark.parametrize(
    "attrs",
    [
        {"descr": "two words", "q": "it's", "nl": "x\ny", "uni": "\u00fc\u4e2d", "empty": ""},
        {"tab": "a\tb", "cr": "v\r", "eq": "a=b", "star": "*x", "sp": " lead"},
    ],
)
@pytest_twisted.ensureDeferred
async def test_valuesRoundTrip(manager, registry_server, attrs):
    """
    Values with spaces, quotes, newlines, tabs and non-ASCII reach the
    registry and come back intact; each can be looked up exactly.
    """
    svc = manager.attach(ServiceTask("q1", attrs))
    await bounded(svc.whenRegistered())
    assert registryServices(registry_server)["q1"] == attrs
    recorder = await watching(manager)
    assert recorder.view == {"q1": attrs}
    for attr, value in attrs.items():
        found = await bounded(manager.lookup({attr: value}))
        assert found == {"q1": attrs}, (attr, value)


@pytest_twisted.ensureDeferred
async def test_persist(manager, registry_server):
    """
    A persistent service stays in the registry after it is detached.
    """
    recorder = await watching(manager)
    kept = manager.attach(ServiceTask("kept", {"a": "1"}, persist=True))
    gone = manager.attach(ServiceTask("gone", {"a": "2"}))
    await bounded(kept.whenRegistered())
    await bounded(gone.whenRegistered())
    assert registryServices(registry_server)["kept"] == {"a": "1", "persist": "1"}
    await recorder.waitUntil(lambda r: {"kept", "gone"} <= set(r.view))
    await bounded(manager.detach(kept))
    await bounded(manager.detach(gone))
    await recorder.waitUntil(lambda r: "gone" not in r.view)
    assert "kept" in registry_server.registry
    assert recorder.count("removed") == 1


@pytest_twisted.ensureDeferred
async def test_duplicateReportedAndRetried(manager, registry_server):
    """
    A name someone else holds is reported (C{whenRegistered} fails with the
    reason) and retried until it is free.
    """
    holder = await holdName(registry_server, "dup")
    recorder = await watching(manager)
    await recorder.waitUntil(lambda r: "dup" in r.view)
    svc = manager.attach(ServiceTask("dup", {"mine": "yes"}))
    with pytest.raises(RegistrationRejected) as caught:
        await bounded(svc.whenRegistered())
    assert caught.value.reason == "duplicate service name"
    assert caught.value.name == "dup"
    assert not svc.registered
    waiting = svc.whenRegistered()
    await holder.close()
    await bounded(waiting)
    await recorder.waitUntil(lambda r: r.view.get("dup") == {"mine": "yes"})


@pytest_twisted.ensureDeferred
async def test_lostRegistrationComesBack(manager, registry_server):
    """
    A registration the registry closes while the manager stays connected is
    made again.
    """
    recorder = await watching(manager)
    svc = manager.attach(ServiceTask("svc", {"a": "1"}))
    await bounded(svc.whenRegistered())
    registry_server.registry["svc"].owner.transport.abortConnection()
    await recorder.waitUntil(lambda r: "svc" not in r.view)
    await recorder.waitUntil(lambda r: r.view.get("svc") == {"a": "1"})
    await bounded(svc.whenRegistered())
    assert svc.registered and manager.connected


@pytest_twisted.ensureDeferred
async def test_detachDuringAttemptCancelsIt(manager, registry_server):
    """
    Detaching services whose registrations are still connecting (or waiting
    their turn) gives them up at once: the registry never sees them and no
    connection is left.
    """
    version = registry_server.registry.version
    services = [manager.attach(ServiceTask("svc%d" % i, {"n": str(i)})) for i in range(100)]
    await bounded(defer.gatherResults([manager.detach(s) for s in services]))
    kept = manager.attach(ServiceTask("kept", {}))
    await bounded(kept.whenRegistered())
    assert registry_server.registry.version == version + 1
    assert set(registryServices(registry_server)) == {"kept"}
    await bounded(manager.detach(kept))
    assert clientSockets(registry_server.newPort) == 0


@pytest_twisted.ensureDeferred
async def test_updateWhileDisconnected(registry_server):
    """
    An update made while the registry is away is remembered and sent with
    the next registration; no connection is left behind.
    """
    ports = (registry_server.newPort, registry_server.findPort, registry_server.eventPort)
    manager = managerFor(registry_server)
    state = ConnectionStateRecorder()
    manager.addObserver(state)
    svc = manager.attach(ServiceTask("svc", {"a": "1"}))
    await bounded(svc.whenRegistered())
    streamLost = state.next("lost")
    lost = svc._registration.whenLost()
    lost.addErrback(lambda f: f.trap(RegistrationLost))
    await registry_server.stop()
    await streamLost
    await bounded(lost)
    assert not svc.registered
    svc.update({"a": "2", "b": "x y"})
    assert svc.attrs == {"a": "2", "b": "x y"}
    await registry_server.start()
    await bounded(svc.whenRegistered())
    assert registryServices(registry_server)["svc"] == {"a": "2", "b": "x y"}
    with pytest.raises(ValueError, match="NUL"):
        svc.update({"c": "\x00"})
    assert svc.attrs == {"a": "2", "b": "x y"}
    await bounded(manager.stopService())
    assert clientSockets(*ports) == 0


@pytest_twisted.ensureDeferred
async def test_backoffTiming(registry_server):
    """
    A rejected registration is retried after C{0.5}, then each delay grows
    by C{e} up to C{5} s (no jitter here); detaching stops the retries.
    """
    manager, clock = startedManager(connectionFromString(reactor, registry_server.description))
    await bounded(manager.whenConnected())
    holder = await holdName(registry_server, "dup")
    svc = ServiceTask("dup", {})
    svc.jitter = 0
    waiting = svc.whenRegistered()
    manager.attach(svc)
    clock.advance(0)
    delays = []
    for _ in range(7):
        with pytest.raises(RegistrationRejected):
            await bounded(waiting)
        [call] = retries(clock)
        delays.append(call.getTime() - clock.seconds())
        waiting = svc.whenRegistered()
        clock.advance(delays[-1])
    assert delays == pytest.approx([0.5, 1.35914, 3.69453, 5, 5, 5, 5], rel=1e-4)
    with pytest.raises(RegistrationRejected):
        await bounded(waiting)
    await bounded(manager.detach(svc))
    assert retries(clock) == []
    await holder.close()
    await bounded(manager.stopService())


@pytest_twisted.ensureDeferred
async def test_backoffJitter(registry_server):
    """
    With jitter each delay is spread around its nominal value; once the
    name is free the next attempt registers the service.
    """
    random.seed(3)
    manager, clock = startedManager(connectionFromString(reactor, registry_server.description))
    await bounded(manager.whenConnected())
    holder = await holdName(registry_server, "dup")
    svc = manager.attach(ServiceTask("dup", {}))
    clock.advance(0)
    nominal = [0.5, 0.5 * svc.factor, 0.5 * svc.factor**2]
    delays = []
    for _ in nominal:
        with pytest.raises(RegistrationRejected):
            await bounded(svc.whenRegistered())
        [call] = retries(clock)
        delays.append(call.getTime() - clock.seconds())
        clock.advance(delays[-1])
    assert all(0.6 * n < d < 1.4 * n for d, n in zip(delays, nominal)), delays
    assert delays != pytest.approx(nominal, rel=1e-6)
    waiting = svc.whenRegistered()
    with pytest.raises(RegistrationRejected):
        await bounded(waiting)
    await holder.close()
    [call] = clock.getDelayedCalls()
    clock.advance(call.getTime() - clock.seconds())
    await bounded(svc.whenRegistered())
    assert retries(clock) == []
    await bounded(manager.stopService())
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_rejectedBurstLoggedInFewLines(manager, registry_server):
    """
    A second manager with the same hundred names (a second agent started
    by mistake): every registration is rejected, and the log says so in a
    few lines, each with its services' names, rather than a hundred; the
    retries, rejected for the same reason, add none.
    """
    names = ["svc%d" % i for i in range(100)]
    held = [manager.attach(ServiceTask(name, {"first": "1"})) for name in names]
    await bounded(defer.gatherResults([s.whenRegistered() for s in held]))
    warnings = []
    unnamed = set(names)
    covered = Deferred()

    def observe(event):
        if event["log_level"] == LogLevel.warn and "failed" in event["log_format"]:
            warnings.append(event)
            unnamed.difference_update(event.get("names", [event.get("name")]))
            if not unnamed and not covered.called:
                covered.callback(len(warnings))

    globalLogPublisher.addObserver(observe)
    second = managerFor(registry_server)
    try:
        duplicates = [ServiceTask(name, {"second": "1"}) for name in names]
        for svc in duplicates:
            svc.initialDelay = 0.05
            second.attach(svc)
        for round in range(3):
            rejected = [s.whenRegistered() for s in duplicates]
            for d in rejected:
                with pytest.raises(RegistrationRejected, match="duplicate service name"):
                    await bounded(d)
            if round == 0:
                lines = await bounded(covered)
                assert lines <= 5
        assert len(warnings) == lines
        assert all(w["reason"] == "duplicate service name" for w in warnings)
    finally:
        globalLogPublisher.removeObserver(observe)
        await bounded(second.stopService())
