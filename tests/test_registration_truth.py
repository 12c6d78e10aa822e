"""
Registration truth over the TCP bridges (issue 14, items 1 and 2), against
the embedded registry over loopback: a registration is confirmed only by a
listing of exactly its attributes, a duplicate whose close the bridge
holds back is reported at once, a confirmed registration stays watched,
and confirmation works in a registry whose full listing is over the
answer limit.
"""

import pytest
import pytest_twisted
from support import bounded, managerFor, registryServices, whenRegistry

from txinferno.client.monitor import Monitor
from txinferno.client.service import ServiceTask
from txinferno.errors import RegistrationLost, RegistrationRejected
from txinferno.testing.recorders import MonitorRecorder as Recorder


class QuickService(ServiceTask):
    initialDelay = 0.05
    maxDelay = 0.3


@pytest.fixture
def held(proxy):
    """
    The fault proxy, its new port holding back the registry's closes, as
    the real bridge does for a duplicate made at the same moment as another
    registration.
    """
    proxy.new.holdCloses = True
    return proxy


async def holder(server, name, attrs):
    """
    @return: a manager holding C{name} with C{attrs}, and its task.
    """
    manager = managerFor(server)
    task = manager.attach(ServiceTask(name, attrs))
    await bounded(task.whenRegistered())
    return manager, task


@pytest.mark.parametrize("ours", [{"proto": "http"}, {}])
@pytest_twisted.ensureDeferred
async def test_heldBackDuplicateReportedAtOnce(registry_server, held, ours):
    """
    Our name is held with attributes that include ours and more (or, for
    a service without attributes, any): the registry rejects our line but
    its close never comes.  The registration is not confirmed: it fails
    with C{duplicate service name} at once (well before the 10 s
    registration timeout), and the registry still lists the other holder.
    """
    first, theirs = await holder(registry_server, "same", {"proto": "http", "owner": "a"})
    second = managerFor(held)
    try:
        ours = second.attach(QuickService("same", ours))
        with pytest.raises(RegistrationRejected) as caught:
            await bounded(ours.whenRegistered(), 3)
        assert caught.value.reason == "duplicate service name"
        assert not ours.registered
        assert registryServices(registry_server) == {"same": {"proto": "http", "owner": "a"}}
    finally:
        await bounded(second.stopService())
        await bounded(first.stopService())


@pytest_twisted.ensureDeferred
async def test_confirmedRegistrationWatched(registry_server, held):
    """
    The one undecidable case, another holder with exactly our name and
    attributes, is taken as ours; but once a later answer lists the name
    with attributes we never sent (the other holder updated its service),
    the registration is lost, the reason given.
    """
    first, theirs = await holder(registry_server, "same", {"proto": "http"})
    second = managerFor(held)
    try:
        ours = second.attach(QuickService("same", {"proto": "http"}))
        await bounded(ours.whenRegistered())
        lost = ours._registration.whenLost()
        recorder = Recorder()
        second.attach(Monitor({"proto": "http"}, recorder))
        await recorder.waitUntil(lambda r: r.count("resynced"))
        theirs.update({"load": "5"})
        with pytest.raises(RegistrationLost) as caught:
            await bounded(lost)
        assert (
            "duplicate service name: the registry lists it with attributes this "
            "registration never sent (load 5 proto http)" in str(caught.value)
        )
        assert registryServices(registry_server) == {"same": {"proto": "http", "load": "5"}}
    finally:
        await bounded(second.stopService())
        await bounded(first.stopService())


@pytest_twisted.ensureDeferred
async def test_registryLargerThanTheAnswerLimit(registry_server):
    """
    A registry whose full listing is three times the answer limit: a
    service, and a burst of services sharing attributes, still register,
    their finds asking for their own attributes.
    """
    for i in range(1500):
        registry_server.registry.register(
            object(), ["bulk%d" % i, "bulk", "1", "pad", "x" * 120, "n", str(i)]
        )
    limit = 64 * 1024
    manager = managerFor(registry_server, maxAnswerSize=limit)
    try:
        with pytest.raises(Exception, match="over the limit"):
            await bounded(manager.connection.find({}))
        one = manager.attach(ServiceTask("mine", {"proto": "http"}))
        burst = [
            manager.attach(ServiceTask("b%d" % i, {"group": "g", "n": str(i)})) for i in range(50)
        ]
        for task in [one] + burst:
            await bounded(task.whenRegistered())
        await whenRegistry(registry_server, lambda r: "mine" in r and "b49" in r)
    finally:
        await bounded(manager.stopService())
