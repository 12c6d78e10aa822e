"""
Benchmark of the TCP plugin's registrar alone: python bench/registrar_bench.py

Registers 5,000 services through a L{Registrar} on a L{MemoryReactorClock},
each connection made at once on a L{StringTransport} and every listing
answered at once with all of them, and prints the CPU time this process
spends a registration, from C{register()} to its confirmation: the cost of
the throttle, the listing scheduler, the verdicts and the registrations'
state machines, without sockets or a server.  The median of TRIALS trials,
each from a collected heap, with their range; for scale, a plain
L{Deferred} made and fired.
"""

import gc
import os
import statistics
import sys
import time

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from client_bench import logLikeAnApplication  # noqa: E402

from txinferno.client._reconnect import connectionStarter  # noqa: E402
from txinferno.client.new import CONFIRM_AFTER, Registrar  # noqa: E402

COUNT = 5000
TRIALS = 7


def trial(count):
    """
    @return: the CPU seconds of C{count} registrations until confirmed.
    """
    reactor = MemoryReactorClock()
    finds = []

    def findServices(pairs):
        d = Deferred()
        finds.append(d)
        return d

    registrar = Registrar(
        connectionStarter(reactor, "tcp:host=127.0.0.1:port=6701"), findServices, reactor
    )
    services = {"s%d" % i: {"id": str(i), "bench": "1"} for i in range(count)}
    confirmed = []
    start = time.process_time()
    for name, attrs in services.items():
        registrar.register(name, attrs).addCallback(confirmed.append)
    while len(confirmed) < count:
        while reactor.tcpClients:
            factory = reactor.tcpClients.pop(0)[2]
            factory.buildProtocol(None).makeConnection(StringTransport())
        reactor.advance(CONFIRM_AFTER)
        for d in finds:
            if not d.called:
                d.callback(services)
    return time.process_time() - start


def deferredFloor(count):
    start = time.process_time()
    for _ in range(count):
        Deferred().callback(None)
    return time.process_time() - start


def main():
    times = []
    for _ in range(TRIALS):
        gc.collect()
        times.append(trial(COUNT) / COUNT)
    floor = deferredFloor(COUNT) / COUNT
    median = statistics.median(times)
    print(
        "registrar: %d registrations until confirmed, %.1f us of CPU a registration "
        "(median of %d trials, %.1f-%.1f); a Deferred made and fired: %.2f us (%.0f times it)"
        % (
            COUNT,
            median * 1e6,
            TRIALS,
            min(times) * 1e6,
            max(times) * 1e6,
            floor * 1e6,
            median / floor,
        )
    )


if __name__ == "__main__":
    logLikeAnApplication()
    main()
