"""
The long fault runs of issue 5: python bench/faults.py [--quick]

Runs the real client (manager, services, monitors) against the embedded
registry, through L{txinferno.testing.faultproxy.RegistryFaultProxy} where the
network misbehaves, and prints a table: scenario, cycles, services, lost,
duplicated, leaked, worst detection time, worst restore time.

  - restart: the registry crashes and comes back empty on the same ports
    (50 cycles, 500 services, 50 monitors);
  - blackhole: the path stops forwarding without closing anything; the
    liveness probe (1 s interval, 1 s timeout) must notice, and everything
    is restored once the path works again (10 cycles, 100 services);
  - one-byte: every chunk on every port forwarded one byte at a time, and
    every connection reset once per cycle (5 cycles, 50 services);
  - cut-event: the change stream cut in the middle of a change report
    (20 cycles, 50 services);
  - duplicate: two managers register the same name; exactly one may hold
    it, the other takes it over when the first stops (20 cycles);
  - reload: the agent's services file rewritten (services added, dropped,
    and shrunk, which registers them anew) and reloaded twice in one turn
    of the reactor or 1 ms apart, as two close SIGHUPs do (20 cycles, 100
    services).

Counted after each cycle, once restored: I{lost} is a service missing from
the registry or from the view of a monitor that should see it, or a service
the client does not hold; I{duplicated} is a registration connection beyond
one per service (or both managers holding the name); I{leaked} is a client
socket to the registry left after the managers stop, or a timer left on the
reactor.
"""

import os
import sys
import tempfile
import time

from twisted.internet import defer, task

from txinferno.agent import Agent  # noqa: E402
from txinferno.client.manager import RegistryManager  # noqa: E402
from txinferno.client.monitor import Monitor  # noqa: E402
from txinferno.client.observers import MonitorObserver  # noqa: E402
from txinferno.client.service import ServiceTask  # noqa: E402
from txinferno.errors import RegistrationRejected  # noqa: E402
from txinferno.testing import EmbeddedRegistry  # noqa: E402
from txinferno.testing.faultproxy import RegistryFaultProxy  # noqa: E402
from txinferno.testing.recorders import ConnectionStateRecorder  # noqa: E402
from txinferno.testing.sockets import clientSockets  # noqa: E402

RESTORE_TIMEOUT = 60
PROBE = {"probeInterval": 1.0, "probeTimeout": 1.0}


class QuickService(ServiceTask):
    initialDelay = 0.1
    maxDelay = 1.0


class Counter(MonitorObserver):
    """
    Counts reports that a consistent stream of reports never makes.
    """

    def __init__(self):
        self.view = {}
        self.wrong = 0

    def added(self, name, attrs):
        self.wrong += name in self.view
        self.view[name] = attrs

    def updated(self, name, attrs, previous):
        self.wrong += self.view.get(name) != previous
        self.view[name] = attrs

    def removed(self, name, attrs):
        self.wrong += self.view.pop(name, None) != attrs


class Row:
    def __init__(self, scenario, cycles, services):
        self.scenario = scenario
        self.cycles = cycles
        self.services = services
        self.lost = self.duplicated = self.leaked = 0
        self.detection = self.restore = 0.0


async def pause(reactor, seconds):
    await task.deferLater(reactor, seconds, lambda: None)


