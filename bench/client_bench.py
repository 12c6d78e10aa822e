"""
Benchmark of the client (manager and tasks): python bench/client_bench.py [PARTS]
(PARTS: the letters of the parts to run, C{abc} by default)

Runs C{twistd -n regmgr} in a subprocess (see L{server_bench.startServer})
and measures, in one run:

  (a) registering 5,000 services through one manager until a Monitor has
      seen them all, as a ratio to the raw-socket floor: the same work with
      plain blocking sockets (5,000 connections each sending its line, then
      finds until all 5,000 are visible); the kinds alternate, in a
      rotating order, over TRIALS trials, each starting from a collected
      heap and an empty registry, and the ratio is that of the medians;
      target <= 1.5.  For scale, the least a Twisted client can do
      (L{TwistedFloor}) is measured likewise, and the CPU time this process
      spends a registration, for it and for the manager;
  (b) recovery: 1,000 services and 100 monitors attached, the server killed
      and started again on the same ports; the time from the server
      accepting again until every service is back and every monitor matches
      the registry; target < 3 s;
  (c) churn: 10,000 services, 500 attribute updates per second for 10 s; the
      monitor's maximum lag (from an update being sent to the monitor
      reporting it or a later value), target <= 1 s, and the time after the
      churn stops until the monitor matches the registry, target <= 1 s;
      and, for scale, what holding them adds to this process's resident memory.
"""

