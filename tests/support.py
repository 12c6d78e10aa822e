"""
The one helper module of the tests: the waits (L{TIMEOUT}, L{bounded},
L{turnUntil}) and Twisted's result helpers; the log of a test (L{logged},
L{logLines}); managers and registrations on the embedded registry or on a
connection of the test's own; the fakes the tests share, named for what
they do; and the installed commands, run as a user would.  The test
modules import from here, never from one another.
"""

import os
import queue
import re
import signal
import socket
import subprocess
import threading

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txinferno.client.manager import RegistryManager
from txinferno.client.tcp import connectionFromString
from txinferno.server.change import IRegistryObserver
from txinferno.tap import Options
from txinferno.testing.faultproxy import RegistryFaultProxy

TIMEOUT = 10
"""
Seconds any single wait in a test may take.
"""

_synchronous = SynchronousTestCase()
successResultOf = _synchronous.successResultOf
"""
C{successResultOf(d)}: what C{d} has fired with; fails the test if it has
not fired or has failed (Twisted's own L{SynchronousTestCase} helper).
"""
failureResultOf = _synchronous.failureResultOf
"""
C{failureResultOf(d, *types)}: the L{Failure} C{d} has failed with (of one
of C{types}, when given); fails the test otherwise.
"""
assertNoResult = _synchronous.assertNoResult
"""
C{assertNoResult(d)}: fails the test if C{d} has fired.
"""

LOOPBACK_PORTS = [
    option
    for name in ("new", "find", "event", "styx")
    for option in ("--" + name, "tcp:0:interface=127.0.0.1")
]
"""
The options of C{twistd regmgr} that serve each of its registry ports on a
loopback port the system picks (the web port is the caller's choice).
"""

COMMAND_TIMEOUT = 30
"""
Seconds a test may wait for a command it runs (an installed C{twistd} or
C{regquery}), which starts a Python interpreter of its own.
"""


def installedEnvironment(bindir):
    """
    @param bindir: the C{bin} folder of an installed copy (the C{installed}
        fixture).
    @return: this process's environment with no trace of the source tree
        (no C{PYTHONPATH}, no C{VIRTUAL_ENV}) and C{bindir} first on the
        C{PATH}, for running the installed commands.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(bindir) + os.pathsep + env.get("PATH", "")
    return env


def runInstalled(bindir, *args, cwd, timeout=COMMAND_TIMEOUT):
    """
    Run the installed command C{args[0]} of C{bindir} from C{cwd}, in
    L{installedEnvironment}, to its end.

    @return: its L{subprocess.CompletedProcess}, output captured as text.
    """
    return subprocess.run(
        [str(bindir / args[0]), *args[1:]],
        cwd=str(cwd),
        env=installedEnvironment(bindir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def bounded(d, timeout=TIMEOUT):
    """
    @return: C{d}, failing with a timeout after C{timeout} seconds.
    """
    return d.addTimeout(timeout, reactor)


@pytest.fixture
def logged():
    """
    The log events emitted during the test (L{capturedLogs}), as a list.
    """
    with capturedLogs() as events:
        yield events


def logLines(events, level=None, containing=""):
    """
    @param events: log events, such as those of L{logged} or
        L{capturedLogs}.
    @param level: a L{LogLevel} the events must be of, or L{None} for any.
    @param containing: a text the lines must contain.
    @return: the formatted lines of the C{events} that have a format.
    """
    lines = [
        formatEvent(e)
        for e in events
        if "log_format" in e and (level is None or e["log_level"] == level)
    ]
    return [line for line in lines if containing in line]


def turn():
    """
    @return: a L{Deferred} that fires on the reactor's next turn.
    """
    return deferLater(reactor, 0, lambda: None)


async def turnUntil(predicate, interval=0, timeout=TIMEOUT):
    """
    Let the reactor run, checking C{predicate()} every C{interval} seconds
    (every turn for 0), until it holds: for what no event tells, such as
    the sockets of the process.

    @raise AssertionError: when it does not hold within C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout
    while not predicate():
        assert reactor.seconds() < deadline, "condition not reached within %s s" % (timeout,)
        await deferLater(reactor, interval, lambda: None)


async def register(server, name, attrs):
    """
    Register C{name} with C{attrs} in C{server} through a TCP connection
    plugin of its own.

    @return: the registration, once the registry holds it.
    """
    connection = connectionFromString(reactor, server.description)
    return await bounded(connection.register(name, attrs))


def managerFor(server, **options):
    """
    @return: a started manager for C{server}, reconnecting quickly.
    """
    options.setdefault("initialDelay", 0.1)
    manager = RegistryManager.fromDescription(reactor, server.description, **options)
    manager.startService()
    return manager


def startedManager(connection, clock=None, **options):
    """
    @param clock: the manager's clock; a new L{Clock} when L{None}.
    @param options: more arguments of L{RegistryManager}.
    @return: a started L{RegistryManager} on C{connection}, and its clock.
    """
    if clock is None:
        clock = Clock()
    manager = RegistryManager(connection, clock=clock, **options)
    manager.startService()
    return manager, clock