async def until(reactor, predicate, timeout=RESTORE_TIMEOUT):
    """
    Poll C{predicate} every 20 ms (a benchmark, not a test) until it holds.

    @return: whether it held before C{timeout}.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await pause(reactor, 0.02)
    return True


class Setup:
    """
    One registry, an optional proxy, one manager with services and monitors.
    """

    def __init__(self, reactor, server, target, services, monitors, **options):
        self.reactor = reactor
        self.server = server
        self.target = target
        self.manager = RegistryManager.fromDescription(
            reactor, target.description, initialDelay=0.1, maxDelay=1.0, **options
        )
        self.states = ConnectionStateRecorder()
        self.manager.addObserver(self.states)
        self.counters = [Counter() for _ in range(monitors)]
        self.monitors = [
            self.manager.attach(Monitor({"group": str(g)}, c)) for g, c in enumerate(self.counters)
        ]
        self.services = [
            self.manager.attach(
                QuickService("svc%04d" % i, {"group": str(i % max(monitors, 1)), "n": str(i)})
            )
            for i in range(services)
        ]
        self.manager.startService()

    def held(self):
        return {s.name: dict(s.attributes()) for s in self.server.registry}

    def missing(self):
        held = self.held()
        count = sum(1 for s in self.services if held.get(s.name) != s.attrs or not s.registered)
        for group, monitor in enumerate(self.monitors):
            wanted = {n: a for n, a in held.items() if a.get("group") == str(group)}
            names = set(wanted) | set(monitor.services)
            count += sum(1 for n in names if wanted.get(n) != monitor.services.get(n))
        return count

    def extraRegistrations(self):
        if isinstance(self.target, RegistryFaultProxy):
            newPort = self.target.new.port
        else:
            newPort = self.target.newPort
        return max(0, clientSockets(newPort) - len(self.services))

    async def settle(self):
        start = time.monotonic()
        await until(
            self.reactor, lambda: self.missing() == 0 and all(m.synced for m in self.monitors)
        )
        return time.monotonic() - start

    def count(self, row):
        row.lost += self.missing()
        row.duplicated += self.extraRegistrations() + sum(c.wrong for c in self.counters)
        for c in self.counters:
            c.wrong = 0

    async def stop(self, row, ports):
        await self.manager.stopService()
        await until(self.reactor, lambda: clientSockets(*ports) == 0, 5)
        row.leaked += clientSockets(*ports)


def serverPorts(server):
    return (server.newPort, server.findPort, server.eventPort)


def proxyPorts(proxy):
    return [p.port for p in proxy.proxies]


async def restartScenario(reactor, server, cycles, services, monitors):
    row = Row("restart", cycles, services)
    setup = Setup(reactor, server, server, services, monitors)
    await setup.settle()
    for _ in range(cycles):
        await server.restart()
        row.restore = max(row.restore, await setup.settle())
        setup.count(row)
    await setup.stop(row, serverPorts(server))
    return row


async def blackholeScenario(reactor, server, proxy, cycles, services, monitors):
    row = Row("blackhole", cycles, services)
    setup = Setup(reactor, server, proxy, services, monitors, **PROBE)
    await setup.settle()
    for _ in range(cycles):
        before = len(setup.states.timesOf("lost"))
        start = time.monotonic()
        proxy.setBlackhole(True)
        if await until(reactor, lambda: len(setup.states.timesOf("lost")) > before, 30):
            row.detection = max(row.detection, setup.states.timesOf("lost")[-1] - start)
        else:
            row.detection = float("inf")
        proxy.setBlackhole(False)
        row.restore = max(row.restore, await setup.settle())
        setup.count(row)
    await setup.stop(row, proxyPorts(proxy))
    return row


async def oneByteScenario(reactor, server, proxy, cycles, services, monitors):
    row = Row("one-byte", cycles, services)
    for p in proxy.proxies:
        p.oneByteChunks = True
    setup = Setup(reactor, server, proxy, services, monitors)
    await setup.settle()
    for _ in range(cycles):
        before = len(setup.states.timesOf("lost"))
        await proxy.resetAll()
        await until(reactor, lambda: len(setup.states.timesOf("lost")) > before, 30)
        row.restore = max(row.restore, await setup.settle())
        setup.count(row)
    await setup.stop(row, proxyPorts(proxy))
    for p in proxy.proxies:
        p.oneByteChunks = False
    return row


async def cutEventScenario(reactor, server, proxy, cycles, services, monitors):
    row = Row("cut-event", cycles, services)
    setup = Setup(reactor, server, proxy, services, monitors)
    await setup.settle()
    for cycle in range(cycles):
        before = len(setup.states.timesOf("lost"))
        start = time.monotonic()
        proxy.event.cutNextChunk()
        setup.services[cycle % services].update({"cycle": str(cycle)})
        if await until(reactor, lambda: len(setup.states.timesOf("lost")) > before, 30):
            row.detection = max(row.detection, setup.states.timesOf("lost")[-1] - start)
        row.restore = max(row.restore, await setup.settle())
        setup.count(row)
    await setup.stop(row, proxyPorts(proxy))
    return row


async def duplicateScenario(reactor, server, cycles):
    row = Row("duplicate", cycles, 1)
    for cycle in range(cycles):
        managers = [
            RegistryManager.fromDescription(reactor, server.description, initialDelay=0.1)
            for _ in range(2)
        ]
        services = [m.attach(QuickService("same", {"owner": str(i)})) for i, m in enumerate(managers)]
        outcomes = [s.whenRegistered() for s in services]
        for m in managers:
            m.startService()
        rejected = 0
        for d in outcomes:
            try:
                await d
            except RegistrationRejected:
                rejected += 1
        holders = [i for i, s in enumerate(services) if s.registered]
        row.duplicated += len(holders) > 1 or rejected != 1
        row.lost += len(holders) == 0
        if len(holders) != 1:
            continue
        winner, loser = holders[0], 1 - holders[0]
        start = time.monotonic()
        await managers[winner].stopService()
        took = await until(reactor, lambda: services[loser].registered, 30)
        row.restore = max(row.restore, time.monotonic() - start)
        row.lost += not took or server.registry["same"].get("owner") != str(loser)
        await managers[loser].stopService()
        await until(reactor, lambda: len(server.registry) == 0, 5)
    row.leaked += clientSockets(*serverPorts(server))
    return row


def servicesText(cycle, services):
    """
    The services file of one cycle: most services the same, a tenth of them
    shrunk or grown in turn, a tenth dropped or back.
    """
    lines = []
    for i in range(services):
        if i % 10 == 1 and cycle % 2:
            continue
        attrs = "n=%d" % i
        if i % 10 == 0 and not cycle % 2:
            attrs += " extra=%d" % cycle
        lines.append("service=rel%04d %s\n" % (i, attrs))
    return "".join(lines)


def fileServices(text):
    wanted = {}
    for line in text.splitlines():
        name, *pairs = line.split()
        wanted[name[len("service="):]] = dict(p.split("=") for p in pairs)
    return wanted


async def reloadScenario(reactor, server, cycles, services):
    row = Row("reload", cycles, services)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "services")
        text = servicesText(0, services)
        with open(path, "w") as f:
            f.write(text)
        agent = Agent(lambda: RegistryManager.fromDescription(
            reactor, server.description, initialDelay=0.1, maxDelay=1.0), servicesFile=path)
        agent.startService()

        def held():
            return {s.name: dict(s.attributes()) for s in server.registry}

        await until(reactor, lambda: held() == fileServices(text))
        for cycle in range(1, cycles + 1):
            text = servicesText(cycle, services)
            with open(path, "w") as f:
                f.write(text)
            # Two SIGHUPs: in one turn of the reactor, or 1 ms apart.
            first = agent.reload()
            second = agent.reload() if cycle % 2 else task.deferLater(reactor, 0.001, agent.reload)
            await first
            await second
            start = time.monotonic()
            wanted = fileServices(text)
            await until(reactor, lambda: held() == wanted, 30)
            row.restore = max(row.restore, time.monotonic() - start)
            current = held()
            row.lost += sum(1 for n, a in wanted.items() if current.get(n) != a)
            row.lost += sum(1 for n in current if n not in wanted)
            names = [t.name for t in agent.manager.tasks if isinstance(t, ServiceTask)]
            row.duplicated += len(names) - len(set(names))
            row.duplicated += max(0, clientSockets(server.newPort) - len(wanted))
        await agent.stopService()
        await until(reactor, lambda: clientSockets(*serverPorts(server)) == 0, 5)
        row.leaked += clientSockets(*serverPorts(server)) + len(server.registry)
    return row


def printTable(rows):
    header = ("scenario", "cycles", "services", "lost", "duplicated", "leaked",
              "worst detection s", "worst restore s")
    print("%-10s %6s %8s %5s %10s %6s %17s %15s" % header)
    for r in rows:
        print("%-10s %6d %8d %5d %10d %6d %17.3f %15.3f" % (
            r.scenario, r.cycles, r.services, r.lost, r.duplicated, r.leaked,
            r.detection, r.restore))


async def main(reactor, quick=False):
    scale = (lambda full, short: short) if quick else (lambda full, short: full)
    server = EmbeddedRegistry(reactor)
    await server.start()
    proxy = RegistryFaultProxy(reactor, server.host, *serverPorts(server))
    await proxy.start()
    timers = len(reactor.getDelayedCalls())
    rows = [
        await restartScenario(reactor, server, scale(50, 5), scale(500, 100), scale(50, 10)),
        await blackholeScenario(reactor, server, proxy, scale(10, 3), scale(100, 20), scale(10, 4)),
        await oneByteScenario(reactor, server, proxy, scale(5, 2), scale(50, 10), scale(5, 2)),
        await cutEventScenario(reactor, server, proxy, scale(20, 5), scale(50, 10), scale(5, 2)),
        await duplicateScenario(reactor, server, scale(20, 5)),
        await reloadScenario(reactor, server, scale(20, 5), scale(100, 20)),
    ]
    await pause(reactor, 0.5)
    rows[-1].leaked += max(0, len([c for c in reactor.getDelayedCalls() if c.active()]) - timers)
    await proxy.stop()
    await server.stop()
    printTable(rows)
    bad = any(r.lost or r.duplicated or r.leaked for r in rows)
    if bad:
        raise SystemExit(1)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, "--quick" in sys.argv)))
