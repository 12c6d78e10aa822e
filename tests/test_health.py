"""
Tests for L{txinferno.client.health} (the built-in checks against real
loopback listeners, servers and processes; the L{HealthMonitor}'s rise and
fall on a L{Clock}) and for health-checked services: a
L{txinferno.client.service.ServiceTask} with a check, and the agent's
checks, observed through the embedded registry over loopback.
"""

import sys

import pytest
import pytest_twisted
from support import (
    bounded,
    failureResultOf,
    gone,
    registryServices,
    tapOptions,
    turnUntil,
    whenRegistry,
)
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txinferno._processgroup import SETSID
from txinferno.agent import Agent, checkServices, readServicesFile
from txinferno.client.health import (
    MAX_OUTPUT,
    CommandCheck,
    HealthMonitor,
    HealthState,
    HTTPGetCheck,
    TCPConnectCheck,
    checkFromString,
)
from txinferno.client.manager import RegistryManager
from txinferno.client.service import HEALTH_ATTRIBUTE, ServiceTask
from txinferno.errors import HealthCheckFailed, HealthCheckTimedOut
from txinferno.interfaces import IHealthCheck
from txinferno.tap import makeService


@implementer(IHealthCheck)
class ScriptedCheck:
    """
    A check whose runs end as the test says: each run takes the next of
    C{results} (C{True} passes, C{False} fails, C{None} never ends), or
    C{result} once they are used up.

    @ivar runs: the L{Deferred} of every run, in order.
    """

    description = "scripted"

    def __init__(self, results=(), result=True, interval=10.0, timeout=5.0, rise=2, fall=3):
        self.results = list(results)
        self.result = result
        self.interval = interval
        self.timeout = timeout
        self.rise = rise
        self.fall = fall
        self.runs = []
        self.cancelled = 0
        self._waiting = []

    def check(self):
        result = self.results.pop(0) if self.results else self.result
        if result is None:
            d = Deferred(lambda d: self._cancel())
        elif result:
            d = succeed(None)
        else:
            d = Deferred()
            d.errback(HealthCheckFailed("scripted failure"))
        self.runs.append(d)
        for count, waiter in list(self._waiting):
            if len(self.runs) >= count:
                self._waiting.remove((count, waiter))
                reactor.callLater(0, waiter.callback, None)
        return d

    def _cancel(self):
        self.cancelled += 1

    def whenRuns(self, count):
        """
        @return: a L{Deferred} that fires, on a later turn of the reactor,
            once C{count} runs have started.
        """
        d = Deferred()
        if len(self.runs) >= count:
            d.callback(None)
        else:
            self._waiting.append((count, d))
        return bounded(d)


class Recording:
    """
    A monitor's C{stateChanged}: records every change.
    """

    def __init__(self):
        self.changes = []

    def __call__(self, state, reason):
        self.changes.append((state, reason))

    def states(self):
        return [state for state, _ in self.changes]


def python(code, *args):
    """
    @return: the argv that runs C{code} in this Python.
    """
    return [sys.executable, "-c", code] + list(args)


def listen(factory):
    """
    @return: a port listening on loopback, on a free port.
    """
    return reactor.listenTCP(0, factory, interface="127.0.0.1")


class Accepting(Factory):
    """
    Accepts connections and says nothing; records when each one ends.
    """

    protocol = Protocol

    def __init__(self):
        self.made = 0
        self.lost = []
        self.connected = Deferred()

    def buildProtocol(self, addr):
        self.made += 1
        protocol = Protocol()
        lost = Deferred()
        self.lost.append(lost)
        protocol.connectionLost = lambda reason: lost.callback(None)
        if self.made == 1:
            reactor.callLater(0, self.connected.callback, None)
        return protocol


async def freePort():
    """
    @return: a loopback port nothing listens on (it did a moment ago).
    """
    port = listen(Accepting())
    number = port.getHost().port
    await port.stopListening()
    return number


class Status(Resource):
    """
    Answers every GET with C{code}.
    """

    isLeaf = True

    def __init__(self, code=200, body=b"ok"):
        Resource.__init__(self)
        self.code = code
        self.body = body

    def render_GET(self, request):
        request.setResponseCode(self.code)
        return self.body


