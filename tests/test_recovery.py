"""
Recovery: the registry crashes and comes back on the same ports, empty,
with 200 services and 20 monitors attached to one manager.
"""

import pytest_twisted
from support import (
    bounded,
    expectedView,
    managerFor,
    registryPorts,
    registryServices,
    turnUntil,
)

from txinferno.client.monitor import Monitor
from txinferno.client.service import ServiceTask
from txinferno.testing.recorders import ConnectionStateRecorder, MonitorRecorder
from txinferno.testing.sockets import clientSockets

SERVICES = 200
MONITORS = 20


@pytest_twisted.ensureDeferred
async def test_restartWithManyTasks(registry_server):
    """
    After the registry restarts empty on the same ports, every service is
    back, every monitor matches the registry having reported nothing but
    C{resynced()} (no service really changed), and the manager holds as
    many connections as before.
    """
    ports = registryPorts(registry_server)
    manager = managerFor(registry_server)
    states = ConnectionStateRecorder()
    manager.addObserver(states)
    recorders = [MonitorRecorder() for _ in range(MONITORS)]
    monitors = [Monitor({"group": str(g)}, r) for g, r in enumerate(recorders)]
    # Monitors attached before and after the services all wait for them.
    for monitor in monitors[: MONITORS // 2]:
        manager.attach(monitor)
    services = [
        manager.attach(
            ServiceTask("svc%03d" % i, {"group": str(i % MONITORS), "text": "it's %d\n" % i})
        )
        for i in range(SERVICES)
    ]
    for monitor in monitors[MONITORS // 2 :]:
        manager.attach(monitor)
    for recorder in recorders:
        await recorder.waitUntil(lambda r: r.count("resynced") == 1)
    for group, recorder in enumerate(recorders):
        assert recorder.kinds() == ["added"] * (SERVICES // MONITORS) + ["resynced"]
        assert recorder.view == expectedView(services, group)
    assert all(s.registered for s in services)
    assert len(registry_server.registry) == SERVICES
    before = [list(r.events) for r in recorders]
    # A listing's connection that the client is closing can be counted for
    # a turn or two under load: a leak never settles.
    connectionsBefore = SERVICES + 1
    await turnUntil(lambda: clientSockets(*ports) == connectionsBefore, 0.01)

    await registry_server.restart()
    assert len(registry_server.registry) == 0
    for recorder in recorders:
        await recorder.waitUntil(lambda r: r.count("resynced") == 2)
    assert states.events == ["connected", "lost", "connected"]
    assert all(s.registered for s in services)
    assert registryServices(registry_server) == {s.name: s.attrs for s in services}
    for group, recorder in enumerate(recorders):
        assert recorder.events == before[group] + [("resynced",)]
        assert recorder.view == expectedView(services, group)
    await turnUntil(lambda: clientSockets(*ports) == connectionsBefore, 0.01)

    await bounded(manager.stopService())
    assert clientSockets(*ports) == 0
