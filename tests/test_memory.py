"""
Tests for L{txinferno.testing.memory.InMemoryRegistry}: the real client
and the real server joined in memory on one clock.
"""

import pytest
from support import failureResultOf, successResultOf

from txinferno import Monitor, RegistryManager, ServiceTask
from txinferno.errors import RegistrationRejected
from txinferno.server._logbudget import SUMMARY_INTERVAL
from txinferno.testing.memory import InMemoryRegistry
from txinferno.testing.recorders import MonitorRecorder


@pytest.fixture
def memory():
    registry = InMemoryRegistry()
    manager = RegistryManager.fromDescription(registry.reactor, registry.description)
    manager.startService()
    yield registry, manager
    d = manager.stopService()
    registry.advance(1)
    successResultOf(d)
    assert registry.connections() == 0
    # The server sums up the changes it did not log one by one (a burst's)
    # within a second, then leaves no call.
    registry.advance(SUMMARY_INTERVAL)
    assert registry.reactor.getDelayedCalls() == []


def test_registerWatchLookUpUpdateUnregister(memory):
    """
    A service registered through the real plugin is in the server's model,
    a monitor sees it and its update, a lookup finds it, and stopping the
    manager unregisters it: all on the memory reactor's clock.
    """
    registry, manager = memory
    recorder = MonitorRecorder(clock=registry.reactor)
    manager.attach(Monitor({"proto": "*"}, recorder))
    web = manager.attach(ServiceTask("tcp!host!80", {"proto": "http"}))
    registered = web.whenRegistered()
    registry.advance(1)
    assert successResultOf(registered) is web
    assert dict(registry.registry["tcp!host!80"].attributes()) == {"proto": "http"}
    assert recorder.view == {"tcp!host!80": {"proto": "http"}}
    found = manager.lookup({"proto": "http"})
    registry.flush()
    assert successResultOf(found) == {"tcp!host!80": {"proto": "http"}}
    web.update({"load": "0.5"})
    registry.advance(0.5)
    assert recorder.view == {"tcp!host!80": {"proto": "http", "load": "0.5"}}
    detached = manager.detach(web)
    registry.advance(0.5)
    successResultOf(detached)
    assert len(registry.registry) == 0
    assert recorder.view == {}


def test_burst(memory):
    """
    Two hundred services attached in one turn are all registered once, and
    the monitor's view is the registry's.
    """
    registry, manager = memory
    recorder = MonitorRecorder(clock=registry.reactor)
    manager.attach(Monitor({"group": "b"}, recorder))
    services = [manager.attach(ServiceTask("svc%03d" % i, {"group": "b"})) for i in range(200)]
    registry.advance(3)
    assert all(s.registered for s in services)
    assert len(registry.registry) == 200
    assert recorder.count("added") == 200 and recorder.count("removed") == 0
    assert set(recorder.view) == {s.name for s in services}


def test_duplicateRejected(memory):
    """
    A second manager registering a name the first holds is rejected with
    the registry's reason, while the first keeps it.
    """
    registry, manager = memory
    first = manager.attach(ServiceTask("same", {"owner": "1"}))
    registry.advance(1)
    assert first.registered
    other = RegistryManager.fromDescription(registry.reactor, registry.description)
    other.startService()
    second = other.attach(ServiceTask("same", {"owner": "2"}))
    outcome = second.whenRegistered()
    registry.advance(2)
    failure = failureResultOf(outcome, RegistrationRejected)
    assert failure.value.reason == "duplicate service name"
    assert dict(registry.registry["same"].attributes()) == {"owner": "1"}
    d = other.stopService()
    registry.advance(1)
    successResultOf(d)


def test_nothingHappensWithoutTime():
    """
    Time passes only when the test advances the clock: flushing moves the
    registration's line to the registry, but the client confirms it only
    once time has passed (its listing waits for the registry to have read
    the line).
    """
    registry = InMemoryRegistry()
    manager = RegistryManager.fromDescription(registry.reactor, registry.description)
    manager.startService()
    web = manager.attach(ServiceTask("web", {"proto": "http"}))
    registered = web.whenRegistered()
    registry.flush()
    assert "web" in registry.registry
    assert not registered.called
    registry.advance(1)
    assert successResultOf(registered) is web
    d = manager.stopService()
    registry.advance(1)
    successResultOf(d)
    assert len(registry.registry) == 0
