"""
Benchmark of the web port: python bench/web_bench.py [--trials N]

Runs C{twistd -n regmgr} in a subprocess in three kinds of run: without its
web port (C{--no-web}), with it and no view open, and with it and 100 open
event streams (plain HTTP clients in a process of their own, reading as
browsers would, the whole time); L{TRIALS} trials of each, the order of the
kinds rotating from trial to trial so that none always follows the same
one, each from a fresh server.  Each run measures:

  - registrations per second until visible to find (10,000 held open), and
    the server's CPU time per registration meanwhile (less disturbed by the
    other load of a shared machine than the wall-clock rate);
  - find latency for one service and for the full listing at 10,000;
  - the server's resident memory with the 10,000 services;

and each run with views:

  - delay from a change (an update on a held connection) to its event at
    the last of the 100 streams (target < 100 ms; the delays of every
    trial together);
  - how many of the streams fell behind the burst and were dropped (and
    reconnected, as C{EventSource} does) or started again from a snapshot
    (C{txinferno_web_streams_resynced_total});

then, in the last run with views only:

  - first load of the view of 10,000 services in headless Chromium, from
    the request of the page to the last row shown (target < 1 s).

The registry's own figures are printed as the median of the trials for
each kind, with the ratio of each run's figure to the run without web port
of the same trial (median and range of the trials): the web port and its
views must not cost them more than 5 %.
"""

import argparse
import multiprocessing
import os
import resource
import selectors
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_bench import (  # noqa: E402
    HOST,
    cpuSeconds,
    find,
    freePorts,
    latencies,
    register,
    rss,
    startServer,
    stopServer,
    waitVisible,
)

from txinferno.testing._chromium import chromiumMissing, startChromium  # noqa: E402

SERVICES = 10000
VIEWS = 100
TRIALS = 5
KINDS = ("no web", "web", "web+%d" % (VIEWS,))
"""
The kinds of run, the first the baseline of the ratios.
"""
CPU = "server CPU per registration (us)"


class StreamReader:
    """
    Reads L{VIEWS} event streams as browsers would, in a process of its own
    (as browsers are), as fast as they come, reconnecting a stream the
    server drops as C{EventSource} does; tells when every stream has seen a
    marker.
    """

    def __init__(self, port, count):
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(
            target=_read, args=(port, count, child), daemon=True
        )
        self._process.start()

    def wait(self, timeout):
        """
        @return: what the reader says next (C{seen}), or L{None} after
            C{timeout} seconds.
        """
        if self._pipe.poll(timeout):
            return self._pipe.recv()
        return None

    def expect(self, marker):
        self._pipe.send(("expect", marker))
        assert self.wait(10) == "expecting"

    def dropped(self):
        self._pipe.send(("dropped", None))
        return self.wait(10)

    def close(self):
        self._pipe.send(("stop", None))
        self._process.join(10)


