"""
The long fault runs of issue 5: python bench/faults.py [--quick]

Runs the real client (manager, services, monitors) against the embedded
registry, through L{txinferno.testing.faultproxy.RegistryFaultProxy} where the
network misbehaves, and prints a table: scenario, cycles, services, lost,
duplicated, leaked, worst detection time, worst restore time.

  - restart: the registry crashes and comes back empty on the same ports
    (50 cycles, 500 services, 50 monitors);
  - blackhole: the path stops forwarding without closing anything; the
    liveness probe (1 s interval, 1 s timeout) must notice within its
    interval plus its timeout and a margin of DETECTION_MARGIN, and
    everything is restored once the path works again (10 cycles, 100
    services);
  - one-byte: every chunk on every port forwarded one byte at a time, and
    every connection reset once per cycle (5 cycles, 50 services);
  - cut-event: the change stream cut in the middle of a change report
    (20 cycles, 50 services);
  - duplicate: two managers register the same name; exactly one may hold
    it, the other takes it over when the first stops (20 cycles);
  - slow-watchers: 500 event watchers that never read (small receive
    buffers) while services change; every one must be dropped, the
    monitors that read see every change (10 cycles);
  - slow-finds: 100 clients ask for a 5 MB listing and never read while
    services change and small finds go on; the worst small find is the
    detection column (10 cycles);
  - persistent-flood: one address registers persistent services and drops
    each connection, 3,000 of them, past its limit of 1,000; exactly the
    first 1,000 may stay (the registry is restarted empty after);
  - reload: the agent's services file rewritten (services added, dropped,
    and shrunk, which registers them anew) and reloaded twice in one turn
    of the reactor or 1 ms apart, as two close SIGHUPs do (20 cycles, 100
    services).
  - burst-dup: a second manager registers the first one's 50 names, with
    fewer attributes, while the new port holds back the registry's closes
    (the real bridge's behaviour under concurrency, spec section 4): every
    attempt must be reported a duplicate, none taken as registered (5
    cycles); detection is the time until the last is reported;
  - large: 100 services register in a registry of 50,000 services of
    1 KB, whose full listing (about 50 MB) is over the answer limit; the
    restore time is the time until all are registered and seen (1 cycle);
  - stall: the registry stalls (bytes and closes held, as for a stopped
    process) while new services are being registered, the probe declares
    it lost, their attempts time out; then it resumes, reading the queued
    lines before their closes: no stale attempt may win a name (5 cycles,
    50 services, 5 more each cycle).

Counted after each cycle, once restored: I{lost} is a service missing from
the registry or from the view of a monitor that should see it, or a service
the client does not hold; I{duplicated} is a registration connection beyond
one per service (or both managers holding the name); I{leaked} is a client
socket to the registry left after the managers stop, or a timer left on the
reactor.  The last column is the growth of this process's resident
memory (server and clients) over the scenario, in MB.
"""

import os
import socket
import sys
import tempfile
import time

from server_bench import rss
from twisted.internet import defer, task

from txinferno.agent import Agent  # noqa: E402
from txinferno.client.manager import RegistryManager  # noqa: E402
from txinferno.client.monitor import Monitor  # noqa: E402
from txinferno.client.observers import MonitorObserver  # noqa: E402
from txinferno.client.service import ServiceTask  # noqa: E402
from txinferno.errors import RegistrationRejected  # noqa: E402
from txinferno.server.protocols import FindServerProtocol  # noqa: E402
from txinferno.testing import EmbeddedRegistry, connectRaw, exchange  # noqa: E402
from txinferno.testing.faultproxy import RegistryFaultProxy  # noqa: E402
from txinferno.testing.recorders import ConnectionStateRecorder  # noqa: E402
from txinferno.testing.sockets import clientSockets  # noqa: E402

RESTORE_TIMEOUT = 60
PROBE = {"probeInterval": 1.0, "probeTimeout": 1.0}
DETECTION_MARGIN = 1.0
"""
Seconds the probe may take to declare a black hole lost beyond its
interval and its timeout.
"""


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
        self.detectionLimit = float("inf")
        self.start = rss(os.getpid())
        self.memory = 0.0

    def sample(self):
        """
        Note the growth of resident memory since the scenario started.
        """
        self.memory = max(self.memory, (rss(os.getpid()) - self.start) / 2**20)


def neverReading(port, count):
    """
    C{count} blocking loopback sockets with small receive buffers,
    connected to C{port}, that nobody reads.
    """
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.connect(("127.0.0.1", port))
        sockets.append(s)
    return sockets


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
            self.reactor,
            lambda: (
                self.manager.connected
                and self.missing() == 0
                and all(m.synced for m in self.monitors)
            ),
        )
        return time.monotonic() - start

    def count(self, row):
        row.sample()
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
    row.detectionLimit = PROBE["probeInterval"] + PROBE["probeTimeout"] + DETECTION_MARGIN
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
    for _cycle in range(cycles):
        managers = [
            RegistryManager.fromDescription(reactor, server.description, initialDelay=0.1)
            for _ in range(2)
        ]
        services = [
            m.attach(QuickService("same", {"owner": str(i)})) for i, m in enumerate(managers)
        ]
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


