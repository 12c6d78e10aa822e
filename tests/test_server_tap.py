"""
C{twistd regmgr}: its options and the service it makes (the installed
plugin is tested elsewhere).
"""

import gc
import io
import re
import socket
import subprocess
import sys

import pytest
import pytest_twisted
from support import COMMAND_TIMEOUT, bounded, tapOptions
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.python import usage

import txinferno
from txinferno.server.protocols import PortListenError, RegistryServer
from txinferno.server.registry import Registry
from txinferno.tap import Options, freeze, makeService, withBacklog
from txinferno.testing import connectRaw, exchange


def test_defaults():
    """
    With no options: TCP ports 6701, 6702 and 6703 on 127.0.0.1, an empty
    registry, the usual line limit and a 60 s idle timeout.
    """
    options = tapOptions()
    for name, port in (("new", 6701), ("find", 6702), ("event", 6703)):
        endpoint = options.endpoints[name]
        assert (endpoint._port, endpoint._interface, endpoint._backlog) == (port, "127.0.0.1", 4096)
    assert len(options.registry) == 0
    assert options["max-line"] == 8192 and options["idle-timeout"] == 60


def test_basePortAndInterface():
    """
    C{--port BASE} and C{--interface ADDR} move the three ports together;
    C{--new}, C{--find} or C{--event} replaces one of them.
    """
    options = tapOptions("--port", "7701", "--interface", "127.0.0.2", "--find", "tcp:9999")
    endpoints = options.endpoints
    assert (endpoints["new"]._port, endpoints["new"]._interface) == (7701, "127.0.0.2")
    assert (endpoints["find"]._port, endpoints["find"]._interface) == (9999, "")
    assert (endpoints["event"]._port, endpoints["event"]._interface) == (7703, "127.0.0.2")
    assert endpoints["event"]._backlog == 4096
    options = tapOptions("--port", "0", "--interface", "::1")
    assert [options.endpoints[n]._port for n in ("new", "find", "event")] == [0, 0, 0]
    assert options.endpoints["new"]._interface == "::1"


def test_helpText():
    """
    Every option's text in C{--help} is one paragraph with single spaces.
    """
    text = str(Options())
    for line in text.splitlines():
        doc = re.sub(r"^\s*(-\w, )?--[\w-]+=?\s+", "", line).strip()
        assert "  " not in doc, line
    for option in ("--port=", "--interface=", "--max-retry-delay="):
        assert option in text


_IMPORTED = """
import sys
from twisted.internet import reactor
from txinferno.tap import Options, makeService

options = Options()
options.parseOptions(sys.argv[1:])
makeService(options, reactor)
print(" ".join(sorted(
    name
    for name in ("txinferno.server.styx", "txinferno.web.site", "twisted.web.server", "prometheus_client")
    if name in sys.modules
)))
"""


@pytest.mark.parametrize(
    "argv, imported",
    [
        (
            ["--styx", "tcp:0:interface=127.0.0.1", "--web", "tcp:0:interface=127.0.0.1"],
            "prometheus_client twisted.web.server txinferno.server.styx txinferno.web.site",
        ),
        (
            ["--no-styx", "--web", "tcp:0:interface=127.0.0.1"],
            "prometheus_client twisted.web.server txinferno.web.site",
        ),
        (["--no-web", "--styx", "tcp:0:interface=127.0.0.1"], "txinferno.server.styx"),
        (["--no-web", "--no-styx"], ""),
    ],
)
def test_importsWhatItServes(argv, imported):
    """
    The modules of the Styx server and of the web port (twisted.web's
    server, C{prometheus_client}) are imported only when they are served:
    a server of the three TCP ports alone holds none of them in memory.
    """
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTED, "--port", "0", *argv],
        check=True,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    ).stdout
    assert out == imported + "\n"


def test_freezesOnceRunning():
    """
    Made before its reactor runs, as twistd makes it, the service has the
    reactor freeze the objects of the startup once it runs; made in a
    running reactor (an application's, a test's), it leaves the
    collector alone.
    """
    clock = MemoryReactorClock()
    makeService(tapOptions("--no-web", "--no-styx", "--port", "0"), clock)
    assert clock.whenRunningHooks == [(freeze, (), {})]
    assert gc.get_freeze_count() == 0
    try:
        freeze()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert reactor.running
    makeService(tapOptions("--no-web", "--no-styx", "--port", "0"), reactor)
    assert gc.get_freeze_count() == 0


