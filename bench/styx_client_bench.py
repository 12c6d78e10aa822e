"""
Benchmark of the Styx connection plugin's client side against the TCP
plugin: python bench/styx_client_bench.py

Runs the embedded registry (its three TCP ports and its Styx port) in a
subprocess, and measures in one run, over TRIALS trials alternating the
two plugins (each trial from a collected heap and an empty registry):

  - 5,000 registrations through one manager until a Monitor of the same
    manager has seen them all: the time, and this process's CPU time per
    registration; targets: Styx at least 3 times faster than the TCP
    plugin, with at most a third of its client CPU per registration;
  - the server's CPU time per registration meanwhile, for scale, and the
    client's and server's together, with the machine's load average: on a
    busy machine the two processes wait for the CPU, and the times follow
    the CPU they use together;
  - the server logging at info (as a server run with the default level:
    the first changes of the burst a line each, the rest summed up in a
    line a second) or, with STYX_BENCH_SERVER_LOG=warn, at warn;
  - client memory per registration: after the timed trials, one more
    trial of each plugin with tracemalloc on, and the Python memory the
    5,000 registrations (with their tasks) hold once the Monitor has seen
    them, per registration (kernel socket buffers are not counted).

The figures are medians of the trials.  The ratios are those of each
trial's Styx and TCP runs, which follow each other: their median, and
their range over the trials (on a shared machine the load moves between
trials more than between the two runs of one).
"""

import gc
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from client_bench import Counter, logLikeAnApplication  # noqa: E402
from server_bench import cpuSeconds  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from txinferno.client.manager import RegistryManager  # noqa: E402
from txinferno.client.monitor import Monitor  # noqa: E402
from txinferno.client.service import ServiceTask  # noqa: E402

COUNT = int(os.environ.get("STYX_BENCH_COUNT", 5000))
TRIALS = 5
OPTIONS = {"initialDelay": 0.2, "maxDelay": 1.0}

SERVER_LOG_LEVEL = os.environ.get("STYX_BENCH_SERVER_LOG", "info")
"""
The level the server logs at (to /dev/null): C{info} by default, as a
server run with the default level, where the first changes of a burst are
a log line each and the others are counted and summed up (see
L{txinferno.server._logbudget}); C{warn} leaves the registry's own costs.
"""

SERVER = """
from twisted.internet import reactor
from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
    textFileLogObserver,
)
import os, sys
observer = FilteringLogObserver(
    textFileLogObserver(open(os.devnull, "w")),
    [LogLevelFilterPredicate(LogLevel.levelWithName(sys.argv[1]))],
)
globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
from txinferno.testing.embedded import EmbeddedRegistry
registry = EmbeddedRegistry(reactor, backlog=4096)
def up(r):
    print(r.description, "styx:%s:%d" % r.styxAddress, flush=True)
registry.start().addCallback(up)
reactor.run()
"""


def startServer():
    """
    @return: the server process, and the TCP and Styx descriptions of the
        registry it serves.
    """
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, SERVER_LOG_LEVEL], stdout=subprocess.PIPE, text=True
    )
    line = server.stdout.readline().split()
    if len(line) != 2:
        server.kill()
        raise SystemExit("the server did not start")
    return server, line[0], line[1]


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def trial(reactor, description, server):
    """
    One trial: register L{COUNT} services through one manager until its
    Monitor has seen them all.

    @return: the seconds taken, the CPU seconds this process used meanwhile,
        the memory allocated meanwhile and still held (when tracemalloc
        traces), and the CPU seconds the server used meanwhile.
    """
    gc.collect()
    manager = RegistryManager.fromDescription(reactor, description, **OPTIONS)
    manager.startService()
    await manager.whenConnected()
    counter = Counter()
    monitor = manager.attach(Monitor({"bench": "1"}, counter))
    counter.condition = lambda: len(monitor.services) == COUNT
    await manager.whenRestored()
    memoryBefore = tracemalloc.get_traced_memory()[0]
    cpuBefore = cpu()
    serverBefore = cpuSeconds(server.pid)
    start = time.perf_counter()
    for i in range(COUNT):
        manager.attach(ServiceTask("b%d" % i, {"id": str(i), "bench": "1"}))
    end = await counter.done
    elapsed = end - start
    used = cpu() - cpuBefore
    serverUsed = cpuSeconds(server.pid) - serverBefore
    memory = tracemalloc.get_traced_memory()[0] - memoryBefore
    await manager.stopService()
    # Wait for the registry to be empty again.
    check = RegistryManager.fromDescription(reactor, description, **OPTIONS).connection
    while await check.find({"bench": "1"}):
        await task.deferLater(reactor, 0.05)
    return elapsed, used, memory, serverUsed


async def main(reactor):
    server, tcp, styx = startServer()
    loadBefore = os.getloadavg()[0]
    try:
        results = {"styx": [], "tcp": []}
        for number in range(TRIALS):
            order = ["styx", "tcp"] if number % 2 == 0 else ["tcp", "styx"]
            for kind in order:
                results[kind].append(await trial(reactor, styx if kind == "styx" else tcp, server))
        medians = {
            kind: [statistics.median(r[i] for r in runs) for i in (0, 1, 3)]
            for kind, runs in results.items()
        }
        tracemalloc.start()
        memories = {
            kind: (await trial(reactor, d, server))[2] for kind, d in [("styx", styx), ("tcp", tcp)]
        }
        tracemalloc.stop()
        for kind in ("styx", "tcp"):
            elapsed, used, serverUsed = medians[kind]
            memory = memories[kind]
            print(
                "%-4s plugin: %d registrations until seen by a Monitor in %.2f s "
                "(%.0f/s; trials %s), client CPU %.0f us a registration, "
                "client memory %.2f KB a registration; server CPU %.0f us a registration"
                % (
                    kind,
                    COUNT,
                    elapsed,
                    COUNT / elapsed,
                    ", ".join("%.2f" % r[0] for r in results[kind]),
                    used / COUNT * 1e6,
                    memory / COUNT / 1024,
                    serverUsed / COUNT * 1e6,
                )
            )
        print(
            "client and server CPU together: Styx %.0f us, TCP %.0f us a registration "
            "(%.2f); load average %.2f before the trials, %.2f after (on a busy machine "
            "the times follow the CPU used, client and server)"
            % (
                sum(medians["styx"][1:]) / COUNT * 1e6,
                sum(medians["tcp"][1:]) / COUNT * 1e6,
                sum(medians["styx"][1:]) / sum(medians["tcp"][1:]),
                loadBefore,
                os.getloadavg()[0],
            )
        )
        pairs = list(zip(results["styx"], results["tcp"]))
        speeds = [t[0] / x[0] for x, t in pairs]
        cpuRatios = [x[1] / t[1] for x, t in pairs]
        print(
            "Styx is %.1f times as fast as TCP (target >= 3; trials %.1f-%.1f), with %.2f of "
            "its client CPU a registration (target <= 0.33; trials %.2f-%.2f), medians of "
            "%d trials; %.2f of its client memory a registration; the server logging at %s"
            % (
                statistics.median(speeds),
                min(speeds),
                max(speeds),
                statistics.median(cpuRatios),
                min(cpuRatios),
                max(cpuRatios),
                TRIALS,
                memories["styx"] / memories["tcp"],
                SERVER_LOG_LEVEL,
            )
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    logLikeAnApplication()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