async def slowWatchersScenario(reactor, server, cycles, services, monitors, watchers):
    """
    Event watchers that never read, while services change: each must be
    dropped within the server's watcher timeout (here 1 s), and the
    monitors, which read, must miss nothing.
    """
    row = Row("slow-watchers", cycles, services)
    server.server.watcherTimeout = 1.0
    setup = Setup(reactor, server, server, services, monitors)
    await setup.settle()
    for cycle in range(cycles):
        stuck = neverReading(server.eventPort, watchers)
        await until(reactor, lambda: len(server.server._watchers) == watchers + 1, 10)
        start = time.monotonic()
        step = 0
        while len(server.server._watchers) > 1 and time.monotonic() - start < 30:
            setup.services[step % services].update({"cycle": "%d.%d" % (cycle, step)})
            step += 1
            await pause(reactor, 0.005)
            row.sample()
        row.detection = max(row.detection, time.monotonic() - start)
        row.leaked += sum(
            1
            for w in server.server._watchers
            if w.transport.getPeer().port in {s.getsockname()[1] for s in stuck}
        )
        for s in stuck:
            s.close()
        row.restore = max(row.restore, await setup.settle())
        setup.count(row)
        row.sample()
    await setup.stop(row, serverPorts(server))
    return row


async def slowFindsScenario(reactor, server, cycles, services, monitors, readers):
    """
    Clients that ask for a large listing and never read, while services
    change and small finds go on: the worst small find is the detection
    figure; the readers' connections must leave nothing behind.
    """
    row = Row("slow-finds", cycles, services)
    bulk = [
        server.registry.register(None, ["bulk%05d" % i, "blob", "b" * 1000]) for i in range(5000)
    ]
    for service in bulk:
        service.line()
    row.start = rss(os.getpid())
    setup = Setup(reactor, server, server, services, monitors)
    await setup.settle()
    for cycle in range(cycles):
        stuck = neverReading(server.findPort, readers)
        for s in stuck:
            s.sendall(b"\n")
        for step in range(20):
            setup.services[step % services].update({"cycle": "%d.%d" % (cycle, step)})
            start = time.monotonic()
            answer = await exchange(reactor, server.host, server.findPort, b"n 0\n")
            row.detection = max(row.detection, time.monotonic() - start)
            row.lost += answer.count(b"\n") != 1
            row.sample()
        for s in stuck:
            s.close()
        await until(
            reactor,
            lambda: not any(isinstance(p, FindServerProtocol) for p in server.server._connections),
            10,
        )
        row.leaked += len(server.server._streaming) + len(server.server._waiting)
        row.restore = max(row.restore, await setup.settle())
        setup.count(row)
        row.sample()
    await setup.stop(row, serverPorts(server))
    for service in bulk:
        server.registry.release(service)
    return row


async def persistentFloodScenario(reactor, server, flood, limit, services, monitors):
    """
    One address registers persistent services and drops each connection:
    past the limit they go with their connections; the managed services
    and monitors must not notice.
    """
    row = Row("persistent-flood", 1, services)
    server.registry.maxPersistentPerOrigin = limit
    setup = Setup(reactor, server, server, services, monitors)
    await setup.settle()
    for first in range(0, flood, 100):
        conns = await defer.gatherResults(
            [connectRaw(reactor, server.host, server.newPort) for _ in range(100)]
        )
        for i, conn in enumerate(conns):
            conn.send(b"flood%05d persist 1\n" % (first + i,))
        await until(
            reactor,
            lambda: all("flood%05d" % (first + i) in server.registry for i in range(len(conns))),
            10,
        )
        await defer.gatherResults([conn.close() for conn in conns])
        row.sample()
    await until(
        reactor, lambda: sum(1 for s in server.registry if s.name.startswith("flood")) <= limit, 10
    )
    kept = sorted(s.name for s in server.registry if s.name.startswith("flood"))
    row.leaked += len(kept) != limit or kept != ["flood%05d" % i for i in range(limit)]
    row.restore = await setup.settle()
    setup.count(row)
    await setup.stop(row, serverPorts(server))
    row.sample()
    await server.restart()
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
        wanted[name[len("service=") :]] = dict(p.split("=") for p in pairs)
    return wanted


async def reloadScenario(reactor, server, cycles, services):
    row = Row("reload", cycles, services)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "services")
        text = servicesText(0, services)
        with open(path, "w") as f:
            f.write(text)
        agent = Agent(
            lambda: RegistryManager.fromDescription(
                reactor, server.description, initialDelay=0.1, maxDelay=1.0
            ),
            servicesFile=path,
        )
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