def _read(port, count, pipe):
    selector = selectors.DefaultSelector()
    streams = set()
    tails = {}
    buffer = bytearray(1 << 20)

    def open_():
        s = socket.create_connection((HOST, port))
        s.sendall(b"GET /v1/events HTTP/1.0\r\nHost: bench\r\n\r\n")
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
        streams.add(s)
        tails[s] = b""
        return s

    for _ in range(count):
        open_()
    marker = b"event: ready\n"
    waiting = set(streams)
    dropped = 0
    selector.register(pipe, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select(0.5):
            s = key.fileobj
            if s is pipe:
                command, argument = pipe.recv()
                if command == "stop":
                    return
                if command == "dropped":
                    pipe.send(dropped)
                elif command == "expect":
                    marker = argument
                    waiting = set(streams)
                    for t in streams:
                        tails[t] = b""
                    pipe.send("expecting")
                continue
            try:
                size = s.recv_into(buffer)
            except OSError:
                size = 0
            if not size:
                selector.unregister(s)
                streams.discard(s)
                waiting.discard(s)
                del tails[s]
                s.close()
                dropped += 1
                open_()
                continue
            if s not in waiting:
                continue
            # A marker may come split between two reads.
            text = tails[s] + buffer[:size]
            tails[s] = text[-64:]
            if marker in text:
                waiting.discard(s)
                if not waiting:
                    pipe.send("seen")


def changeDelays(conn, reader, repeat):
    """
    @return: the seconds from each of C{repeat} changes to its event at the
        last of the reader's streams.
    """
    times = []
    for i in range(repeat):
        marker = b"tick%d " % (i,)
        reader.expect(marker)
        start = time.perf_counter()
        conn.send(b"tick '%s'\n" % (marker,))
        if reader.wait(10) != "seen":
            raise SystemExit("no change event at every view within 10 s")
        times.append(time.perf_counter() - start)
    return times


def registryFigures(server, newPort, findPort):
    """
    Register L{SERVICES} services and measure the registry's own figures.

    @return: the figures, and the held sockets.
    """
    figures = {}
    start = time.perf_counter()
    startCPU = cpuSeconds(server.pid)
    held = register(newPort, 0, SERVICES)
    waitVisible(findPort, SERVICES)
    figures["registrations until visible (reg/s)"] = SERVICES / (time.perf_counter() - start)
    figures[CPU] = (cpuSeconds(server.pid) - startCPU) / SERVICES * 1e6
    median, _ = latencies(findPort, b"id 7777\n", 300, 1)
    figures["find one service at 10k, median (ms)"] = median * 1e3
    median, _ = latencies(findPort, b"\n", 30, SERVICES)
    figures["full listing of 10k, median (ms)"] = median * 1e3
    figures["server RSS with 10k (MB)"] = rss(server.pid) / 2**20
    return figures, held


def resynced(webPort):
    """
    @return: how many event streams the server has started again from a
        snapshot (C{txinferno_web_streams_resynced_total} of C{/metrics}).
    """
    answer = find(webPort, b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
    for line in answer.decode().splitlines():
        if line.startswith("txinferno_web_streams_resynced_total "):
            return int(float(line.split()[1]))
    raise SystemExit("no txinferno_web_streams_resynced_total in /metrics")


def firstLoad(webPort):
    """
    @return: the seconds from asking headless Chromium for the page to its
        last row shown, or L{None} without Chromium.
    """
    missing = chromiumMissing()
    if missing is not None:
        print("no first-load figure:", missing)
        return None
    from selenium.webdriver.support.ui import WebDriverWait

    driver = startChromium()
    try:
        url = "http://%s:%d/" % (HOST, webPort)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            driver.get(url)
            WebDriverWait(driver, 30, poll_frequency=0.005).until(
                lambda d: d.execute_script(
                    "return document.body.className === 'live'"
                    " && document.querySelectorAll('#rows .row').length"
                )
            )
            times.append(time.perf_counter() - start)
            shown = driver.execute_script("return document.getElementById('shown').textContent")
            assert shown == "%d services shown" % (SERVICES,), shown
        return statistics.median(times)
    finally:
        driver.quit()


def run(kind, chromium=False):
    """
    One run of C{kind} (of L{KINDS}) from a fresh server.

    @param chromium: whether to measure the first load too (with views).
    @return: the figures, and the delays of the changes (with views).
    """
    web = kind != KINDS[0]
    views = VIEWS if kind == KINDS[2] else 0
    newPort, findPort, eventPort, webPort = freePorts(4)
    server = startServer((newPort, findPort, eventPort), web=webPort if web else None)
    delays = []
    try:
        reader = None
        if views:
            reader = StreamReader(webPort, views)
            if reader.wait(30) != "seen":
                raise SystemExit("the event streams did not start")
        results, held = registryFigures(server, newPort, findPort)
        if reader is not None:
            results["views dropped and reconnected in the burst"] = reader.dropped()
            results["views resynced in the burst"] = resynced(webPort)
            delays = changeDelays(held[0], reader, 30)
            if chromium:
                load = firstLoad(webPort)
                if load is not None:
                    results["first load of 10k in Chromium (s)"] = load
            reader.close()
        for s in held:
            s.close()
    finally:
        stopServer(server)
    return results, delays


def trials(count):
    """
    Run C{count} trials of every kind of L{KINDS}, the order rotating from
    trial to trial.

    @return: the figures of every run by kind, in trial order, and the
        delays of the changes of every run with views.
    """
    runs = {kind: [] for kind in KINDS}
    delays = []
    for trial in range(count):
        shift = trial % len(KINDS)
        for kind in KINDS[shift:] + KINDS[:shift]:
            last = trial == count - 1 and kind == KINDS[2]
            figures, more = run(kind, chromium=last)
            runs[kind].append(figures)
            delays += more
    return runs, delays


def main():
    parser = argparse.ArgumentParser(description="Benchmark of the web port.")
    parser.add_argument(
        "--trials", type=int, default=TRIALS, help="trials of each kind (default %d)" % (TRIALS,)
    )
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    runs, delays = trials(arguments.trials)
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    for what in ("dropped and reconnected", "resynced"):
        print(
            "views %s (too slow to read) during the bursts, all trials:" % (what,),
            sum(figures.pop("views %s in the burst" % (what,)) for figures in runs[KINDS[2]]),
        )
    print(
        "median of %d trials; ratio: each run's figure to the one without web port of its trial, "
        "median (range)" % (arguments.trials,)
    )
    header = "%-38s %9s" % ("registry figure", KINDS[0])
    for kind in KINDS[1:]:
        header += " %9s %-18s" % (kind, "ratio")
    print(header)
    for name in runs[KINDS[0]][0]:
        higherIsBetter = "reg/s" in name
        line = "%-38s %9.2f" % (name, statistics.median(f[name] for f in runs[KINDS[0]]))
        for kind in KINDS[1:]:
            ratios = [f[name] / base[name] for f, base in zip(runs[kind], runs[KINDS[0]])]
            ratio = statistics.median(ratios)
            cost = (1 - ratio) if higherIsBetter else (ratio - 1)
            line += " %9.2f %5.3f%s (%.2f-%.2f)" % (
                statistics.median(f[name] for f in runs[kind]),
                ratio,
                "!" if cost > 0.05 else " ",
                min(ratios),
                max(ratios),
            )
        print(line)
    print("(! marks a cost above 5 %)")
    print()
    print("%-42s %12s %12s %8s" % ("web figure", "figure", "target", "ratio"))
    web = {
        "change to all %d views, median (ms)" % (VIEWS,): statistics.median(delays) * 1e3,
        "change to all %d views, p95 (ms)" % (VIEWS,): statistics.quantiles(delays, n=20)[18] * 1e3,
    }
    load = runs[KINDS[2]][-1].get("first load of 10k in Chromium (s)")
    if load is not None:
        web["first load of 10k in Chromium (s)"] = load
    targets = [100, 100, 1]
    for (name, figure), target in zip(web.items(), targets):
        ratio = figure / target
        print(
            "%-42s %12.3f %12g %8.3f %s"
            % (name, figure, target, ratio, "ok" if ratio <= 1 else "MISSED")
        )


if __name__ == "__main__":
    main()