# -- the checks themselves


@pytest.mark.parametrize(
    "check",
    [
        TCPConnectCheck(reactor, "127.0.0.1", 1),
        HTTPGetCheck(reactor, "http://127.0.0.1:1/"),
        CommandCheck(reactor, python("pass")),
        ScriptedCheck(),
    ],
    # Named by class: a repr with an address differs between pytest-xdist's
    # workers, which must collect the same tests.
    ids=lambda check: type(check).__name__,
)
def test_provides(check):
    verifyObject(IHealthCheck, check)


@pytest_twisted.ensureDeferred
async def test_tcpPasses():
    """
    A TCP check passes against a listening port, and closes its
    connection at once.
    """
    factory = Accepting()
    port = listen(factory)
    try:
        check = TCPConnectCheck(reactor, "127.0.0.1", port.getHost().port)
        assert await bounded(check.check()) is None
        assert factory.made == 1
        await bounded(factory.lost[0])
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_tcpFailsWhenNothingListens():
    check = TCPConnectCheck(reactor, "127.0.0.1", await freePort())
    with pytest.raises(ConnectionRefusedError):
        await bounded(check.check())


@pytest_twisted.async_yield_fixture
async def web():
    """
    A real twisted.web server on loopback answering with the status of its
    resource; yields the resource and the base URL.
    """
    resource = Status()
    port = listen(Site(resource))
    try:
        yield resource, "http://127.0.0.1:%d/" % (port.getHost().port,)
    finally:
        await port.stopListening()


@pytest.mark.parametrize("code", [200, 204, 301, 304, 399])
@pytest_twisted.ensureDeferred
async def test_httpPasses(web, code):
    resource, url = web
    resource.code = code
    assert await bounded(HTTPGetCheck(reactor, url + "health?x=1").check()) is None


