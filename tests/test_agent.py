"""
Tests for L{txinferno.agent} (the agent of C{twistd regmgr}), against the
embedded registry over loopback.
"""

import shlex
import sys

import pytest
import pytest_twisted
from support import bounded, gone, turnUntil, whenRegistry
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.task import Clock, deferLater
from twisted.logger import LogLevel, capturedLogs, formatEvent

from txinferno._processgroup import SETSID
from txinferno.agent import (
    MAX_HOOK_STDERR,
    Agent,
    ChangeCommand,
    parseQuerySpec,
    parseServiceSpec,
    readServicesFile,
)
from txinferno.client.manager import RegistryManager
from txinferno.client.service import ServiceTask


def attributes(server, name):
    return dict(server.registry[name].attributes())


def test_parseServiceSpec():
    assert parseServiceSpec("web proto http descr 'my site'") == (
        "web",
        {"proto": "http", "descr": "my site"},
    )
    with pytest.raises(ValueError, match="odd number"):
        parseServiceSpec("web proto")
    with pytest.raises(ValueError, match="bad service name"):
        parseServiceSpec("find a b")
    with pytest.raises(ValueError, match="empty service"):
        parseServiceSpec("  ")


def test_parseQuerySpec():
    assert parseQuerySpec("proto *") == [("proto", "*")]
    with pytest.raises(ValueError, match="odd number"):
        parseQuerySpec("proto")


def test_readServicesFile(tmp_path):
    path = tmp_path / "services"
    path.write_text("service=web proto=http\n\tdescr='my site'\nother=entry\n")
    assert readServicesFile(str(path)) == {"web": {"proto": "http", "descr": "my site"}}
    path.write_text("service=web a=1\nservice=web a=2\n")
    with pytest.raises(ValueError, match="given twice"):
        readServicesFile(str(path))
    path.write_text("service='a b' x=1\n")
    with pytest.raises(ValueError, match="bad character"):
        readServicesFile(str(path))


@pytest.mark.logs_errors
@pytest_twisted.ensureDeferred
async def test_servicesAndReload(registry_server, tmp_path):
    """
    The agent registers its services, and a reload registers, updates and
    unregisters only what changed in the file.
    """
    path = tmp_path / "services"
    path.write_text(
        "service=keep a=1\nservice=change a=1\nservice=drop a=1\nservice=shrink a=1 b=2\n"
    )
    agent = Agent(
        lambda: RegistryManager.fromDescription(reactor, registry_server.description),
        services=[("fixed", {"f": "1"})],
        servicesFile=str(path),
    )
    agent.startService()
    try:
        names = {"fixed", "keep", "change", "drop", "shrink"}
        await whenRegistry(registry_server, lambda r: names <= set(s.name for s in r))
        keep = registry_server.registry["keep"]

        path.write_text(
            "service=keep a=1\nservice=change a=2\nservice=shrink a=1\nservice=fresh n=1\n"
        )
        await bounded(agent.reload())
        await whenRegistry(
            registry_server,
            lambda r: (
                "drop" not in r
                and "fresh" in r
                and "shrink" in r
                and r["change"].get("a") == "2"
                and r["shrink"].get("b") is None
            ),
        )
        assert registry_server.registry["keep"] is keep
        assert attributes(registry_server, "shrink") == {"a": "1"}
        assert attributes(registry_server, "fixed") == {"f": "1"}

        path.write_text("service=broken 'unterminated\n")
        await bounded(agent.reload())
        assert set(agent.services) == {"fixed", "keep", "change", "shrink", "fresh"}
    finally:
        await bounded(agent.stopService())
    await whenRegistry(registry_server, lambda r: len(r) == 0)


@pytest_twisted.ensureDeferred
async def test_onChangeCommand(registry_server, tmp_path):
    """
    The command runs for each change, one at a time, with the change in its
    environment.
    """
    out = tmp_path / "changes"
    command = (
        'printf "%%s|%%s|%%s\\n" "$TXINFERNO_EVENT" "$TXINFERNO_NAME" '
        '"$TXINFERNO_SERVICE" >> %s' % out
    )
    runner = ChangeCommand(reactor, command, [("proto", "*")])
    runner.added("web", {"proto": "http", "descr": "my site"})
    runner.updated("web", {"proto": "https"}, {"proto": "http"})
    runner.updated("web", {"proto": "ftp"}, {"proto": "https"})
    runner.removed("other", {"proto": "x"})
    await bounded(runner.whenIdle())
    assert out.read_text().splitlines() == [
        "added|web|web proto http descr 'my site'",
        "updated|web|web proto ftp",
        "removed|other|other proto x",
    ]


def serviceTasks(agent):
    """
    @return: the names of the agent manager's service tasks, one per task.
    """
    return sorted(t.name for t in agent.manager.tasks if isinstance(t, ServiceTask))


def startAgent(server, path, **options):
    agent = Agent(
        lambda: RegistryManager.fromDescription(reactor, server.description),
        servicesFile=str(path),
        **options,
    )
    agent.startService()
    return agent