def test_version(capsys):
    """
    C{--version} prints txinferno's version.
    """
    with pytest.raises(SystemExit) as e:
        tapOptions("--version")
    assert e.value.code == 0
    assert capsys.readouterr().out == "twistd regmgr (txinferno) %s\n" % (txinferno.__version__,)


@pytest.mark.logs_errors
def test_portInUse():
    """
    When one port cannot listen, none does: starting fails with one error
    naming the port's role and address, and no port was opened, even for a
    moment (Twisted logs each port that starts listening).
    """
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        options = tapOptions("--port", "0", "--event", "tcp:%d:interface=127.0.0.1" % (port,))
        service = makeService(options, reactor)
        with capturedLogs() as events:
            with pytest.raises(PortListenError) as e:
                service.startService()
        assert str(e.value) == (
            "cannot listen for the event port on 127.0.0.1:%d: address already in use" % (port,)
        )
        assert [formatEvent(event) for event in events] == []
        assert service.server.ports == []
        with pytest.raises(SystemExit) as e:
            makeService(options, reactor).privilegedStartService()
        assert e.value.code == 1
    finally:
        busy.close()


def test_summaryLine():
    """
    Once the ports listen, one line says where each serves and how many
    static services there are, in the registry's own terms.
    """
    db = io.StringIO("service=s1 a=1\nservice=s2\n")
    registry = Registry()
    registry.loadStatic(db)
    server = RegistryServer(registry, reactor)
    with capturedLogs() as events:
        ports = server.listen(*["tcp:0:interface=127.0.0.1"] * 3)
    ports = [p.getHost().port for p in ports.result]
    lines = [formatEvent(e) for e in events]
    assert lines[-1] == (
        "registry serving new=127.0.0.1:%d, find=127.0.0.1:%d, event=127.0.0.1:%d, "
        "2 static services" % tuple(ports)
    )
    assert lines[:-1] == [
        "%s port starting on %d" % pair for pair in zip(("new", "find", "event"), ports)
    ]
    return server.stopListening()


def test_staticServices(tmp_path):
    """
    C{--db} loads static services; the limits are configurable.
    """
    db = tmp_path / "services.db"
    db.write_text("service=s1 a=1\nservice=s2\n\tb = 2\n")
    options = tapOptions("--db", str(db), "--max-line", "100", "--idle-timeout", "2.5")
    assert options.registry.answer([]) == b"s1 a 1\ns2 b 2\n"
    assert options["max-line"] == 100 and options["idle-timeout"] == 2.5


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--db", "/nonexistent/services.db"],
            "--db /nonexistent/services.db: cannot read: No such file or directory",
        ),
        (["--new", "bogus:1234"], "--new bogus:1234: bad endpoint: "),
        (["--find", "tcp:notaport"], "--find tcp:notaport: bad endpoint: "),
        (["--max-line", "0"], "--max-line 0: must be a positive integer"),
        (["--max-line", "abc"], "--max-line abc: must be a positive integer"),
        (["--idle-timeout", "-1"], "--idle-timeout -1: must be a positive number"),
        (["--port", "65534"], "--port 65534: must leave room for ports BASE+1 and BASE+2"),
        (["--port", "x"], "--port x: must be an integer, 0 or more"),
        (["--interface", "no:such"], "--interface no:such: not an IPv4 or IPv6 address"),
        (["--service", "name 'unterminated"], "--service name 'unterminated: unterminated quote"),
        (["--monitor", "descr 'a"], "--monitor descr 'a: unterminated quote"),
    ],
)
def test_usageErrors(args, message):
    """
    Bad options are usage errors with a one-line message.
    """
    with pytest.raises(usage.UsageError) as e:
        tapOptions(*args)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "content, message",
    [
        ("service='open\n", "line 1: unterminated quote"),
        ("service=new\n", "bad service name"),
        (b"service=\xff\n", "invalid start byte"),
    ],
)
def test_badStaticFile(tmp_path, content, message):
    """
    A static file that cannot be parsed or holds a bad name is a usage
    error naming the file.
    """
    db = tmp_path / "bad.db"
    if isinstance(content, bytes):
        db.write_bytes(content)
    else:
        db.write_text(content)
    with pytest.raises(usage.UsageError) as e:
        tapOptions("--db", str(db))
    assert message in str(e.value) and str(db) in str(e.value)
    assert "cannot read" not in str(e.value)


