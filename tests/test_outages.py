"""
Outages as the client sees and logs them (issue 14, items 5 and 6; issue
11, item 8): an outage of the event port alone keeps the registrations
whose own connections hold; the losses of a registry that dies are logged
as losses, in one line; a registry unreachable for long is warned about.
"""

import pytest_twisted
from support import bounded, logLines, managerFor, registryServices, startedManager, whenRegistry
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import LogLevel

from txinferno.client.monitor import Monitor
from txinferno.client.service import ServiceTask
from txinferno.testing.memory import MemoryConnection
from txinferno.testing.recorders import ConnectionStateRecorder as States
from txinferno.testing.recorders import MonitorRecorder as Recorder


async def registered(manager, prefix, count):
    """
    Attach C{count} services and wait until they are registered.

    @return: the services, and their registrations.
    """
    services = [
        manager.attach(ServiceTask("%s%d" % (prefix, i), {"n": str(i)})) for i in range(count)
    ]
    for service in services:
        await bounded(service.whenRegistered())
    return services, [s._registration for s in services]


@pytest_twisted.ensureDeferred
async def test_eventPortOutageKeepsRegistrations(registry_server, proxy):
    """
    The event port alone goes away (refused, its connection reset) while
    the new port works: every service stays registered on the same
    connection, the registry never loses one (another client's monitor
    sees no removal), the client's own monitor waits for the stream and
    catches up when it is back.
    """
    watcher = managerFor(registry_server)
    manager = managerFor(proxy, maxDelay=0.2)
    try:
        states = States()
        manager.addObserver(states)
        services, registrations = await registered(manager, "svc", 10)
        other = Recorder()
        watcher.attach(Monitor({"n": "*"}, other))
        await other.waitUntil(lambda r: len(r.view) == 10)
        ours = Recorder()
        monitor = manager.attach(Monitor({"n": "*"}, ours))
        await ours.waitUntil(lambda r: len(r.view) == 10)

        lost = states.next("lost")
        await proxy.event.refuse()
        await proxy.event.resetAll()
        await lost
        assert not manager.connected
        assert all(s.registered for s in services)
        assert [s._registration for s in services] == registrations
        # A change the client's monitor cannot follow meanwhile.
        registry_server.registry.register(object(), ["late", "n", "x"])
        await other.waitUntil(lambda r: "late" in r.view)

        connected = states.next("connected")
        await proxy.event.accept()
        await connected
        await ours.waitUntil(lambda r: "late" in r.view)
        assert [s._registration for s in services] == registrations
        assert other.count("removed") == 0
        assert len(registryServices(registry_server)) == 11
        assert monitor.services == other.view
    finally:
        await bounded(manager.stopService())
        await bounded(watcher.stopService())


@pytest_twisted.ensureDeferred
async def test_registryDeathLoggedAsLossesInOneLine(registry_server, logged):
    """
    When the registry dies, its closes arrive over many turns: the losses
    are logged as one warning line, and not one service is logged as
    unregistered.
    """
    manager = managerFor(registry_server, maxDelay=0.2)
    try:
        services = [manager.attach(ServiceTask("svc%d" % i, {"n": str(i)})) for i in range(200)]
        for service in services:
            await bounded(service.whenRegistered())
        lost = [s._registration.whenLost() for s in services]
        for d in lost:
            d.addErrback(lambda f: None)
        del logged[:]
        await registry_server.stop()
        for d in lost:
            await bounded(d)
        await registry_server.start()
        for service in services:
            await bounded(service.whenRegistered())
        losses = [line for line in logLines(logged) if "lost" in line and "registration" in line]
        assert len(losses) == 1, losses
        assert losses[0].startswith("200 registrations lost: ")
        assert not [line for line in logLines(logged) if "unregistered" in line]
    finally:
        await bounded(manager.stopService())


def test_unreachableWarning(logged):
    """
    A registry unreachable for C{unreachableWarning} seconds from the
    manager's start, or from the loss of its stream, is warned about once.
    """
    connection = MemoryConnection()
    connection.reachable = False
    manager, clock = startedManager(connection, unreachableWarning=5)
    clock.advance(4.9)
    assert logLines(logged, LogLevel.warn) == []
    clock.advance(0.1)
    assert logLines(logged, LogLevel.warn) == ["registry memory unreachable for 5 s; still trying"]
    connection.recover()
    del logged[:]
    connection.crash()
    clock.advance(10)
    warnings = logLines(logged, LogLevel.warn)
    assert warnings[-1] == "registry memory unreachable for 5 s; still trying"
    assert len(warnings) == 2
    connection.recover()
    clock.advance(10)
    assert len(logLines(logged, LogLevel.warn)) == 2
    manager.stopService()
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_stallThenResume(registry_server, proxy, logged):
    """
    The registry stalls (a stopped process: its kernel accepts and queues,
    it answers nothing) while services are being registered, and resumes:
    the probe declares it lost, the attempts made during the stall time
    out and are given up, and once it resumes, their lines, read late,
    win no name: every service ends registered once, on a live
    connection, none rejected as a duplicate, and the registry holds
    exactly them; the services registered before the stall kept their
    connections throughout.
    """
    manager = managerFor(proxy, findTimeout=0.5, probeInterval=0.3, probeTimeout=0.3, maxDelay=0.3)
    try:
        states = States()
        manager.addObserver(states)
        held, registrations = await registered(manager, "held", 5)
        lost = states.next("lost")
        proxy.stall()
        late = [manager.attach(ServiceTask("late%d" % i, {"n": str(i)})) for i in range(5)]
        await deferLater(reactor, 0, lambda: None)  # the turn they start on
        attempts = [s._registering for s in late]
        await lost
        for attempt in attempts:
            attempt.addErrback(lambda f: None)
            await bounded(attempt)
        assert not any(s.registered for s in late)
        rejected = []
        for service in late:
            service.whenRegistered().addErrback(rejected.append)
        connected = states.next("connected")
        # The registry reads the queued lines, and their closes a while
        # later, as the real one works through its queue.
        proxy.new.closeDelay = 1.0
        proxy.resume()
        await connected
        for service in held + late:
            await bounded(service.whenRegistered())
        wanted = {s.name: s.attrs for s in held + late}
        await whenRegistry(registry_server, lambda r: registryServices(registry_server) == wanted)
        assert rejected == []
        assert all(s.registered for s in held + late)
        # The services registered before the stall kept their connections.
        assert [s._registration for s in held] == registrations
        assert proxy.new.connections == len(wanted)
    finally:
        await bounded(manager.stopService())
