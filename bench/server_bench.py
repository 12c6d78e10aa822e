"""
Benchmark of the embedded registry server: python bench/server_bench.py

Runs C{twistd -n regmgr} in a subprocess (so that the benchmark's clients do
not share its CPU time) and measures, with plain blocking sockets and
selectors on the client side:

  - registrations per second until visible to find (9,000 registrations held
    open on 9,000 sockets, on top of 1,000, then finds until one sees all);
  - find latency (connect, query, read to the close; median and p95) for one
    service and for the full listing, at 1,000 and at 10,000 services;
  - delay from a change (an update on a held connection) to its event line at
    the last of 1 and of 1,000 event watchers;
  - the server's resident memory at start and with 10,000 services;
  - the registry model's memory per service (20,000 ordinary services, and
    200 services of 250 attributes), measured in a fresh child process.

Each figure is printed with its target from issue 2 and the ratio
figure/target (below 1 is good for times and memory, above 1 for rates).
"""

import argparse
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time

HOST = "127.0.0.1"


def freePorts(count):
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


PROFILED = """
import cProfile, runpy, sys
from twisted.internet import reactor

profiler = cProfile.Profile()
path = sys.argv[1]


def dump():
    profiler.disable()
    profiler.dump_stats(path)


# Written once the reactor has stopped: python -m cProfile would write
# nothing, since twist ends by killing itself with the signal it got.
reactor.addSystemEventTrigger("after", "shutdown", dump)
sys.argv = ["twist"] + sys.argv[2:]
profiler.enable()
runpy.run_module("twisted", run_name="__main__", alter_sys=True)
"""
"""
The server's program under cProfile (see L{startServer}).
"""