@pytest_twisted.async_yield_fixture
async def proxy(registry_server):
    """
    A L{RegistryFaultProxy} in front of the embedded registry.
    """
    p = RegistryFaultProxy(
        reactor,
        registry_server.host,
        registry_server.newPort,
        registry_server.findPort,
        registry_server.eventPort,
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest_twisted.async_yield_fixture
async def manager(registry_server):
    """
    A started, connected manager for the embedded registry; stopped after
    the test.
    """
    m = managerFor(registry_server)
    await bounded(m.whenConnected())
    try:
        yield m
    finally:
        await bounded(m.stopService())


def registryServices(server):
    """
    @return: the services the embedded registry holds, C{{name: attrs}}.
    """
    return {s.name: dict(s.attributes()) for s in server.registry}


def registryPorts(server):
    """
    @return: the C{new}, C{find} and C{event} ports of the embedded
        registry C{server}.
    """
    return (server.newPort, server.findPort, server.eventPort)


def expectedView(services, group):
    """
    @param services: service tasks, each with a C{group} attribute.
    @return: what a monitor of C{group=G} should see of C{services}.
    """
    return {s.name: s.attrs for s in services if s.attrs["group"] == str(group)}


def whenRegistry(server, predicate):
    """
    @return: a L{Deferred} that fires once C{predicate(registry)} holds,
        checked now and after every change of the registry.
    """
    registry = server.registry
    d = Deferred()

    def check(*_):
        if not d.called and predicate(registry):
            registry.removeObserver(check)
            d.callback(None)

    registry.addObserver(check)
    check()
    return d.addTimeout(TIMEOUT, reactor)


class TurnClock(Clock):
    """
    A L{Clock} that can also run one turn as a reactor does: the calls due
    when the turn begins, not those they schedule for now (which
    L{Clock.advance} would run too).
    """

    def turn(self):
        due = [call for call in self.calls if call.getTime() <= self.seconds()]
        for call in due:
            if call in self.calls:
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


class MemoryNetwork:
    """
    A L{MemoryReactorClock} with servers listening on it, client endpoints
    to them, and a L{ConnectionCompleter} with which a test completes (or
    fails) each connection attempt.

    @ivar reactor: the memory reactor.
    @ivar completer: its connection completer.
    @ivar serverProtocols: every server protocol built, in order.
    """

    def __init__(self):
        self.reactor = MemoryReactorClock()
        self.completer = ConnectionCompleter(self.reactor)
        self.serverProtocols = []

    def listen(self, port, protocol=Protocol):
        """
        Listen on C{port} with protocols made by calling C{protocol()}.
        """

        def build(addr):
            server = protocol()
            server.factory = factory
            self.serverProtocols.append(server)
            return server

        factory = Factory()
        factory.buildProtocol = build
        TCP4ServerEndpoint(self.reactor, port).listen(factory)

    def clientEndpoint(self, port):
        """
        @return: a client endpoint to C{port} on this network.
        """
        return TCP4ClientEndpoint(self.reactor, "127.0.0.1", port)


def tapOptions(*argv):
    """
    @return: the options of C{twistd regmgr} (L{txinferno.tap.Options}),
        parsed from C{argv}.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options


def onStringTransport(factory):
    """
    @return: a protocol of C{factory}, connected from 127.0.0.1:1234 to a
        L{StringTransport}, and the transport.
    """
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


@implementer(IRegistryObserver)
class RegistryChangeRecorder:
    """
    An L{IRegistryObserver} that keeps every L{RegistryChange} it is told,
    in C{changes}.
    """

    def __init__(self):
        self.changes = []

    def registryChanged(self, change):
        self.changes.append(change)


class NeverAnswers(Protocol):
    """
    Accepts a connection and never answers, as the kernel of a stopped
    registry does.
    """


class SaysReady(Protocol):
    """
    An event port that says C{READY} and nothing more.
    """

    def connectionMade(self):
        self.transport.write(b"READY\n")


class Greeter(Protocol):
    """
    Says C{hello} and closes the connection.
    """

    def connectionMade(self):
        self.transport.write(b"hello\n")
        self.transport.loseConnection()


class Reader(Protocol):
    """
    Reads a connection to its end.

    @ivar closed: a L{Deferred} that fires with all it read once the
        connection is closed.
    """

    def __init__(self):
        self.data = b""
        self.closed = Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.closed.callback(self.data)


class Command:
    """
    An installed command running in the background, its output read line by
    line as it comes.
    """

    def __init__(self, bindir, *args, cwd, extraEnv=()):
        env = installedEnvironment(bindir)
        env.update(extraEnv)
        self.process = subprocess.Popen(
            [str(bindir / args[0]), *args[1:]],
            cwd=str(cwd),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def waitFor(self, pattern):
        """
        @return: the match of the first line from now that matches C{pattern},
            waiting at most L{COMMAND_TIMEOUT} seconds.
        """
        while True:
            line = self.lines.get(timeout=COMMAND_TIMEOUT)
            assert line is not None, "exited before %r:\n%s" % (pattern, "".join(self.seen))
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self):
        """
        Send SIGTERM and wait for the exit status (twistd, having shut down
        cleanly, ends itself with the signal it received: -SIGTERM).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=COMMAND_TIMEOUT)


STOPPED = -signal.SIGTERM
"""
The exit status of a C{twistd} that shut down cleanly on C{SIGTERM}.
"""


def assertKeepAlive(handle):
    """
    Assert that a socket has TCP keepalive with the server's default
    timers: 20 s idle, then 4 probes 10 s apart.
    """
    assert handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 20
        assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
        assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4


def gone(pid):
    """
    @return: whether process C{pid} has ended (a zombie waiting for its new
        parent to reap it counts as ended).
    """
    try:
        with open("/proc/%d/stat" % (pid,)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