class RecordingEndpoint:
    """
    A loopback endpoint on a free port that remembers its listening port.
    """

    def __init__(self):
        self._endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        self.port = defer.Deferred()

    def listen(self, factory):
        d = self._endpoint.listen(factory)

        def listening(port):
            self.port.callback(port.getHost().port)
            return port

        return d.addCallback(listening)


@pytest_twisted.ensureDeferred
async def test_makeService(tmp_path):
    """
    The service serves the static services and registrations on its three
    ports while running.
    """
    db = tmp_path / "services.db"
    db.write_text("service=static k=v\n")
    options = tapOptions("--db", str(db), "--no-web")
    options.endpoints = {name: RecordingEndpoint() for name in ("new", "find", "event")}
    service = makeService(options, reactor)
    assert [s.name for s in service] == ["ports"]
    service.startService()
    try:
        new, find, event = await bounded(
            defer.gatherResults([options.endpoints[n].port for n in ("new", "find", "event")])
        )
        watcher = await bounded(connectRaw(reactor, "127.0.0.1", event))
        assert await bounded(watcher.readLine()) == b"READY"
        conn = await bounded(connectRaw(reactor, "127.0.0.1", new))
        conn.send(b"dynamic k v\n")
        assert await bounded(watcher.readLine()) == b"00000001"
        answer = await bounded(exchange(reactor, "127.0.0.1", find, b"k v\n"))
        assert answer == b"static k v\ndynamic k v\n"
    finally:
        await service.stopService()
        await service.server.disconnectAll()


@pytest_twisted.ensureDeferred
async def test_defaultBacklog():
    """
    A TCP endpoint string given without C{backlog=} listens with a queue of
    4096 connections; one that names a backlog, or is not TCP, is kept.
    """
    options = tapOptions(
        "--new",
        "tcp:0:interface=127.0.0.1",
        "--find",
        "tcp:0:interface=127.0.0.1:backlog=7",
        "--event",
        "tcp6:0:interface=\\:\\:1",
    )
    assert options["new"] == "tcp:0:interface=127.0.0.1:backlog=4096"
    assert options["find"] == "tcp:0:interface=127.0.0.1:backlog=7"
    assert options["event"] == "tcp6:0:interface=\\:\\:1:backlog=4096"
    assert tapOptions()["new"] == "tcp:6701:interface=127.0.0.1:backlog=4096"
    assert withBacklog("unix:/tmp/x.sock") == "unix:/tmp/x.sock"
    port = await options.endpoints["new"].listen(Factory())
    try:
        assert port.backlog == 4096
    finally:
        await port.stopListening()


def test_limitOptions():
    """
    The limits and timers of the server are options with sane defaults,
    given to the registry and to the server.
    """
    options = tapOptions()
    registry = options.registry
    assert (
        registry.maxServices,
        registry.maxAttributes,
        registry.maxServiceBytes,
        registry.maxPersistentPerOrigin,
        registry.logFullChanges,
    ) == (100000, 256, 16384, 1000, False)
    options = tapOptions(
        "--max-services",
        "5",
        "--max-attributes",
        "6",
        "--max-service-bytes",
        "700",
        "--max-persistent",
        "8",
        "--max-finds",
        "2",
        "--find-buffer",
        "4096",
        "--watcher-timeout",
        "1.5",
        "--keepalive-idle",
        "9",
        "--keepalive-interval",
        "3",
        "--keepalive-count",
        "2",
        "--log-changes",
    )
    registry = options.registry
    assert (
        registry.maxServices,
        registry.maxAttributes,
        registry.maxServiceBytes,
        registry.maxPersistentPerOrigin,
        registry.logFullChanges,
    ) == (5, 6, 700, 8, True)
    service = makeService(options, reactor)
    server = service.server
    assert (server.maxFinds, server.findBufferSize, server.watcherTimeout, server.keepAlive) == (
        2,
        4096,
        1.5,
        (9, 3, 2),
    )
    # The Styx port's connections have the same keepalive timers.
    assert service.styxServer.keepAlive == (9, 3, 2)
    defaults = makeService(tapOptions(), reactor).server
    assert (
        defaults.maxFinds,
        defaults.findBufferSize,
        defaults.watcherTimeout,
        defaults.keepAlive,
    ) == (16, 65536, 30.0, (20, 10, 4))