@pytest_twisted.ensureDeferred
async def test_reloadsMillisecondApart(registry_server, tmp_path):
    """
    Two reloads a millisecond apart, the first of which registers a
    service again (it lost an attribute), leave one task for the name; when
    the entry leaves the file the service is unregistered.
    """
    path = tmp_path / "services"
    path.write_text("service=svc a=1 b=2\nservice=other x=1\n")
    agent = startAgent(registry_server, path)
    try:
        await whenRegistry(registry_server, lambda r: {"svc", "other"} <= set(s.name for s in r))
        path.write_text("service=svc a=1\nservice=other x=1\n")
        first = agent.reload()
        second = Deferred()
        reactor.callLater(0.001, lambda: agent.reload().chainDeferred(second))
        await bounded(gatherResults([first, second]))
        assert serviceTasks(agent) == ["other", "svc"]
        await whenRegistry(registry_server, lambda r: "svc" in r and r["svc"].get("b") is None)

        # The same with no reactor turn between the two.
        path.write_text("service=svc a=1 b=2\nservice=other x=1\n")
        await bounded(agent.reload())
        await whenRegistry(registry_server, lambda r: r["svc"].get("b") == "2")
        path.write_text("service=svc a=1\nservice=other x=1\n")
        await bounded(gatherResults([agent.reload(), agent.reload()]))
        assert serviceTasks(agent) == ["other", "svc"]

        path.write_text("service=other x=1\n")
        await bounded(agent.reload())
        await whenRegistry(registry_server, lambda r: "svc" not in r)
        assert serviceTasks(agent) == ["other"]
    finally:
        await bounded(agent.stopService())


