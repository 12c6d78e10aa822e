"""
Benchmark of the web port: python bench/web_bench.py

Runs C{twistd -n regmgr} three times in a subprocess: without its web port
(C{--no-web}), with it and no view open, and with it and 100 open event
streams (plain HTTP clients in a process of their own, reading as browsers
would, the whole time), and measures in each:

  - registrations per second until visible to find (10,000 held open);
  - find latency for one service and for the full listing at 10,000;

then, in the last run only:

  - delay from a change (an update on a held connection) to its event at
    the last of the 100 streams (target < 100 ms);
  - first load of the view of 10,000 services in headless Chromium, from
    the request of the page to the last row shown (target < 1 s).

The registry's own figures of the runs are printed side by side with their
ratios to the first: the web port and its views must not cost them more
than 5 %.
"""

import multiprocessing
import os
import resource
import selectors
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_bench import HOST, freePorts, latencies, register, startServer, waitVisible  # noqa: E402

from txinferno.testing._chromium import chromiumMissing, startChromium  # noqa: E402

SERVICES = 10000
VIEWS = 100


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
                    pipe.send("expecting")
                continue
            try:
                data = s.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                selector.unregister(s)
                streams.discard(s)
                waiting.discard(s)
                del tails[s]
                s.close()
                dropped += 1
                open_()
                continue
            text = tails[s] + data
            tails[s] = text[-64:]
            if s in waiting and marker in text:
                waiting.discard(s)
                if not waiting:
                    pipe.send("seen")


def changeDelays(conn, reader, repeat):
    times = []
    for i in range(repeat):
        marker = b"tick%d " % (i,)
        reader.expect(marker)
        start = time.perf_counter()
        conn.send(b"tick '%s'\n" % (marker,))
        if reader.wait(10) != "seen":
            raise SystemExit("no change event at every view within 10 s")
        times.append(time.perf_counter() - start)
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


def registryFigures(newPort, findPort):
    """
    Register L{SERVICES} services and measure the registry's own figures.

    @return: the figures, and the held sockets.
    """
    figures = {}
    start = time.perf_counter()
    held = register(newPort, 0, SERVICES)
    waitVisible(findPort, SERVICES)
    figures["registrations until visible (reg/s)"] = SERVICES / (time.perf_counter() - start)
    median, _ = latencies(findPort, b"id 7777\n", 300, 1)
    figures["find one service at 10k, median (ms)"] = median * 1e3
    median, _ = latencies(findPort, b"\n", 30, SERVICES)
    figures["full listing of 10k, median (ms)"] = median * 1e3
    return figures, held


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


def run(web, views=VIEWS):
    newPort, findPort, eventPort, webPort = freePorts(4)
    server = startServer((newPort, findPort, eventPort), web=webPort if web else None)
    results = {}
    try:
        reader = None
        if web and views:
            reader = StreamReader(webPort, views)
            if reader.wait(30) != "seen":
                raise SystemExit("the event streams did not start")
        figures, held = registryFigures(newPort, findPort)
        results.update(figures)
        if reader is not None:
            results["views dropped and reconnected in the burst"] = reader.dropped()
            median, p95 = changeDelays(held[0], reader, 30)
            results["change to all %d views, median (ms)" % (VIEWS,)] = median * 1e3
            results["change to all %d views, p95 (ms)" % (VIEWS,)] = p95 * 1e3
            load = firstLoad(webPort)
            if load is not None:
                results["first load of 10k in Chromium (s)"] = load
            reader.close()
        for s in held:
            s.close()
    finally:
        server.terminate()
        server.wait(30)
    return results


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    without = run(web=False)
    idle = run(web=True, views=0)
    with_ = run(web=True)
    print(
        "views dropped (too slow to read) and reconnected during the burst:",
        with_.pop("views dropped and reconnected in the burst"),
    )
    print(
        "%-40s %9s %9s %7s %9s %7s"
        % ("registry figure", "no web", "web", "ratio", "web+%d" % (VIEWS,), "ratio")
    )
    for name, figure in without.items():
        higherIsBetter = "reg/s" in name
        cells = []
        for other in (idle[name], with_[name]):
            ratio = other / figure
            cost = (1 - ratio) if higherIsBetter else (ratio - 1)
            cells.append("%9.2f %7.3f%s" % (other, ratio, "" if cost <= 0.05 else "!"))
        print("%-40s %9.2f %s %s" % (name, figure, cells[0], cells[1]))
    print("(! marks a cost above 5 %)")
    print()
    print("%-42s %12s %12s %8s" % ("web figure", "figure", "target", "ratio"))
    targets = {
        "change to all %d views, median (ms)" % (VIEWS,): 100,
        "change to all %d views, p95 (ms)" % (VIEWS,): 100,
        "first load of 10k in Chromium (s)": 1,
    }
    for name, target in targets.items():
        if name in with_:
            ratio = with_[name] / target
            print(
                "%-42s %12.3f %12g %8.3f %s"
                % (name, with_[name], target, ratio, "ok" if ratio <= 1 else "MISSED")
            )


if __name__ == "__main__":
    main()
