"""
Tests for the agent options of C{twistd regmgr} (L{txinferno.tap}).
"""

import os
import signal

import pytest
import pytest_twisted
from support import LOOPBACK_PORTS, bounded, tapOptions, whenRegistry
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python import usage

from txinferno.tap import makeService


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--registry", "udp:10.0.0.1"], "--registry udp:10.0.0.1: "),
        (["--service", "find a b"], "bad service name"),
        (["--service", "web proto"], "odd number"),
        (["--monitor", "proto"], "odd number"),
        (["--on-change", "true"], "needs at least one --monitor"),
        (["--services", "/nonexistent/services"], "--services /nonexistent/services: "),
        (
            ["--monitor", "proto *", "--on-change", "true", "--hook-timeout", "0"],
            "--hook-timeout 0: must be a positive number",
        ),
    ],
)
def test_badOptions(argv, message):
    with pytest.raises(usage.UsageError, match=message):
        tapOptions(*argv)


def test_registryOnly():
    """
    With C{--registry}, no server is made; without tasks, no agent.
    """
    service = makeService(tapOptions("--registry", "tcp:127.0.0.1"), reactor)
    assert service.server is None and service.agent is None
    assert list(service) == []


@pytest_twisted.ensureDeferred
async def test_agentOfEmbeddedServer():
    """
    Without C{--registry}, the agent registers its services in the registry
    the same process serves, wherever its ports listen.
    """
    options = tapOptions(
        *LOOPBACK_PORTS,
        "--no-web",
        "--service",
        "web proto http descr 'my site'",
        "--monitor",
        "proto *",
    )
    service = makeService(options, reactor)
    service.startService()
    try:
        registry = service.server.registry
        server = type("Served", (), {"registry": registry})
        await whenRegistry(server, lambda r: "web" in r)
        assert dict(registry["web"].attributes()) == {"proto": "http", "descr": "my site"}
        monitor = service.agent.monitors[0]
        await bounded(monitor.manager.whenConnected())
    finally:
        await bounded(service.stopService())
    await whenRegistry(server, lambda r: "web" not in r)


@pytest_twisted.ensureDeferred
async def test_agentOfOtherRegistry(registry_server):
    service = makeService(
        tapOptions("--registry", registry_server.description, "--service", "svc a 1"), reactor
    )
    assert service.server is None
    service.startService()
    try:
        await whenRegistry(registry_server, lambda r: "svc" in r)
    finally:
        await bounded(service.stopService())
    await whenRegistry(registry_server, lambda r: "svc" not in r)


def test_emptyServicesFile(tmp_path):
    """
    An empty C{--services} file is refused unless C{--allow-empty-services}
    is given; the agent then accepts empty files on reload too.
    """
    path = tmp_path / "services"
    path.write_text("")
    with pytest.raises(usage.UsageError, match="no service in the file"):
        tapOptions("--registry", "tcp:127.0.0.1", "--services", str(path))
    options = tapOptions(
        "--registry", "tcp:127.0.0.1", "--services", str(path), "--allow-empty-services"
    )
    agent = makeService(options, reactor).agent
    assert agent._readFile() == {}


def test_hookTimeout():
    options = tapOptions(
        "--registry",
        "tcp:127.0.0.1",
        "--monitor",
        "proto *",
        "--on-change",
        "true",
        "--hook-timeout",
        "2.5",
    )
    agent = makeService(options, reactor).agent
    assert [c._timeout for c in agent.changeCommands] == [2.5]
    assert tapOptions("--registry", "tcp:127.0.0.1")["hook-timeout"] == 60


@pytest_twisted.ensureDeferred
async def test_agentHonoursEnvironment(registry_server, monkeypatch):
    """
    Without C{--registry}, an agent uses C{$TXINFERNO_REGISTRY} when it is
    set, as regquery and the endpoints do, rather than serving a registry
    of its own.
    """
    monkeypatch.setenv("TXINFERNO_REGISTRY", registry_server.description)
    options = tapOptions("--service", "envsvc a 1")
    assert options["registry"] == registry_server.description
    service = makeService(options, reactor)
    assert service.server is None
    service.startService()
    try:
        await whenRegistry(registry_server, lambda r: "envsvc" in r)
    finally:
        await bounded(service.stopService())


def test_badEnvironment(monkeypatch):
    """
    A bad C{$TXINFERNO_REGISTRY} is a usage error that names it; a server
    without agent options ignores it.
    """
    monkeypatch.setenv("TXINFERNO_REGISTRY", "udp:10.0.0.1")
    with pytest.raises(usage.UsageError, match=r"^\$TXINFERNO_REGISTRY udp:10.0.0.1: "):
        tapOptions("--monitor", "proto *")
    assert tapOptions("--port", "0")["registry"] is None


@pytest_twisted.ensureDeferred
async def test_sighupWithNothingToReload():
    """
    SIGHUP to a regmgr with no C{--services} file is not silently ignored:
    it logs that there is nothing to reload.
    """
    previous = signal.getsignal(signal.SIGHUP)
    logged = Deferred()

    def observer(event):
        if "SIGHUP" in formatEvent(event) and not logged.called:
            logged.callback(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        makeService(tapOptions("--port", "0"), reactor)
        os.kill(os.getpid(), signal.SIGHUP)
        line = await bounded(logged)
    finally:
        globalLogPublisher.removeObserver(observer)
        signal.signal(signal.SIGHUP, previous)
    assert line.startswith("SIGHUP ignored: there is nothing to reload")
