"""
Bad input, measured (issue 5, item 3): python bench/fuzz.py [--scale X] [--seed N]

Runs the fuzz targets of C{tests/fuzz.py} (word splitter and line
assembler, find-answer parser, event reader, the three server protocols on
a registry model) on more than 100,000 inputs from a seeded generator, each
under a time bound (an input that takes longer counts as a hang).  Every
2,000 inputs it also throws a batch of the same inputs at the three ports
of a running C{twistd regmgr} over TCP, then checks that a well-behaved
client still registers, sees the event, finds and unregisters.

Prints a table: target, inputs, exceptions, hangs, seconds; then the live
server's figures.  Exits non-zero when anything failed.
"""

import argparse
import os
import random
import signal
import socket
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import load  # noqa: E402

from txinferno.testing import fuzz as targets  # noqa: E402

COUNTS = {
    "words": 150000,
    "find answer": 100000,
    "event reader": 100000,
    "server protocols": 50000,
}
"""
Inputs per target at scale 1 (400,000 in all).
"""

HANG_SECONDS = 2.0
"""
The time bound of one input.
"""

LIVE_EVERY = 2000
"""
Inputs between two rounds against the live server.
"""


class Hang(BaseException):
    """
    Raised in the fuzzed code when an input takes longer than its bound.
    """


def _alarm(signum, frame):
    raise Hang()


class LiveCheck:
    """
    Garbage at a running server's three ports, then a well-behaved client.
    """

    def __init__(self, server, rng):
        self.server = server
        self.rng = rng
        self.rounds = 0
        self.garbageConnections = 0
        self.failures = []

    def garbage(self, count=12):
        """
        Open C{count} connections spread over the three ports and write an
        input in pieces on each.  The server may close a connection before
        all is written (a rejected registration, an answered query), so
        only a failure to connect counts.
        """
        for i in range(count):
            port = self.server.ports[i % 3]
            data, cuts = targets.randomInput(self.rng)
            try:
                s = socket.create_connection((load.HOST, port), timeout=5)
            except OSError as e:
                self.failures.append("garbage connection to port %d: %s" % (port, e))
                continue
            with s:
                try:
                    for piece in targets.pieces(data, cuts):
                        s.sendall(piece)
                except OSError:
                    pass
            self.garbageConnections += 1

    def wellBehaved(self):
        """
        Watch, register, see a newer version reported and the service
        found, unregister, see it gone.
        """
        newPort, findPort, eventPort = self.server.ports
        name = b"fuzzcheck-%d" % (self.rounds,)
        query = b"fuzzcheck %d\n" % (self.rounds,)
        expected = name + b" fuzzcheck %d\n" % (self.rounds,)
        with socket.create_connection((load.HOST, eventPort), timeout=5) as watcher:
            lines = EventLines(watcher)
            if lines.next() != b"READY":
                raise AssertionError("the event port did not start with READY")
            seen = lines.drain()
            with socket.create_connection((load.HOST, newPort), timeout=5) as held:
                held.sendall(expected)
                while lines.next() <= seen:
                    pass
                answer = load.find(findPort, query, timeout=5)
                if answer != expected:
                    raise AssertionError("find answered %r, not %r" % (answer, expected))
            deadline = time.monotonic() + 5
            while load.find(findPort, query, timeout=5):
                if time.monotonic() > deadline:
                    raise AssertionError("%s still listed after its connection closed" % (name,))

    def run(self):
        self.rounds += 1
        self.garbage()
        try:
            self.wellBehaved()
        except (AssertionError, OSError) as e:
            self.failures.append("round %d: %s" % (self.rounds, e))


class EventLines:
    """
    The lines of an event connection, read with a timeout; every line after
    C{READY} must be a version number.
    """

    def __init__(self, sock):
        self._sock = sock
        self._buffer = b""
        self._ready = False

    def next(self, timeout=5):
        """
        @return: the next line: C{b"READY"}, then versions as L{int}s.
        @raise AssertionError: on a malformed line, the close or a timeout.
        """
        self._sock.settimeout(timeout)
        while b"\n" not in self._buffer:
            data = self._sock.recv(4096)
            if not data:
                raise AssertionError("the event port closed the connection")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        if not self._ready:
            self._ready = True
            return line
        if not line.isdigit() or len(line) < 8:
            raise AssertionError("event line %r" % (line,))
        return int(line)

    def drain(self):
        """
        @return: the last version already received (0 if none).
        """
        last = 0
        try:
            while True:
                last = self.next(timeout=0.05)
        except TimeoutError:
            return last


def fuzz(name, check, count, rng, live, examples):
    """
    Run C{check} on C{count} generated inputs.

    @return: C{(exceptions, hangs, seconds)}
    """
    exceptions = hangs = 0
    start = time.perf_counter()
    for i in range(count):
        data, cuts = targets.randomInput(rng)
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
        try:
            check(data, cuts)
        except Hang:
            hangs += 1
            examples.append((name, "hang", data, cuts, ""))
        except Exception:
            exceptions += 1
            examples.append((name, "exception", data, cuts, traceback.format_exc(limit=3)))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if (i + 1) % LIVE_EVERY == 0:
            live.run()
    return exceptions, hangs, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the input counts")
    parser.add_argument("--seed", type=int, default=20261123)
    options = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(options.seed)
    server = load.Server()
    examples = []
    rows = []
    try:
        live = LiveCheck(server, random.Random(options.seed + 1))
        for name, check in targets.TARGETS:
            count = int(COUNTS[name] * options.scale)
            rows.append((name, count) + fuzz(name, check, count, rng, live, examples))
        live.run()
        tracebacks = server.tracebacks()
        rss = server.rss()
    finally:
        server.stop()
    total = ("total",) + tuple(sum(r[i] for r in rows) for i in range(1, 5))
    print("%-18s %8s %10s %6s %8s" % ("target", "inputs", "exceptions", "hangs", "seconds"))
    for row in rows + [total]:
        print("%-18s %8d %10d %6d %8.1f" % row)
    print()
    print(
        "live server: %d rounds, %d garbage connections, %d well-behaved client failures, "
        "%d tracebacks in its log, RSS %.1f MB"
        % (live.rounds, live.garbageConnections, len(live.failures), tracebacks, rss / 2**20)
    )
    for failure in live.failures[:5]:
        print("  ", failure)
    for name, kind, data, cuts, text in examples[:5]:
        print("%s %s on %r cut at %r\n%s" % (name, kind, data, cuts, text))
    return 1 if examples or live.failures or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