@pytest.mark.parametrize(
    "code, phrase",
    [
        (404, "Not Found"),
        (500, "Internal Server Error"),
        (503, "Service Unavailable"),
        (410, "Gone"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_httpFails(web, code, phrase):
    resource, url = web
    resource.code = code
    with pytest.raises(HealthCheckFailed, match="HTTP %d %s" % (code, phrase)):
        await bounded(HTTPGetCheck(reactor, url).check())


@pytest_twisted.ensureDeferred
async def test_httpHugeBodyNotRead(web):
    """
    A check of a page with a 50 MB body passes on its status, without
    waiting for the body.
    """
    resource, url = web
    resource.body = b"x" * (50 * 1024 * 1024)
    assert await bounded(HTTPGetCheck(reactor, url).check()) is None


@pytest_twisted.ensureDeferred
async def test_httpFailsWhenNothingListens():
    check = HTTPGetCheck(reactor, "http://127.0.0.1:%d/" % (await freePort(),))
    with pytest.raises(ConnectionRefusedError):
        await bounded(check.check())


@pytest_twisted.ensureDeferred
async def test_commandPasses():
    assert await bounded(CommandCheck(reactor, python("import sys; sys.exit(0)")).check()) is None


@pytest_twisted.ensureDeferred
async def test_commandFails():
    """
    A failure says the exit status and what the command wrote on its
    standard output and error.
    """
    check = CommandCheck(
        reactor, python("import sys; print('db'); sys.stderr.write('is down\\n'); sys.exit(3)")
    )
    with pytest.raises(HealthCheckFailed) as info:
        await bounded(check.check())
    assert str(info.value).startswith("exit status 3: ")
    assert "db" in str(info.value) and "is down" in str(info.value)


@pytest_twisted.ensureDeferred
async def test_commandStdinClosed():
    """
    The command's standard input is closed: one that reads it to its end
    does not wait.
    """
    check = CommandCheck(reactor, python("import sys; sys.exit(len(sys.stdin.read()))"))
    assert await bounded(check.check()) is None


@pytest_twisted.ensureDeferred
async def test_commandOutputBounded():
    """
    Of a command writing 20 MB, the failure keeps the first
    L{MAX_OUTPUT} bytes.
    """
    check = CommandCheck(
        reactor, python("import sys; sys.stdout.write('y' * (20 * 1024 * 1024)); sys.exit(1)")
    )
    with pytest.raises(HealthCheckFailed) as info:
        await bounded(check.check())
    assert str(info.value) == "exit status 1: " + "y" * MAX_OUTPUT


@pytest.mark.skipif(SETSID is None, reason="no setsid command here")
@pytest_twisted.ensureDeferred
async def test_commandChildrenKilledAtTimeout(tmp_path):
    """
    A command killed at the timeout takes what it started with it: a
    shell script's background child does not outlive the run.
    """
    pidFile = tmp_path / "pid"
    script = "sleep 600 & echo $! > %s; wait" % (pidFile,)
    check = CommandCheck(reactor, ["sh", "-c", script], timeout=3)
    run = check.check()
    await turnUntil(lambda: pidFile.exists() and pidFile.read_text().strip())
    child = int(pidFile.read_text())
    assert not gone(child)
    run.cancel()
    failureResultOf(run, CancelledError)
    await turnUntil(lambda: gone(child))


@pytest_twisted.ensureDeferred
async def test_commandKilledAtTimeout():
    """
    A command still running at the timeout is killed, and the run fails
    with L{HealthCheckTimedOut}; the reactor is never blocked meanwhile.
    The command holds a connection to the test: it closes when the
    process dies.  The timeout runs on a L{Clock}, advanced once the
    command has connected.
    """
    factory = Accepting()
    port = listen(factory)
    try:
        check = CommandCheck(
            reactor,
            python(
                "import socket, sys, time; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
                " time.sleep(60)",
                str(port.getHost().port),
            ),
            timeout=3,
        )
        clock = Clock()
        changes = Recording()
        monitor = HealthMonitor(check, clock, changes)
        monitor.start()
        await bounded(factory.connected)
        assert changes.changes == []
        clock.advance(3)
        [(state, reason)] = changes.changes
        assert reason.check(HealthCheckTimedOut)
        assert state is monitor.state is HealthState.failing
        await bounded(factory.lost[0])
        monitor.stop()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_hungServerTimesOut():
    """
    An HTTP server that accepts and never answers makes the check time out,
    and the cancelled request closes its connection.
    """
    factory = Accepting()
    port = listen(factory)
    try:
        check = HTTPGetCheck(reactor, "http://127.0.0.1:%d/" % (port.getHost().port,), timeout=3)
        clock = Clock()
        changes = Recording()
        monitor = HealthMonitor(check, clock, changes)
        monitor.start()
        await bounded(factory.connected)
        clock.advance(3)
        [(state, reason)] = changes.changes
        monitor.stop()
        assert reason.check(HealthCheckTimedOut)
        assert reason.getErrorMessage() == "no answer within 3 seconds"
        await bounded(factory.lost[0])
    finally:
        await port.stopListening()


# -- the monitor, on a Clock


def test_firstVerdictAtOnce():
    """
    The first run decides at once, passing or failing; then runs come
    C{interval} seconds after the end of the previous one.
    """
    clock = Clock()
    check = ScriptedCheck(results=[True], interval=7)
    changes = Recording()
    monitor = HealthMonitor(check, clock, changes)
    assert monitor.state is HealthState.unknown
    monitor.start()
    assert changes.states() == [HealthState.passing]
    assert len(check.runs) == 1
    clock.advance(6.9)
    assert len(check.runs) == 1
    clock.advance(0.1)
    assert len(check.runs) == 2

    failing = Recording()
    monitor = HealthMonitor(ScriptedCheck(results=[False]), Clock(), failing)
    monitor.start()
    assert failing.states() == [HealthState.failing]
    assert failing.changes[0][1].check(HealthCheckFailed)


def test_riseAndFall():
    """
    A flapping check does not change the state: it takes C{fall}
    consecutive failures to turn failing and C{rise} consecutive passes to
    turn passing again.
    """
    clock = Clock()
    script = [True, False, True, False, False, True, False, False, False, True, False, True, True]
    check = ScriptedCheck(results=script, interval=1, rise=2, fall=3)
    changes = Recording()
    monitor = HealthMonitor(check, clock, changes)
    monitor.start()
    seen = [monitor.state]
    for _ in script[1:]:
        clock.advance(1)
        seen.append(monitor.state)
    P, F = HealthState.passing, HealthState.failing
    assert seen == [P, P, P, P, P, P, P, P, F, F, F, F, P]
    assert changes.states() == [P, F, P]
    assert changes.changes[1][1].check(HealthCheckFailed)
    assert monitor.reason is None


def test_neverAnsweringCheckTimesOut():
    """
    A run that never ends is cancelled after C{timeout} and counts as a
    failure; the next run comes C{interval} later.
    """
    clock = Clock()
    check = ScriptedCheck(results=[None], result=True, interval=10, timeout=2, rise=1, fall=1)
    changes = Recording()
    monitor = HealthMonitor(check, clock, changes)
    monitor.start()
    clock.advance(1.9)
    assert changes.changes == [] and check.cancelled == 0
    clock.advance(0.1)
    assert check.cancelled == 1
    [(state, reason)] = changes.changes
    assert state is HealthState.failing and reason.check(HealthCheckTimedOut)
    clock.advance(10)
    assert changes.states() == [HealthState.failing, HealthState.passing]


def test_stopCancelsAndKeepsState():
    """
    Stopping cancels the run in progress (it does not count) and runs no
    more; the state is kept, and starting again runs at once.
    """
    clock = Clock()
    check = ScriptedCheck(results=[True, None], result=False, interval=1, fall=1)
    changes = Recording()
    monitor = HealthMonitor(check, clock, changes)
    monitor.start()
    clock.advance(1)
    assert len(check.runs) == 2
    monitor.stop()
    assert check.cancelled == 1
    clock.advance(100)
    assert len(check.runs) == 2 and clock.getDelayedCalls() == []
    assert monitor.state is HealthState.passing
    assert changes.states() == [HealthState.passing]
    monitor.start()
    assert len(check.runs) == 3
    assert changes.states() == [HealthState.passing, HealthState.failing]


def test_checkRaising():
    """
    A check that raises instead of failing its Deferred fails the run.
    """
    check = ScriptedCheck()
    check.check = lambda: 1 / 0
    changes = Recording()
    HealthMonitor(check, Clock(), changes).start()
    [(state, reason)] = changes.changes
    assert state is HealthState.failing and reason.check(ZeroDivisionError)


# -- descriptions


@pytest.mark.parametrize(
    "description, kind, attrs",
    [
        (
            "tcp:127.0.0.1:22",
            TCPConnectCheck,
            dict(host="127.0.0.1", port=22, interval=10.0, timeout=5.0, rise=2, fall=3),
        ),
        (
            "tcp:[::1]:80 interval=5 timeout=0.5 rise=1 fall=4",
            TCPConnectCheck,
            dict(host="::1", port=80, interval=5.0, timeout=0.5, rise=1, fall=4),
        ),
        ("tcp:db.example:5432", TCPConnectCheck, dict(host="db.example", port=5432)),
        (
            "http://127.0.0.1:8080/health?a=b interval=2",
            HTTPGetCheck,
            dict(url="http://127.0.0.1:8080/health?a=b", interval=2.0),
        ),
        (
            "exec:%s -c 'print(''a b'')' x=1 fall=2" % (sys.executable,),
            CommandCheck,
            dict(argv=[sys.executable, "-c", "print('a b')", "x=1"], fall=2),
        ),
        ("exec: sh -c true", CommandCheck, dict(argv=["sh", "-c", "true"])),
    ],
)
def test_checkFromString(description, kind, attrs):
    check = checkFromString(reactor, description)
    assert type(check) is kind
    for attr, value in attrs.items():
        assert getattr(check, attr) == value


def test_httpsCheck():
    """
    An C{https} check needs TLS: without it, a clear error at once.
    """
    try:
        import OpenSSL  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs TLS, which needs pyOpenSSL"):
            checkFromString(reactor, "https://example.org/")
    else:
        assert checkFromString(reactor, "https://example.org/").url == "https://example.org/"


@pytest.mark.parametrize(
    "description, message",
    [
        ("", "empty check"),
        ("interval=5", "unknown kind"),
        ("udp:1.2.3.4:5", "unknown kind"),
        ("tcp:1.2.3.4", "give tcp:HOST:PORT"),
        ("tcp::80", "give tcp:HOST:PORT"),
        ("tcp:h:http", "give tcp:HOST:PORT"),
        ("tcp:h:0", "outside 1-65535"),
        ("tcp:h:70000", "outside 1-65535"),
        ("tcp:h:1 extra", "unexpected words"),
        ("tcp:h:1 interval=0", "interval must be a positive number"),
        ("tcp:h:1 timeout=-1", "timeout must be a positive number"),
        ("tcp:h:1 interval=nan", "interval must be a positive number"),
        ("tcp:h:1 interval=inf", "interval must be a positive number"),
        ("tcp:h:1 interval=soon", "interval=soon is not a number"),
        ("tcp:h:1 rise=1.5", "rise=1.5 is not a whole number"),
        ("tcp:h:1 fall=0", "fall must be a positive whole number"),
        ("tcp:h:1 rise=1 rise=2", "rise given twice"),
        ("http://", "not an http:// or https:// URL with a host"),
        ("http://h:port/", "bad URL"),
        ("http://h/\u00e9", "bad URL"),
        ("exec:", "no command given"),
        ("exec:/nonexistent/command arg", "is not an executable file"),
        ("exec:no-such-command-on-path", "is not an executable file"),
    ],
)
def test_badDescriptions(description, message):
    with pytest.raises(ValueError, match=message):
        checkFromString(reactor, description)


# -- health-checked services, through the embedded registry


@pytest_twisted.ensureDeferred
async def test_serviceFollowsItsCheck(registry_server, manager):
    """
    A service is registered once its check passes, unregistered when it
    fails, and registered again when it passes.
    """
    check = ScriptedCheck(results=[False], result=False, interval=0.01, rise=1, fall=1)
    task = manager.attach(ServiceTask("web", {"proto": "http"}, check=check))
    await check.whenRuns(3)
    assert "web" not in registryServices(registry_server)
    assert task.health is HealthState.failing and not task.registered

    check.result = True
    await whenRegistry(registry_server, lambda r: "web" in r)
    assert registryServices(registry_server)["web"] == {"proto": "http"}
    assert task.health is HealthState.passing

    check.result = False
    await whenRegistry(registry_server, lambda r: "web" not in r)
    assert task.health is HealthState.failing

    check.result = True
    await whenRegistry(registry_server, lambda r: "web" in r)
    await bounded(task.whenRegistered())


@pytest_twisted.ensureDeferred
async def test_serviceWaitsForFirstVerdict(registry_server, manager):
    """
    Before its check's first verdict a service is not registered; a
    detach meanwhile cancels the run.
    """
    check = ScriptedCheck(results=[None])
    task = manager.attach(ServiceTask("web", check=check))
    await check.whenRuns(1)
    await bounded(manager.whenRestored())
    assert task.health is HealthState.unknown
    assert "web" not in registryServices(registry_server)
    await bounded(manager.detach(task))
    assert check.cancelled == 1


@pytest_twisted.ensureDeferred
async def test_manyServicesFollowTheirChecks(registry_server, manager):
    """
    300 services whose checks fail together are all unregistered, and all
    registered again when they pass.
    """
    check = ScriptedCheck(result=True, interval=0.02, rise=1, fall=1)
    names = {"svc%d" % (i,) for i in range(300)}
    for name in sorted(names):
        manager.attach(ServiceTask(name, {"n": name}, check=check))
    await whenRegistry(registry_server, lambda r: names <= {s.name for s in r})
    check.result = False
    await whenRegistry(registry_server, lambda r: len(r) == 0)
    check.result = True
    await whenRegistry(registry_server, lambda r: names <= {s.name for s in r})


@pytest_twisted.ensureDeferred
async def test_serviceKeepsVerdictOverRestart(registry_server, manager):
    """
    Stopped and started again (an outage, a detach and attach), a service
    whose check was passing is registered at once, before the next run of
    its check ends.
    """
    check = ScriptedCheck(results=[True], result=None)
    task = manager.attach(ServiceTask("web", check=check))
    await whenRegistry(registry_server, lambda r: "web" in r)
    await bounded(manager.detach(task))
    await whenRegistry(registry_server, lambda r: "web" not in r)
    manager.attach(task)
    await whenRegistry(registry_server, lambda r: "web" in r)
    assert len(check.runs) == 2 and not check.runs[1].called
    assert task.health is HealthState.passing


@pytest_twisted.ensureDeferred
async def test_serviceKeptWhileFailing(registry_server, manager):
    """
    With C{keepWhileFailing} the service is registered at once, with
    C{health unknown}, and stays registered (the same registration) while
    the attribute follows the check.
    """
    check = ScriptedCheck(results=[None], result=True, interval=0.01, rise=1, fall=1)
    task = manager.attach(ServiceTask("web", {"proto": "http"}, check=check, keepWhileFailing=True))
    await whenRegistry(registry_server, lambda r: "web" in r)
    assert registryServices(registry_server)["web"] == {
        "proto": "http",
        HEALTH_ATTRIBUTE: "unknown",
    }
    held = registry_server.registry["web"]

    check.runs[0].callback(None)
    await whenRegistry(registry_server, lambda r: r["web"].get(HEALTH_ATTRIBUTE) == "passing")
    check.result = False
    await whenRegistry(registry_server, lambda r: r["web"].get(HEALTH_ATTRIBUTE) == "failing")
    check.result = True
    await whenRegistry(registry_server, lambda r: r["web"].get(HEALTH_ATTRIBUTE) == "passing")
    assert registry_server.registry["web"] is held
    assert task.attrs == {"proto": "http", HEALTH_ATTRIBUTE: "passing"}


def test_serviceCheckOptions():
    with pytest.raises(ValueError, match="the attribute health is its health check's"):
        ServiceTask("web", {"health": "x"}, check=ScriptedCheck(), keepWhileFailing=True)
    with pytest.raises(ValueError, match="persists"):
        ServiceTask("web", check=ScriptedCheck(), persist=True)
    ServiceTask("web", check=ScriptedCheck(), persist=True, keepWhileFailing=True)
    assert ServiceTask("web").health is None
    assert ServiceTask("web", {"health": "x"}).attrs == {"health": "x"}


# -- the agent


def exists(path):
    """
    @return: a check description: passes while C{path} exists.
    """
    return "'exec:test -e %s interval=0.02 timeout=5 rise=1 fall=1'" % (path,)


@pytest.mark.logs_errors
@pytest_twisted.ensureDeferred
async def test_agentChecks(registry_server, tmp_path):
    """
    A C{check} attribute, given to a C{--service} or in the services file,
    is the service's health check: the service is registered while it
    passes; the attribute is never sent.  A reload that changes the check
    takes the new one.
    """
    up = tmp_path / "up"
    fileUp = tmp_path / "file-up"
    path = tmp_path / "services"
    path.write_text("service=filed proto=http check=%s\nservice=plain a=1\n" % (exists(fileUp),))
    agent = Agent(
        lambda: RegistryManager.fromDescription(reactor, registry_server.description),
        services=[("fixed", {"f": "1", "check": exists(up)[1:-1]})],
        servicesFile=str(path),
        reactor=reactor,
    )
    agent.startService()
    try:
        await whenRegistry(registry_server, lambda r: "plain" in r)
        assert {"fixed", "filed"}.isdisjoint(registryServices(registry_server))

        up.touch()
        await whenRegistry(registry_server, lambda r: "fixed" in r)
        fileUp.touch()
        await whenRegistry(registry_server, lambda r: "filed" in r)
        services = registryServices(registry_server)
        assert services["fixed"] == {"f": "1"} and services["filed"] == {"proto": "http"}

        up.unlink()
        await whenRegistry(registry_server, lambda r: "fixed" not in r)

        # The file's check now looks for another file: reloaded, it fails.
        path.write_text(
            "service=filed proto=http check=%s\nservice=plain a=1\n" % (exists(tmp_path / "other"),)
        )
        await bounded(agent.reload())
        await whenRegistry(registry_server, lambda r: "filed" not in r)
        (tmp_path / "other").touch()
        await whenRegistry(registry_server, lambda r: "filed" in r)
        assert registryServices(registry_server)["filed"] == {"proto": "http"}

        # An unchanged check keeps its task.
        filed = agent.services["filed"]
        await bounded(agent.reload())
        assert agent.services["filed"] is filed

        # A bad check in the file changes nothing.
        path.write_text("service=filed proto=http check='tcp:nowhere'\n")
        await bounded(agent.reload())
        assert agent.services["filed"] is filed and "plain" in agent.services
    finally:
        await bounded(agent.stopService())
    await whenRegistry(registry_server, lambda r: len(r) == 0)


@pytest_twisted.ensureDeferred
async def test_agentKeepFailing(registry_server, tmp_path):
    """
    With C{keepFailing} the agent's checked services stay registered with
    C{health failing}; a reload does not register them again for the
    attribute the agent was not given.
    """
    up = tmp_path / "up"
    path = tmp_path / "services"
    path.write_text("service=filed proto=http check=%s\n" % (exists(up),))
    agent = Agent(
        lambda: RegistryManager.fromDescription(reactor, registry_server.description),
        servicesFile=str(path),
        reactor=reactor,
        keepFailing=True,
    )
    agent.startService()
    try:
        await whenRegistry(
            registry_server, lambda r: "filed" in r and r["filed"].get("health") == "failing"
        )
        held = registry_server.registry["filed"]
        up.touch()
        await whenRegistry(registry_server, lambda r: r["filed"].get("health") == "passing")
        await bounded(agent.reload())
        assert registry_server.registry["filed"] is held
        assert registryServices(registry_server)["filed"] == {"proto": "http", "health": "passing"}
    finally:
        await bounded(agent.stopService())


def test_checkServices(tmp_path):
    path = tmp_path / "services"
    path.write_text("service=web proto=http check='tcp:127.0.0.1:80 rise=3'\nservice=other a=1\n")
    checks = checkServices(readServicesFile(str(path)), False, reactor)
    assert list(checks) == ["web"] and checks["web"].rise == 3
    with pytest.raises(ValueError, match="service 'web': .*unknown kind"):
        checkServices({"web": {"check": "ftp:x"}}, False, reactor)
    with pytest.raises(ValueError, match="service 'web' persists"):
        checkServices({"web": {"check": "tcp:h:1", "persist": "1"}}, False, reactor)
    assert list(checkServices({"web": {"check": "tcp:h:1", "persist": "1"}}, True, reactor)) == [
        "web"
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--service", "web check 'ftp:x'"],
            "--service: service 'web': check 'ftp:x': unknown kind",
        ),
        (["--service", "web check 'tcp:h:1 rise=0'"], "rise must be a positive whole number"),
        (["--service", "web persist 1 check tcp:h:1"], "service 'web' persists"),
    ],
)
def test_badCheckOptions(argv, message):
    with pytest.raises(usage.UsageError, match=message):
        tapOptions("--registry", "tcp:127.0.0.1", *argv)


def test_badCheckInServicesFile(tmp_path):
    path = tmp_path / "services"
    path.write_text("service=web check='exec:/nonexistent/probe'\n")
    with pytest.raises(
        usage.UsageError, match="--services %s: service 'web': exec check" % (path,)
    ):
        tapOptions("--registry", "tcp:127.0.0.1", "--services", str(path))
    path.write_text("service=web persist=1 check='tcp:h:1'\n")
    with pytest.raises(usage.UsageError, match="persists"):
        tapOptions("--registry", "tcp:127.0.0.1", "--services", str(path))
    tapOptions("--registry", "tcp:127.0.0.1", "--services", str(path), "--keep-failing")


@pytest_twisted.ensureDeferred
async def test_keepFailingOption(registry_server, tmp_path):
    """
    C{twistd regmgr --keep-failing}: a service whose check fails is
    registered with C{health failing}; one without a check is as ever.
    """
    service = makeService(
        tapOptions(
            "--registry",
            registry_server.description,
            "--keep-failing",
            "--service",
            "web proto http check %s" % (exists(tmp_path / "absent"),),
            "--service",
            "plain a 1",
        ),
        reactor,
    )
    service.startService()
    try:
        await whenRegistry(
            registry_server,
            lambda r: "plain" in r and "web" in r and r["web"].get("health") == "failing",
        )
        services = registryServices(registry_server)
        assert services == {"web": {"proto": "http", "health": "failing"}, "plain": {"a": "1"}}
    finally:
        await bounded(service.stopService())