@pytest_twisted.ensureDeferred
async def test_reloadBurst(registry_server, tmp_path):
    """
    After a burst of reloads, each after a rewrite of the file, the
    registry holds exactly the services of the last file, one task each.
    """
    path = tmp_path / "services"
    variants = [
        "service=svc a=1 b=2\nservice=left l=1\n",
        "service=svc a=1\nservice=right r=1\n",
        "service=svc a=2 c=3\n",
    ]
    path.write_text(variants[0])
    agent = startAgent(registry_server, path)
    try:
        await whenRegistry(registry_server, lambda r: "svc" in r and "left" in r)
        done = []
        for i in range(10):
            path.write_text(variants[i % 2])
            done.append(agent.reload())
        await bounded(gatherResults(done))
        assert serviceTasks(agent) == ["right", "svc"]
        await whenRegistry(
            registry_server,
            lambda r: (
                set(s.name for s in r) == {"svc", "right"}
                and dict(r["svc"].attributes()) == {"a": "1"}
            ),
        )

        done = []
        for i in range(30):

            def step(i=i):
                path.write_text(variants[i % 3])
                done.append(agent.reload())

            reactor.callLater(0.001 * (i // 2), step)
        await bounded(deferLater(reactor, 0.001 * 15, lambda: None))
        await bounded(gatherResults(done))
        # The last write was variants[29 % 3]: svc a=2 c=3 alone.
        assert serviceTasks(agent) == ["svc"]
        await whenRegistry(
            registry_server,
            lambda r: (
                set(s.name for s in r) == {"svc"}
                and dict(r["svc"].attributes()) == {"a": "2", "c": "3"}
            ),
        )

        path.write_text("noservices\n")
        await bounded(agent.reload())
        await whenRegistry(registry_server, lambda r: len(r) == 0)
        assert serviceTasks(agent) == []
    finally:
        await bounded(agent.stopService())


@pytest.mark.parametrize(
    "text, message",
    [
        ("service=a x=1\nservice=b x=", "the last line has no newline"),
        ("", "no service in the file"),
        ("# all gone\n", "no service in the file"),
        ("service=a x='cut\n", "unterminated quote"),
    ],
)
def test_servicesFileIncomplete(tmp_path, text, message):
    path = tmp_path / "services"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        readServicesFile(str(path))


def test_servicesFileEmptyAllowed(tmp_path):
    path = tmp_path / "services"
    path.write_text("")
    assert readServicesFile(str(path), allowEmpty=True) == {}
    path.write_text("# nothing on purpose\nnoservices\n")
    assert readServicesFile(str(path)) == {}


@pytest.mark.logs_errors
@pytest_twisted.ensureDeferred
async def test_reloadRefusesIncompleteFile(registry_server, tmp_path):
    """
    A file cut short, or empty, is refused by a reload: the services stay,
    and the error is logged.  An empty file is applied (everything
    unregistered, a warning logged) when empty files are allowed.
    """
    path = tmp_path / "services"
    path.write_text("service=a x=1\nservice=b x=1\n")
    agent = startAgent(registry_server, path)
    try:
        await whenRegistry(registry_server, lambda r: {"a", "b"} <= set(s.name for s in r))
        for text in ["service=a x=1\nservice=b x=", "service=a x=1", ""]:
            path.write_text(text)
            with capturedLogs() as events:
                await bounded(agent.reload())
            assert set(agent.services) == {"a", "b"}
            assert [formatEvent(e) for e in events if e["log_level"] == LogLevel.error][
                0
            ].startswith("services file %s not reloaded" % (path,))
        assert serviceTasks(agent) == ["a", "b"]
    finally:
        await bounded(agent.stopService())

    path.write_text("service=a x=1\n")
    agent = startAgent(registry_server, path, allowEmpty=True)
    try:
        await whenRegistry(registry_server, lambda r: "a" in r and "b" not in r)
        path.write_text("")
        with capturedLogs() as events:
            await bounded(agent.reload())
        await whenRegistry(registry_server, lambda r: "a" not in r)
        assert any(
            "names no service" in formatEvent(e) for e in events if e["log_level"] == LogLevel.warn
        )
    finally:
        await bounded(agent.stopService())


HOOK_STDIN = "import sys; open(sys.argv[1], 'w').write(sys.stdin.read())"


def hook(code, *args):
    return " ".join(shlex.quote(a) for a in (sys.executable, "-c", code) + args)


@pytest_twisted.ensureDeferred
async def test_hookStdinClosed(tmp_path):
    """
    A command that reads its standard input gets the service line, then end
    of file, and so ends.
    """
    out = tmp_path / "stdin"
    runner = ChangeCommand(reactor, hook(HOOK_STDIN, str(out)), [("proto", "*")])
    runner.added("web", {"proto": "http"})
    await bounded(runner.whenIdle())
    assert out.read_text() == "web proto http\n"


@pytest_twisted.ensureDeferred
async def test_hookTimeLimit(tmp_path):
    """
    A command still running after its time limit is killed and that is
    logged; the change waiting behind it runs next.
    """
    clock = Clock()
    out = tmp_path / "second"
    sleeper = "import sys, time\nif sys.argv[1] == 'slow': time.sleep(600)\nopen(sys.argv[2], 'w').write('ran')"
    command = hook(sleeper, "$TXINFERNO_NAME", str(out))
    runner = ChangeCommand(reactor, command, [("proto", "*")], timeout=5, clock=clock)
    with capturedLogs() as events:
        runner.added("slow", {"proto": "x"})
        runner.added("fast", {"proto": "x"})
        clock.advance(5)
        await bounded(runner.whenIdle())
    assert out.read_text() == "ran"
    assert any("for added slow still ran after 5 s: killed" in formatEvent(e) for e in events)


@pytest.mark.skipif(SETSID is None, reason="no setsid command here")
@pytest_twisted.ensureDeferred
async def test_hookChildrenKilled(tmp_path):
    """
    A command killed after its time limit takes what its shell started
    with it: nothing it forked outlives it.
    """
    clock = Clock()
    pidFile = tmp_path / "pid"
    command = "sleep 600 & echo $! > %s; wait" % (shlex.quote(str(pidFile)),)
    runner = ChangeCommand(reactor, command, [("proto", "*")], timeout=5, clock=clock)
    runner.added("slow", {"proto": "x"})
    await turnUntil(lambda: pidFile.exists() and pidFile.read_text().strip())
    child = int(pidFile.read_text())
    assert not gone(child)
    with capturedLogs():
        clock.advance(5)
        await bounded(runner.whenIdle())
    await turnUntil(lambda: gone(child))


@pytest_twisted.ensureDeferred
async def test_hookKilledOnStop():
    """
    Stopping kills the command that runs, and drops the changes waiting.
    """
    runner = ChangeCommand(reactor, hook("import time; time.sleep(600)"), [("proto", "*")])
    runner.added("a", {"proto": "x"})
    runner.added("b", {"proto": "x"})
    process = runner._running
    await bounded(runner.stop())
    with pytest.raises(ProcessExitedAlready):
        process.signalProcess(0)
    runner.added("c", {"proto": "x"})
    assert runner._running is None


@pytest_twisted.ensureDeferred
async def test_agentStopKillsHooks(registry_server, tmp_path):
    """
    The agent's stop kills its running C{onChange} commands.
    """
    agent = Agent(
        lambda: RegistryManager.fromDescription(reactor, registry_server.description),
        monitors=[[("proto", "*")]],
        onChange=hook("import time; time.sleep(600)"),
        reactor=reactor,
    )
    agent.startService()
    command = agent.changeCommands[0]
    command.added("a", {"proto": "x"})
    process = command._running
    await bounded(agent.stopService())
    with pytest.raises(ProcessExitedAlready):
        process.signalProcess(0)


@pytest_twisted.ensureDeferred
async def test_hookFailureLogged():
    """
    A failing command is logged with its exit status and the start of its
    standard error, bounded.
    """
    code = "import sys; sys.stderr.write('bad thing\\n' + 'x' * 10000); sys.exit(3)"
    runner = ChangeCommand(reactor, hook(code), [("proto", "*")])
    with capturedLogs() as events:
        runner.added("web", {"proto": "http"})
        await bounded(runner.whenIdle())
    [text] = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
    assert "for added web failed (exit status 3): bad thing" in text
    assert text.endswith("[%d more bytes]" % (10 + 10000 - MAX_HOOK_STDERR))
    assert len(text) < MAX_HOOK_STDERR + 500


def test_hookTimeoutPositive():
    with pytest.raises(ValueError, match="timeout must be positive"):
        ChangeCommand(reactor, "true", [], timeout=0)