import gc
import os
import random
import resource
import signal
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_bench import HOST, find, freePorts, rss, startServer  # noqa: E402
from twisted.internet import defer, protocol, task  # noqa: E402
from twisted.logger import (  # noqa: E402
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from txinferno.client.manager import RegistryManager  # noqa: E402
from txinferno.client.monitor import Monitor  # noqa: E402
from txinferno.client.new import DEFAULT_MAX_CONNECTING  # noqa: E402
from txinferno.client.observers import MonitorObserver  # noqa: E402
from txinferno.client.service import ServiceTask  # noqa: E402
from txinferno.wire.words import splitLines  # noqa: E402

TRIALS = 9

# Reconnection backoff capped at 1 s for (b): the default (30 s) would make
# the figure depend on where the backoff stands when the server returns.
OPTIONS = {"initialDelay": 0.2, "maxDelay": 1.0}


def visible(port, query=b"bench 1\n"):
    lines, _ = splitLines(find(port, query))
    return len(lines)


def rawFloor(ports, count):
    """
    Plain blocking sockets: C{count} registrations, then finds until all are
    visible.

    @return: the seconds taken, and the open sockets.
    """
    start = time.perf_counter()
    socks = []
    for i in range(count):
        s = socket.create_connection((HOST, ports[0]))
        s.sendall(b"raw%d id %d bench 1\n" % (i, i))
        socks.append(s)
    while visible(ports[1]) < count:
        pass
    return time.perf_counter() - start, socks


class _LineWriter(protocol.Protocol):
    """
    Writes its line on connection, and makes room for the next connection.
    """

    def connectionMade(self):
        self.transport.write(self.factory.line)
        self.factory.floor.written(self.transport)


class _LineWriterFactory(protocol.ClientFactory):
    protocol = _LineWriter
    noisy = False

    def __init__(self, floor, line):
        self.floor = floor
        self.line = line


class TwistedFloor:
    """
    The least any Twisted client can do: C{reactor.connectTCP} with a
    protocol that writes its line, at most L{DEFAULT_MAX_CONNECTING}
    connecting at once (as the manager's registrar), then blocking finds
    until all are visible.  The manager's own cost is what it adds to this.
    """

    def __init__(self, reactor, ports, count):
        self.reactor = reactor
        self.ports = ports
        self.toStart = list(range(count - 1, -1, -1))
        self.connecting = 0
        self.transports = []
        self.allWritten = defer.Deferred()
        self.count = count

    def startMore(self):
        while self.toStart and self.connecting < DEFAULT_MAX_CONNECTING:
            i = self.toStart.pop()
            self.connecting += 1
            line = b"tw%d id %d bench 1\n" % (i, i)
            self.reactor.connectTCP(HOST, self.ports[0], _LineWriterFactory(self, line))

    def written(self, transport):
        self.connecting -= 1
        self.transports.append(transport)
        self.startMore()
        if len(self.transports) == self.count:
            self.allWritten.callback(None)

    async def run(self):
        """
        @return: the seconds taken.
        """
        start = time.perf_counter()
        self.startMore()
        await self.allWritten
        while visible(self.ports[1]) < self.count:
            # Let the reactor send what its transports still hold.
            await task.deferLater(self.reactor, 0)
        elapsed = time.perf_counter() - start
        for transport in self.transports:
            transport.loseConnection()
        while visible(self.ports[1]):
            await task.deferLater(self.reactor, 0.01)
        return elapsed


def closeAll(socks, port):
    for s in socks:
        s.close()
    while visible(port):
        pass


class Counter(MonitorObserver):
    """
    Fires C{self.done} once a condition on the monitor holds.
    """

    def __init__(self):
        self.done = defer.Deferred()
        self.condition = lambda: False
        self.resyncs = 0

    def check(self):
        if not self.done.called and self.condition():
            self.done.callback(time.perf_counter())

    def added(self, name, attrs):
        self.check()

    def removed(self, name, attrs):
        self.check()

    def resynced(self):
        self.resyncs += 1
        self.check()


def monitorWith(manager, attrs):
    counter = Counter()
    monitor = manager.attach(Monitor(attrs, counter))
    return monitor, counter


async def benchRegister(reactor, ports, description, count):
    manager = RegistryManager.fromDescription(reactor, description, **OPTIONS)
    manager.startService()
    await manager.whenConnected()
    monitor, counter = monitorWith(manager, {"bench": "1"})
    counter.condition = lambda: len(monitor.services) == count
    start = time.perf_counter()
    for i in range(count):
        manager.attach(ServiceTask("mgr%d" % i, {"id": str(i), "bench": "1"}))
    end = await counter.done
    elapsed = end - start
    await manager.stopService()
    while visible(ports[1]):
        pass
    return elapsed


async def _rawTrial(reactor, ports, description, count):
    floor, socks = rawFloor(ports, count)
    closeAll(socks, ports[1])
    return floor


async def _twistedTrial(reactor, ports, description, count):
    return await TwistedFloor(reactor, ports, count).run()


TRIAL_KINDS = {"raw": _rawTrial, "twisted": _twistedTrial, "manager": benchRegister}


async def benchRegisterTrials(reactor, ports, description, count):
    """
    Measure (a): L{TRIALS} trials of each kind, in an order that rotates
    from trial to trial so that no kind always follows the same one, each
    from a collected heap and an empty registry.

    @return: the seconds of each trial, by kind.
    """
    kinds = list(TRIAL_KINDS)
    times = {kind: [] for kind in kinds}
    cpu = {kind: [] for kind in kinds}
    for trial in range(TRIALS):
        shift = trial % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            gc.collect()
            before = cpuSeconds()
            times[kind].append(await TRIAL_KINDS[kind](reactor, ports, description, count))
            cpu[kind].append(cpuSeconds() - before)
    return times, cpu


def cpuSeconds():
    """
    @return: the CPU time this process has used, user and system.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def benchRecovery(reactor, ports, description, server, services, monitors):
    manager = RegistryManager.fromDescription(reactor, description, **OPTIONS)
    manager.startService()
    await manager.whenConnected()
    tasks = [
        manager.attach(ServiceTask("rec%d" % i, {"group": str(i % monitors), "bench": "1"}))
        for i in range(services)
    ]
    perGroup = services // monitors
    watchers = [monitorWith(manager, {"group": str(g)}) for g in range(monitors)]
    for monitor, counter in watchers:
        counter.condition = lambda m=monitor, c=counter: len(m.services) == perGroup and c.resyncs
    await defer.gatherResults([c.done for _, c in watchers])
    await defer.gatherResults([t.whenRegistered() for t in tasks])

    server.send_signal(signal.SIGKILL)
    server.wait()
    for monitor, counter in watchers:
        before = counter.resyncs
        counter.done = defer.Deferred()
        counter.condition = lambda m=monitor, c=counter, b=before: (
            c.resyncs > b and len(m.services) == perGroup
        )
    server = startServer(ports)
    back = time.perf_counter()
    await defer.gatherResults([c.done for _, c in watchers])
    await defer.gatherResults([t.whenRegistered() for t in tasks])
    elapsed = time.perf_counter() - back
    assert visible(ports[1]) == services
    await manager.stopService()
    while visible(ports[1]):
        pass
    return elapsed, server


class Lag(MonitorObserver):
    """
    Measures how far behind the registry a monitor's reports are.

    @ivar sent: per service, the (value, time sent) of updates not yet seen.
    """

    def __init__(self):
        self.sent = {}
        self.maxLag = 0.0
        self.seen = 0

    def updated(self, name, attrs, previous):
        now = time.perf_counter()
        value = int(attrs["n"])
        pending = self.sent.get(name)
        while pending and pending[0][0] <= value:
            _, at = pending.pop(0)
            self.maxLag = max(self.maxLag, now - at)
            self.seen += 1

    def behind(self):
        now = time.perf_counter()
        return max((now - p[0][1] for p in self.sent.values() if p), default=0.0)


async def benchChurn(reactor, ports, description, count, rate, seconds):
    gc.collect()
    before = rss(os.getpid())
    manager = RegistryManager.fromDescription(reactor, description, **OPTIONS)
    manager.startService()
    await manager.whenConnected()
    lag = Lag()
    monitor = manager.attach(Monitor({"churn": "1"}, lag))
    services = [
        manager.attach(ServiceTask("ch%d" % i, {"churn": "1", "n": "0"})) for i in range(count)
    ]
    await defer.gatherResults([s.whenRegistered() for s in services])
    while len(monitor.services) < count:
        await task.deferLater(reactor, 0.05)
    memory = rss(os.getpid()) - before
    tick = 0.01
    value = 0
    maxBehind = 0.0
    start = time.perf_counter()
    updates = 0
    while time.perf_counter() - start < seconds:
        due = int(rate * (time.perf_counter() - start)) - updates
        for _ in range(due):
            value += 1
            svc = random.choice(services)
            lag.sent.setdefault(svc.name, []).append((value, time.perf_counter()))
            svc.update({"n": str(value)})
            updates += 1
        maxBehind = max(maxBehind, lag.behind())
        await task.deferLater(reactor, tick)
    churnEnd = time.perf_counter()
    expected = {s.name: s.attrs for s in services}
    while monitor.services != expected:
        maxBehind = max(maxBehind, lag.behind())
        await task.deferLater(reactor, 0.005)
    settled = time.perf_counter() - churnEnd
    rateDone = updates / (churnEnd - start)
    await manager.stopService()
    return max(lag.maxLag, maxBehind), settled, rateDone, memory


async def main(reactor, parts):
    ports = freePorts(3)
    description = "tcp:host=%s:new=%d:find=%d:event=%d" % ((HOST,) + tuple(ports))
    server = startServer(ports)
    try:
        if "a" in parts:
            await reportRegister(reactor, ports, description)
        if "b" in parts:
            recovery, server = await benchRecovery(reactor, ports, description, server, 1000, 100)
            print(
                "(b) recovery of 1,000 services and 100 monitors after the server is back: "
                "%.2f s (target < 3 s; reconnection backoff initialDelay %.1f s, maxDelay %.1f s)"
                % (recovery, OPTIONS["initialDelay"], OPTIONS["maxDelay"])
            )
        if "c" in parts:
            worst, settled, rate, memory = await benchChurn(
                reactor, ports, description, 10000, 500, 10
            )
            print(
                "(c) churn, 10,000 services, %.0f updates/s for 10 s: max monitor lag %.2f s "
                "(target <= 1 s), matching the registry %.2f s after the churn (target <= 1 s); "
                "this process's RSS grew by %.1f MB (%.1f KB a service) for the 10,000 "
                "services and the monitor"
                % (rate, worst, settled, memory / 2**20, memory / 10000 / 1024)
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


async def reportRegister(reactor, ports, description, count=5000):
    """
    Measure and print (a).
    """
    times, cpu = await benchRegisterTrials(reactor, ports, description, count)
    floor, twisted, managed = [statistics.median(times[kind]) for kind in TRIAL_KINDS]
    twistedCPU, managedCPU = [statistics.median(cpu[kind]) for kind in ("twisted", "manager")]
    print(
        "(a) 5,000 registrations until seen, median of %d trials (range): raw sockets "
        "%.2f s (%.2f-%.2f); plain Twisted connectTCP %.2f s (%.2f-%.2f), ratio %.2f; "
        "manager + Monitor %.2f s (%.2f-%.2f), ratio %.2f (target <= 1.5)"
        % (
            TRIALS,
            floor,
            min(times["raw"]),
            max(times["raw"]),
            twisted,
            min(times["twisted"]),
            max(times["twisted"]),
            twisted / floor,
            managed,
            min(times["manager"]),
            max(times["manager"]),
            managed / floor,
        )
    )
    print(
        "    client CPU per registration, median: plain Twisted %.0f us, manager + Monitor "
        "%.0f us, ratio %.2f"
        % (twistedCPU / count * 1e6, managedCPU / count * 1e6, managedCPU / twistedCPU)
    )


def logLikeAnApplication():
    """
    Log as a Twisted application does, to a file (here the null device) at
    the info level: otherwise Twisted keeps every event, and the objects it
    names, in a buffer of 65,536 waiting for logging to begin.
    """
    observer = textFileLogObserver(open(os.devnull, "w"))
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(observer, [LogLevelFilterPredicate(LogLevel.info)])],
        redirectStandardIO=False,
    )


if __name__ == "__main__":
    logLikeAnApplication()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, (sys.argv[1:] or ["abc"])[0])))