async def burstDuplicateScenario(reactor, server, proxy, cycles, services):
    row = Row("burst-dup", cycles, services)
    first = RegistryManager.fromDescription(reactor, server.description, initialDelay=0.1)
    held = [
        first.attach(QuickService("dup%03d" % i, {"proto": "http", "owner": "a"}))
        for i in range(services)
    ]
    first.startService()
    await defer.gatherResults([s.whenRegistered() for s in held])
    proxy.new.holdCloses = True
    for _ in range(cycles):
        second = RegistryManager.fromDescription(reactor, proxy.description, initialDelay=0.1)
        duplicates = [second.attach(QuickService(s.name, {"proto": "http"})) for s in held]
        outcomes = [s.whenRegistered() for s in duplicates]
        start = time.monotonic()
        second.startService()
        for d in outcomes:
            try:
                await d
            except RegistrationRejected as e:
                row.duplicated += e.reason != "duplicate service name"
            else:
                row.duplicated += 1
        row.detection = max(row.detection, time.monotonic() - start)
        await second.stopService()
        row.lost += sum(1 for s in held if not s.registered)
        row.lost += sum(
            1
            for s in held
            if s.name not in server.registry
            or dict(server.registry[s.name].attributes()) != s.attrs
        )
    proxy.new.holdCloses = False
    await first.stopService()
    await until(reactor, lambda: len(server.registry) == 0, 5)
    row.leaked += clientSockets(*serverPorts(server), *proxyPorts(proxy))
    return row


async def largeScenario(reactor, server, bulk, services, limit):
    row = Row("large", 1, services)
    pad = "x" * 1000
    entries = [
        server.registry.register(None, ["bulk%06d" % i, "bulk", "1", "pad", pad, "n", str(i)])
        for i in range(bulk)
    ]
    start = time.monotonic()
    setup = Setup(reactor, server, server, services, 1, maxAnswerSize=limit)
    # The single monitor follows group 0: only the registered services.
    row.restore = await setup.settle()
    row.detection = time.monotonic() - start
    setup.count(row)
    await setup.stop(row, serverPorts(server))
    for entry in entries:
        server.registry.release(entry)
    return row


async def stallScenario(reactor, server, proxy, cycles, services, monitors):
    row = Row("stall", cycles, services)
    setup = Setup(
        reactor,
        server,
        proxy,
        services,
        monitors,
        findTimeout=1.0,
        probeInterval=0.5,
        probeTimeout=0.5,
    )
    await setup.settle()
    for cycle in range(cycles):
        before = len(setup.states.timesOf("lost"))
        start = time.monotonic()
        proxy.stall()
        late = [
            setup.manager.attach(
                QuickService("late%02d%02d" % (cycle, i), {"group": "0", "n": "late"})
            )
            for i in range(5)
        ]
        setup.services.extend(late)
        if await until(reactor, lambda: len(setup.states.timesOf("lost")) > before, 30):
            row.detection = max(row.detection, setup.states.timesOf("lost")[-1] - start)
        else:
            row.detection = float("inf")
        await until(reactor, lambda: all(s._registering is None for s in late), 30)
        proxy.new.closeDelay = 0.3
        proxy.resume()
        row.restore = max(row.restore, await setup.settle())
        proxy.new.closeDelay = 0
        setup.count(row)
    await setup.stop(row, proxyPorts(proxy))
    return row


def printTable(rows):
    header = (
        "scenario",
        "cycles",
        "services",
        "lost",
        "duplicated",
        "leaked",
        "worst detection s",
        "worst restore s",
        "RSS growth MB",
    )
    print("%-16s %6s %8s %5s %10s %6s %17s %15s %13s" % header)
    for r in rows:
        print(
            "%-16s %6d %8d %5d %10d %6d %17.3f %15.3f %13.1f"
            % (
                r.scenario,
                r.cycles,
                r.services,
                r.lost,
                r.duplicated,
                r.leaked,
                r.detection,
                r.restore,
                r.memory,
            )
        )


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
        await slowWatchersScenario(
            reactor, server, scale(10, 2), scale(50, 10), scale(5, 2), scale(500, 100)
        ),
        await slowFindsScenario(
            reactor, server, scale(10, 2), scale(50, 10), scale(5, 2), scale(100, 20)
        ),
        await persistentFloodScenario(
            reactor, server, scale(3000, 600), scale(1000, 200), scale(50, 10), scale(5, 2)
        ),
        await reloadScenario(reactor, server, scale(20, 5), scale(100, 20)),
        await burstDuplicateScenario(reactor, server, proxy, scale(5, 2), scale(50, 20)),
        await largeScenario(
            reactor,
            server,
            scale(50000, 5000),
            scale(100, 20),
            scale(16 * 1024 * 1024, 1024 * 1024),
        ),
        await stallScenario(reactor, server, proxy, scale(5, 2), scale(50, 10), scale(5, 2)),
    ]
    await pause(reactor, 0.5)
    rows[-1].leaked += max(0, len([c for c in reactor.getDelayedCalls() if c.active()]) - timers)
    await proxy.stop()
    await server.stop()
    printTable(rows)
    late = [r for r in rows if r.detection > r.detectionLimit]
    for r in late:
        print(
            "%s: detected in %.3f s, over its limit of %.3f s"
            % (r.scenario, r.detection, r.detectionLimit)
        )
    bad = late or any(r.lost or r.duplicated or r.leaked for r in rows)
    if bad:
        raise SystemExit(1)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, "--quick" in sys.argv)))
