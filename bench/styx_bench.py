"""
Benchmark of the embedded registry served over Styx: python bench/styx_bench.py

Runs C{twistd -n regmgr} with C{--styx} in a subprocess (so that the
benchmark's clients do not share its CPU time), logging at C{--log-level
warn} (where no change line is made, so that the figures are the
server's own), and measures, with plain
blocking sockets and selectors on the client side and messages encoded
before the clock starts:

  - registrations per second over 4 Styx connections (20,000 in all, each a
    Twalk to C{new}, a Topen and a Twrite, pipelined), until the last
    Rwrite; then that every one is listed by the TCP C{find} port;
  - the same per second of the server's CPU time (user and system), a
    figure that does not depend on what else the machine runs;
  - the server's memory per registration (resident memory before and
    after, the 20,000 registrations held open);
  - the registry model alone (C{create} and C{name}, as the Styx server
    calls them for a registration, logging filtered at warn as in the
    server) per CPU second, in a child process: the ceiling of the figure
    above, and what is left of a registration's cost for Styx;
  - delay from a change (an update through a held Styx fid) until the last
    of 1,000 Styx event readers (1,000 connections, one pending Tread each,
    made pending before the change is sent) has its Rread; median and p95
    of 30; and beside it this machine's floor for it: a child process that
    does nothing but send the same Rread to 1,000 loopback connections,
    timed the same way, a round of it after each of the server's so that
    both see the same load (the kernel's share, which no server code can
    go under: about 10 us a reader here, most of it the loopback send).

Each figure is printed with its target from issue 12 and the ratio
figure/target (below 1 is good for times, above 1 for rates), and the load
average of the machine at the end of the run.
"""

import os
import resource
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_bench import HOST, Table, cpuSeconds, freePorts, rss, startServer  # noqa: E402

from txinferno.wire import styx  # noqa: E402
from txinferno.wire.styx import NOFID, NOTAG, OREAD, OWRITE, FrameSplitter, decode  # noqa: E402

CONNECTIONS = 4
REGISTRATIONS = 20000
READERS = 1000
MSIZE = 8216