def startServer(
    ports,
    names=("new", "find", "event"),
    options=("--no-styx",),
    twistOptions=(),
    web=None,
    profile=None,
):
    """
    Run C{twistd -n regmgr} with a port of each of C{names} (in order) on
    C{ports}, and the web port on C{web} (none when L{None}); wait until the
    last one listens.

    @param profile: a path where the server writes a C{cProfile} profile of
        its whole run when it is terminated (L{stopServer}), or L{None} for
        no profile.
    """
    if profile is None:
        args = [sys.executable, "-m", "twisted"]
    else:
        args = [sys.executable, "-c", PROFILED, os.path.abspath(profile)]
    args += [
        "--log-file",
        "/dev/null",
        *twistOptions,
        "regmgr",
        *options,
    ]
    for name, port in zip(names, ports):
        args += ["--" + name, "tcp:%d:interface=%s:backlog=4096" % (port, HOST)]
    if web is None:
        args.append("--no-web")
    else:
        args += ["--web", "tcp:%d:interface=%s:backlog=4096" % (web, HOST)]
    server = subprocess.Popen(args, cwd=os.path.dirname(os.path.abspath(__file__)))
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((HOST, ports[len(names) - 1]), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the server did not start") from None
            time.sleep(0.05)


def stopServer(server):
    """
    Stop a server that L{startServer} started: C{SIGTERM} stops its reactor
    (so that a profile is written), then wait for it to exit.
    """
    server.terminate()
    server.wait(60)


def rss(pid):
    """
    @return: the resident set size of process C{pid}, in bytes.
    """
    with open("/proc/%d/status" % (pid,)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS for the server")


def find(port, query, timeout=None):
    """
    A blocking query: connect, send, read to the close.

    @rtype: L{bytes}
    """
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(query)
        chunks = []
        while True:
            data = s.recv(1 << 20)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def register(port, first, count):
    """
    Open C{count} connections at once and register C{svcN} on each.

    @return: the open sockets.
    """
    selector = selectors.DefaultSelector()
    socks = []
    for i in range(first, first + count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, port))
        selector.register(s, selectors.EVENT_WRITE, b"svc%d id %d bench 1 proto tcp\n" % (i, i))
        socks.append(s)
    pending = count
    while pending:
        for key, _ in selector.select():
            key.fileobj.send(key.data)
            selector.unregister(key.fileobj)
            pending -= 1
    selector.close()
    return socks


def waitVisible(port, count, timeout=60):
    """
    Find C{bench 1} until C{count} services answer.

    @raise SystemExit: when they do not within C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while find(port, b"bench 1\n", timeout=10).count(b"\n") < count:
        if time.monotonic() > deadline:
            raise SystemExit("the %d services did not become visible" % (count,))


def latencies(port, query, repeat, expectLines):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        answer = find(port, query)
        times.append(time.perf_counter() - start)
        assert answer.count(b"\n") == expectLines, (query, answer[:200])
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


def openWatchers(port, count):
    selector = selectors.DefaultSelector()
    watchers = []
    for _ in range(count):
        s = socket.create_connection((HOST, port))
        watchers.append(s)
    for s in watchers:
        data = b""
        while not data.endswith(b"\n"):
            data += s.recv(100)
        assert data == b"READY\n", data
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
    return watchers, selector


def eventDelays(conn, watchers, selector, repeat):
    times = []
    for i in range(repeat):
        waiting = set(watchers)
        start = time.perf_counter()
        conn.send(b"tick %d\n" % (i,))
        while waiting:
            ready = selector.select(10)
            if not ready:
                raise SystemExit("no event within 10 s")
            for key, _ in ready:
                data = key.fileobj.recv(100)
                assert data.endswith(b"\n") and len(data) % 9 == 0, data
                waiting.discard(key.fileobj)
        times.append(time.perf_counter() - start)
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


class Table:
    """
    The figures of a run, each with its target and the ratio figure/target.
    """

    HEADER = ("measure", "figure", "target", "ratio", "")

    def __init__(self):
        self.rows = []

    def row(self, what, figure, unit, target, higherIsBetter=False):
        ratio = figure / target
        ok = ratio >= 1 if higherIsBetter else ratio <= 1
        self.rows.append(
            (
                what,
                "%.2f %s" % (figure, unit),
                "%s %g %s" % (">=" if higherIsBetter else "<", target, unit),
                "%.3f" % ratio,
                "ok" if ok else "MISSED",
            )
        )

    def delays(self, what, figures, target):
        """
        Add two rows in milliseconds, C{what, median} and C{what, p95}, with
        the same target.

        @param figures: the median and the 95th percentile, in seconds.
        """
        median, p95 = figures
        self.row(what + ", median", median * 1e3, "ms", target)
        self.row(what + ", p95", p95 * 1e3, "ms", target)

    def note(self, what, figure):
        """
        A figure without a target.
        """
        self.rows.append((what, figure, "", "", ""))

    def print(self):
        rows = [self.HEADER] + self.rows
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


MODEL_MEMORY = r"""
import gc, sys
from txinferno.server.registry import Registry

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

count, wide = int(sys.argv[1]), sys.argv[2] == "wide"
if wide:
    words = lambda i: ["wide%d" % i] + [w for j in range(250) for w in ("a%d" % j, "v%d.%d" % (i, j))]
else:
    words = lambda i: ["svc%d" % i, "id", str(i), "bench", "1", "proto", "tcp", "descr", "service %d" % i]
registry = Registry()
gc.collect()
before = rss()
held = [registry.register(None, words(i)) for i in range(count)]
for s in held:
    s.line()
gc.collect()
print((rss() - before) / count)
"""


def modelMemory(count, kind):
    """
    @return: the bytes of resident memory per service that C{count}
        services of C{kind} (C{ordinary} or C{wide}) cost the registry
        model, with their answer lines cached.
    """
    out = subprocess.run(
        [sys.executable, "-c", MODEL_MEMORY, str(count), kind],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out)


def cpuSeconds(pid):
    """
    @return: the CPU time (user and system) a process has used so far, in
        seconds: a figure the other load of a shared machine disturbs less
        than the wall-clock rates.
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description="Benchmark of the embedded registry server.")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="run the server under cProfile and write its profile (of the whole run) to PATH",
    )
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    newPort, findPort, eventPort = ports = freePorts(3)
    server = startServer(ports, profile=arguments.profile)
    table = Table()
    row = table.row
    table.note("load average at start", "%.2f %.2f %.2f" % os.getloadavg())
    table.note("server RSS at start (no service)", "%.2f MB" % (rss(server.pid) / 2**20,))

    try:
        held = register(newPort, 0, 1000)
        waitVisible(findPort, 1000)
        table.delays("find one service at 1k", latencies(findPort, b"id 500\n", 300, 1), 2)
        table.delays("full listing of 1k", latencies(findPort, b"\n", 50, 1000), 40)

        start = time.perf_counter()
        startCPU = cpuSeconds(server.pid)
        held += register(newPort, 1000, 9000)
        waitVisible(findPort, 10000)
        row(
            "registrations until visible (9k more)",
            9000 / (time.perf_counter() - start),
            "reg/s",
            5000,
            True,
        )
        table.note(
            "server CPU per registration (9k more)",
            "%.1f us" % ((cpuSeconds(server.pid) - startCPU) / 9000 * 1e6,),
        )

        table.delays("find one service at 10k", latencies(findPort, b"id 7777\n", 300, 1), 2)
        table.delays("full listing of 10k", latencies(findPort, b"\n", 30, 10000), 40)
        row("server RSS with 10k services", rss(server.pid) / 2**20, "MB", 100)

        ticker = held[0]
        for count in (1, 1000):
            watchers, selector = openWatchers(eventPort, count)
            table.delays(
                "change to event at %d watcher(s)" % (count,),
                eventDelays(ticker, watchers, selector, 30),
                20,
            )
            selector.close()
            for s in watchers:
                s.close()
        for s in held:
            s.close()
        row(
            "model memory per ordinary service (20k)",
            modelMemory(20000, "ordinary") / 1024,
            "KiB",
            2,
        )
        row("model memory per 250-attribute service", modelMemory(200, "wide") / 1024, "KiB", 100)
    finally:
        stopServer(server)
    table.note("load average at end", "%.2f %.2f %.2f" % os.getloadavg())
    table.print()


if __name__ == "__main__":
    main()
