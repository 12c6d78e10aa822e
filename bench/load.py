"""
Load on the registry server (issue 5, item 4): python bench/load.py [--seconds N]

Runs C{twistd -n --pidfile= regmgr} on three loopback ports chosen by the
system (read from its log lines C{RegistryPortFactory starting on N}), then
with plain non-blocking sockets and one selector:

  - registers 10,000 services, each held open on its own socket;
  - opens 1,000 event watchers;
  - for the duration (default 60 s) runs 200 finds per second (each for one
    service, checked) and a few changes per second (updates on a held
    connection), timing each change to its event line at every watcher.

Reports errors (wrong or failed finds, missed or unexpected events, closed
connections), the server's RSS before and after the load, the event delay
(median, p95, max over every watcher and change) and the find latency.
The soft open-file limit is raised to the hard limit first (the server
inherits it).
"""

import argparse
import os
import re
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from server_bench import find, rss, waitVisible

HOST = "127.0.0.1"
SERVICES = 10000
WATCHERS = 1000
PORT_LINE = re.compile(rb"RegistryPortFactory starting on (\d+)")


def raiseFileLimit():
    """
    Raise the soft open-file limit to the hard limit.

    @return: the new limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def twistdCommand():
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(twistd):
        return [twistd]
    return [sys.executable, "-m", "twisted"]


class Server:
    """
    C{twistd -n regmgr} in a subprocess, logging to a temporary file.

    @ivar ports: the C{new}, C{find} and C{event} port numbers.
    """

    def __init__(self):
        self._log = tempfile.NamedTemporaryFile(prefix="regmgr-", suffix=".log")
        args = twistdCommand() + ["-n", "--pidfile=", "regmgr", "--no-styx"]
        for name in ("new", "find", "event"):
            args += ["--" + name, "tcp:0:interface=%s" % (HOST,)]
        self.process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir()
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 30
        while True:
            with open(self._log.name, "rb") as f:
                ports = [int(p) for p in PORT_LINE.findall(f.read())]
            if len(ports) >= 3:
                break
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit("the server did not start; log in %s" % (self._log.name,))
            time.sleep(0.05)
        self.ports = ports[:3]
        with socket.create_connection((HOST, self.ports[2]), timeout=5) as s:
            if s.recv(6) != b"READY\n":
                raise SystemExit("the third port is not the event port")

    def rss(self):
        """
        @return: the server's resident set size in bytes.
        """
        return rss(self.pid)

    def tracebacks(self):
        """
        @return: the number of tracebacks the server logged.
        """
        with open(self._log.name, "rb") as f:
            return f.read().count(b"Traceback")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def connect(port, attempts=50):
    """
    A blocking connection that retries after 0.25 s rather than wait for
    the kernel's SYN retransmission (1 s, then 3 s...) when the server's
    listen backlog of 50 overflows.

    @rtype: L{socket.socket}
    """
    for _ in range(attempts - 1):
        try:
            s = socket.create_connection((HOST, port), timeout=0.25)
        except TimeoutError:
            continue
        s.settimeout(10)
        return s
    return socket.create_connection((HOST, port), timeout=10)


def register(port, count):
    """
    Register C{svcN id N bench 1} on each of C{count} connections, opened
    one after the other.

    @return: the open sockets.
    """
    socks = []
    for i in range(count):
        s = connect(port)
        s.sendall(b"svc%d id %d bench 1\n" % (i, i))
        socks.append(s)
    return socks


def openWatchers(port, count):
    watchers = [connect(port) for _ in range(count)]
    for s in watchers:
        data = b""
        while not data.endswith(b"\n"):
            data += s.recv(100)
        if data != b"READY\n":
            raise SystemExit("event port sent %r" % (data,))
        s.setblocking(False)
    return watchers


class Load:
    """
    The timed part: finds and changes, with every watcher read.
    """

    def __init__(self, server, ticker, watchers, findRate, changeRate):
        self.server = server
        self.ticker = ticker
        self.findRate = findRate
        self.changeRate = changeRate
        self.selector = selectors.DefaultSelector()
        self.watchers = watchers
        self.buffers = {}
        for w in watchers:
            self.selector.register(w, selectors.EVENT_READ, ("watch", w))
            self.buffers[w] = b""
        self.errors = []
        self.findTimes = []
        self.delays = []
        self.changeTimes = []
        self.base = None
        self.seen = {}
        self.findsStarted = 0
        self.changes = 0

    def error(self, text):
        if len(self.errors) < 20:
            print("error:", text, file=sys.stderr)
        self.errors.append(text)

    def change(self):
        self.ticker.sendall(b"tick %d\n" % (self.changes,))
        self.changeTimes.append(time.perf_counter())
        self.changes += 1

    def startFind(self):
        n = (self.findsStarted * 7919) % SERVICES
        self.findsStarted += 1
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, self.server.ports[1]))
        state = {"n": n, "start": time.perf_counter(), "data": b""}
        self.selector.register(s, selectors.EVENT_WRITE, ("find", s, state))

    def onFind(self, s, state, mask):
        try:
            if mask & selectors.EVENT_WRITE:
                s.send(b"id %d\n" % (state["n"],))
                self.selector.modify(s, selectors.EVENT_READ, ("find", s, state))
                return
            data = s.recv(65536)
        except OSError as e:
            self.selector.unregister(s)
            s.close()
            self.error("find %d: %s" % (state["n"], e))
            return
        if data:
            state["data"] += data
            return
        self.selector.unregister(s)
        s.close()
        self.findTimes.append(time.perf_counter() - state["start"])
        words = state["data"].split()
        n = b"%d" % (state["n"],)
        if (
            state["data"].count(b"\n") != 1
            or words[0] != b"svc" + n
            or dict(zip(words[1::2], words[2::2])).get(b"id") != n
        ):
            self.error("find %d answered %r" % (state["n"], state["data"][:100]))

    def onWatch(self, w, now):
        try:
            data = w.recv(4096)
        except OSError as e:
            data = b""
            self.error("watcher: %s" % (e,))
        if not data:
            self.error("watcher closed by the server")
            self.selector.unregister(w)
            self.watchers.remove(w)
            return
        *lines, self.buffers[w] = (self.buffers[w] + data).split(b"\n")
        for line in lines:
            if not re.fullmatch(rb"[0-9]{8,}", line):
                self.error("watcher read %r" % (line,))
                continue
            version = int(line)
            if self.base is None:
                self.base = version - self.changes
            last = self.seen.get(w, self.base + 1)
            if version < last or version > self.base + self.changes:
                self.error(
                    "watcher read version %d, expected %d..%d"
                    % (version, last, self.base + self.changes)
                )
                continue
            for k in range(last - self.base - 1, version - self.base):
                self.delays.append(now - self.changeTimes[k])
            self.seen[w] = version + 1

    def poll(self, timeout):
        for key, mask in self.selector.select(timeout):
            now = time.perf_counter()
            if key.data[0] == "watch":
                self.onWatch(key.data[1], now)
            else:
                self.onFind(key.data[1], key.data[2], mask)

    def caughtUp(self):
        return self.base is not None and all(
            self.seen.get(w) == self.base + self.changes + 1 for w in self.watchers
        )

    def run(self, seconds):
        """
        Run the load for C{seconds}, then wait (10 s at most) for the last
        finds and events.
        """
        start = time.perf_counter()
        self.change()
        while not self.caughtUp() and time.perf_counter() - start < 10:
            self.poll(0.1)
        start = time.perf_counter()
        while True:
            now = time.perf_counter()
            elapsed = now - start
            if elapsed >= seconds:
                break
            if self.findsStarted < elapsed * self.findRate:
                self.startFind()
                continue
            if self.changes - 1 < elapsed * self.changeRate:
                self.change()
                continue
            nextFind = (self.findsStarted / self.findRate) - elapsed
            nextChange = (self.changes - 1) / self.changeRate - elapsed
            self.poll(max(0, min(nextFind, nextChange)))
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline:
            if self.caughtUp() and len(self.selector.get_map()) == len(self.watchers):
                break
            self.poll(0.1)
        inFlight = len(self.selector.get_map()) - len(self.watchers)
        if inFlight:
            self.error("%d finds unanswered after 10 s" % (inFlight,))
        if not self.caughtUp():
            behind = sum(
                1 for w in self.watchers if self.seen.get(w) != self.base + self.changes + 1
            )
            self.error("%d watchers missed the last change" % (behind,))
        return time.perf_counter() - start


def figures(values):
    values = sorted(values)
    if not values:
        return "none"
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return "median %.2f ms, p95 %.2f ms, max %.2f ms (%d samples)" % (
        statistics.median(values) * 1e3,
        p95 * 1e3,
        values[-1] * 1e3,
        len(values),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--finds-per-second", type=float, default=200.0)
    parser.add_argument("--changes-per-second", type=float, default=10.0)
    options = parser.parse_args()
    limit = raiseFileLimit()
    needed = SERVICES + WATCHERS + 200
    if limit < needed:
        raise SystemExit("the open-file hard limit is %d; this bench needs %d" % (limit, needed))
    server = Server()
    try:
        newPort, findPort, eventPort = server.ports
        rssStart = server.rss()
        began = time.perf_counter()
        held = register(newPort, SERVICES)
        waitVisible(findPort, SERVICES)
        setup = time.perf_counter() - began
        watchers = openWatchers(eventPort, WATCHERS)
        rssBefore = server.rss()
        load = Load(
            server, held[0], list(watchers), options.finds_per_second, options.changes_per_second
        )
        elapsed = load.run(options.seconds)
        rssAfter = server.rss()
        checker = selectors.DefaultSelector()
        for s in held:
            checker.register(s, selectors.EVENT_READ)
        closed = len(checker.select(0))
        checker.close()
        if closed:
            load.error("%d registration connections closed by the server" % (closed,))
        listed = find(findPort, b"bench 1\n", timeout=10).count(b"\n")
        if listed != SERVICES:
            load.error("%d services listed at the end, not %d" % (listed, SERVICES))
        tracebacks = server.tracebacks()
        if tracebacks:
            load.error("%d tracebacks in the server log" % (tracebacks,))
        for s in held + watchers:
            s.close()
    finally:
        server.stop()
    rows = [
        ("open-file limit", "%d" % (limit,)),
        ("services held", "%d (registered and visible in %.1f s)" % (SERVICES, setup)),
        ("event watchers", "%d" % (WATCHERS,)),
        ("duration", "%.1f s" % (elapsed,)),
        ("finds", "%d (%.1f/s)" % (len(load.findTimes), len(load.findTimes) / elapsed)),
        ("changes", "%d (%.1f/s)" % (load.changes, load.changes / elapsed)),
        ("errors", "%d" % (len(load.errors),)),
        ("server RSS at start", "%.1f MB" % (rssStart / 2**20,)),
        ("server RSS before load", "%.1f MB" % (rssBefore / 2**20,)),
        ("server RSS after load", "%.1f MB" % (rssAfter / 2**20,)),
        ("event delay (change to line)", figures(load.delays)),
        ("find latency", figures(load.findTimes)),
    ]
    width = max(len(r[0]) for r in rows)
    for what, figure in rows:
        print(what.ljust(width), figure)
    return 1 if load.errors else 0


if __name__ == "__main__":
    sys.exit(main())