class Connection:
    """
    A blocking Styx connection: Tversion and Tattach (fid 0) done.
    """

    def __init__(self, port, uname="bench"):
        self.sock = socket.create_connection((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.splitter = FrameSplitter(1 << 20)
        self.pending = []
        assert self.call(styx.Tversion(NOTAG, MSIZE, "9P2000")) == styx.Rversion(
            NOTAG, MSIZE, "9P2000"
        )
        assert isinstance(self.call(styx.Tattach(1, 0, NOFID, uname, "")), styx.Rattach)

    def frames(self):
        while not self.pending:
            data = self.sock.recv(1 << 20)
            if not data:
                raise SystemExit("the server closed a Styx connection")
            self.pending.extend(self.splitter.feed(data))
        return self.pending.pop(0)

    def call(self, message):
        self.sock.sendall(message.encode())
        reply = decode(self.frames())
        if isinstance(reply, styx.Rerror):
            raise SystemExit("%s: %s" % (message, reply.ename))
        return reply

    def send(self, message):
        self.sock.sendall(message.encode())


def registrations(port, first, count):
    messages = []
    for i in range(first, first + count):
        fid = 10 + i
        messages.append(styx.Twalk(1, 0, fid, ("new",)).encode())
        messages.append(styx.Topen(1, fid, OWRITE).encode())
        messages.append(styx.Twrite(1, fid, 0, b"svc%d id %d proto bench" % (i, i)).encode())
    return Connection(port), b"".join(messages), 3 * count


MODEL_RATE = r"""
import os, sys, time
from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
    textFileLogObserver,
)
from twisted.internet.task import Clock
from txinferno.server.registry import Registry
from txinferno.wire.words import splitWords

globalLogBeginner.beginLoggingTo(
    [FilteringLogObserver(textFileLogObserver(open(os.devnull, "w")),
                          [LogLevelFilterPredicate(LogLevel.warn)])],
    redirectStandardIO=False,
)
count = int(sys.argv[1])
registry = Registry(Clock())
writes = [b"svc%d id %d proto bench" % (i, i) for i in range(count)]
start = time.process_time()
for data in writes:
    registry.name(registry.create(None, "bench"), splitWords(data))
print(count / (time.process_time() - start))
"""


def modelRate():
    """
    @return: registrations per CPU second of the registry model alone, in a
        child process.
    """
    out = subprocess.run(
        [sys.executable, "-c", MODEL_RATE, str(REGISTRATIONS)],
        check=True,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    return float(out.stdout)


FLOOR_SENDER = r"""
import socket, sys
count, data = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(count + 1)
print(listener.getsockname()[1], flush=True)
trigger, _ = listener.accept()
readers = []
for _ in range(count):
    reader, _ = listener.accept()
    reader.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    readers.append(reader)
while trigger.recv(1):
    for reader in readers:
        reader.send(data)
"""


class Floor:
    """
    This machine's floor for a change reaching C{count} readers: a child
    process that does nothing but send C{data} to each of C{count} loopback
    connections when told, timed as L{eventDelays} times the server (each
    of its rounds right after one of the server's, so that both see the
    same load).
    """

    def __init__(self, count, data):
        self.data = data
        self.sender = subprocess.Popen(
            [sys.executable, "-c", FLOOR_SENDER, str(count), data.hex()],
            stdout=subprocess.PIPE,
            text=True,
        )
        port = int(self.sender.stdout.readline())
        self.trigger = socket.create_connection((HOST, port))
        self.trigger.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.selector = selectors.DefaultSelector()
        self.readers = [socket.create_connection((HOST, port)) for _ in range(count)]
        for reader in self.readers:
            reader.setblocking(False)
            self.selector.register(reader, selectors.EVENT_READ)
        self.times = []
        self.used = 0

    def round(self):
        """
        Time one round: from telling the sender until every reader has
        received its copy.
        """
        waiting = set(self.readers)
        cpuBefore = cpuSeconds(self.sender.pid)
        start = time.perf_counter()
        self.trigger.send(b"x")
        while waiting:
            for key, _ in self.selector.select(10):
                assert len(key.fileobj.recv(100)) == len(self.data)
                waiting.discard(key.fileobj)
        self.times.append(time.perf_counter() - start)
        self.used += cpuSeconds(self.sender.pid) - cpuBefore

    def close(self):
        """
        @return: the median delay and the sender's CPU seconds per round.
        """
        self.selector.close()
        for reader in self.readers:
            reader.close()
        self.trigger.close()
        self.sender.kill()
        self.sender.wait()
        return statistics.median(self.times), self.used / len(self.times)


def registerAll(jobs):
    """
    Send every connection's requests and read until every reply is in.

    @return: the seconds taken.
    """
    selector = selectors.DefaultSelector()
    start = time.perf_counter()
    state = {}
    for conn, data, replies in jobs:
        conn.sock.setblocking(False)
        state[conn.sock] = [conn, memoryview(data), replies, b""]
        selector.register(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    left = len(jobs)
    while left:
        for key, events in selector.select(10):
            entry = state[key.fileobj]
            conn, data, replies, buffer = entry
            if events & selectors.EVENT_WRITE and data:
                try:
                    sent = conn.sock.send(data[: 1 << 18])
                except BlockingIOError:
                    sent = 0
                entry[1] = data = data[sent:]
                if not data:
                    selector.modify(conn.sock, selectors.EVENT_READ)
            if events & selectors.EVENT_READ:
                buffer += conn.sock.recv(1 << 20)
                offset = 0
                while len(buffer) - offset >= 5:
                    (size,) = struct.unpack_from("<I", buffer, offset)
                    if len(buffer) - offset < size:
                        break
                    if buffer[offset + 4] == styx.Rerror.TYPE:
                        raise SystemExit(
                            "registration refused: %r" % (decode(buffer[offset : offset + size]),)
                        )
                    offset += size
                    replies -= 1
                entry[2], entry[3] = replies, buffer[offset:]
                if replies == 0:
                    selector.unregister(conn.sock)
                    left -= 1
    elapsed = time.perf_counter() - start
    selector.close()
    for conn, _, _ in jobs:
        conn.sock.setblocking(True)
    return elapsed


def findCount(port):
    with socket.create_connection((HOST, port)) as s:
        s.sendall(b"proto bench\n")
        chunks = []
        while True:
            data = s.recv(1 << 20)
            if not data:
                return b"".join(chunks).count(b"\n")
            chunks.append(data)


def openReaders(port, count):
    readers = []
    selector = selectors.DefaultSelector()
    for _ in range(count):
        conn = Connection(port)
        conn.call(styx.Twalk(1, 0, 1, ("event",)))
        conn.call(styx.Topen(1, 1, OREAD))
        readers.append(conn)
    return readers, selector


def armReaders(readers, selector, request):
    """
    Send each reader a Tread of C{event} followed by a Tstat, and wait for
    every Rstat: the server serves a connection's requests in order, so the
    reads are then all pending.
    """
    for conn in readers:
        conn.sock.send(request)
    waiting = set(readers)
    while waiting:
        for key, _ in selector.select(10):
            conn = key.data
            data = conn.sock.recv(1000)
            assert data[4] == styx.Rstat.TYPE, data
            waiting.discard(conn)


def eventDelays(ticker, readers, selector, repeat, pid, floor):
    """
    Time changes (an update through the ticker's held fid) until the last
    reader has its Rread, each with every read already pending, and after
    each a round of the L{Floor}.

    @return: the median and p95 delays, and the server's CPU seconds per
        change (from those rounds only, in clock ticks summed over them).
    """
    request = styx.Tread(7, 1, 0, 64).encode() + styx.Tstat(8, 1).encode()
    for conn in readers:
        conn.sock.setblocking(False)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    times = []
    serverCPU = 0
    for i in range(repeat):
        armReaders(readers, selector, request)
        waiting = set(readers)
        cpuBefore = cpuSeconds(pid)
        start = time.perf_counter()
        ticker.send(styx.Twrite(1, 10, 0, b"tick %d" % (i,)))
        while waiting:
            ready = selector.select(10)
            if not ready:
                raise SystemExit("no event within 10 s")
            for key, _ in ready:
                conn = key.data
                data = conn.sock.recv(100)
                assert data[4] == styx.Rread.TYPE and len(data) == 20, data
                waiting.discard(conn)
        times.append(time.perf_counter() - start)
        serverCPU += cpuSeconds(pid) - cpuBefore
        assert decode(ticker.frames()) == styx.Rwrite(1, 5 + len(str(i)))
        floor.round()
    return statistics.median(times), statistics.quantiles(times, n=20)[18], serverCPU / repeat


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ports = freePorts(4)
    server = startServer(
        ports, ("new", "find", "event", "styx"), options=(), twistOptions=("--log-level", "warn")
    )
    findPort, styxPort = ports[1], ports[3]
    table = Table()
    row = table.row

    try:
        share = REGISTRATIONS // CONNECTIONS
        jobs = [registrations(styxPort, c * share, share) for c in range(CONNECTIONS)]
        before, cpuBefore = rss(server.pid), cpuSeconds(server.pid)
        elapsed = registerAll(jobs)
        after, cpuAfter = rss(server.pid), cpuSeconds(server.pid)
        row(
            "Styx registrations over %d connections" % (CONNECTIONS,),
            REGISTRATIONS / elapsed,
            "reg/s",
            20000,
            True,
        )
        row(
            "  the same per second of server CPU",
            REGISTRATIONS / (cpuAfter - cpuBefore),
            "reg/s",
            20000,
            True,
        )
        model = modelRate()
        perRegistration = (cpuAfter - cpuBefore) / REGISTRATIONS
        table.note(
            "  the registry model alone, per CPU second (us of a registration)",
            "%.0f reg/s (%.1f of %.1f us)" % (model, 1e6 / model, perRegistration * 1e6),
        )
        listed = findCount(findPort)
        if listed != REGISTRATIONS:
            raise SystemExit("TCP find lists %d of %d Styx registrations" % (listed, REGISTRATIONS))
        table.note(
            "server memory per Styx registration",
            "%.0f bytes" % ((after - before) / REGISTRATIONS,),
        )

        ticker = jobs[0][0]
        readers, selector = openReaders(styxPort, READERS)
        floor = Floor(READERS, styx.Rread(7, b"00000001\n").encode())
        median, p95, perChange = eventDelays(ticker, readers, selector, 30, server.pid, floor)
        floorMedian, floorCPU = floor.close()
        table.delays("change to %d Styx event readers" % (READERS,), (median, p95), 10)
        row("  server CPU per change to %d readers" % (READERS,), perChange * 1e3, "ms", 10)
        table.note(
            "  floor: a process that only sends it %d times" % (READERS,),
            "%.2f ms median (the server %.2f times it), %.2f ms CPU"
            % (floorMedian * 1e3, median / floorMedian, floorCPU * 1e3),
        )
        selector.close()
        for conn in readers:
            conn.sock.close()
        for conn, _, _ in jobs:
            conn.sock.close()
    finally:
        server.terminate()
        server.wait(30)

    table.note("load average during the run", "%.2f" % (os.getloadavg()[0],))
    table.print()


if __name__ == "__main__":
    main()
