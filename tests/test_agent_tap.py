"""
Tests for the agent options of C{twistd regmgr} (L{txinferno.tap}).
"""

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.python import usage

from clientsupport import bounded, whenRegistry
from txinferno.tap import Options, makeService


def parse(*argv):
    options = Options()
    options.parseOptions(list(argv))
    return options


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--registry", "udp:10.0.0.1"], "--registry udp:10.0.0.1: "),
        (["--service", "find a b"], "bad service name"),
        (["--service", "web proto"], "odd number"),
        (["--monitor", "proto"], "odd number"),
        (["--on-change", "true"], "needs at least one --monitor"),
        (["--services", "/nonexistent/services"], "--services /nonexistent/services: "),
    ],
)
def test_badOptions(argv, message):
    with pytest.raises(usage.UsageError, match=message):
        parse(*argv)


def test_registryOnly():
    """
    With C{--registry}, no server is made; without tasks, no agent.
    """
    service = makeService(parse("--registry", "tcp:127.0.0.1"), reactor)
    assert service.server is None and service.agent is None
    assert list(service) == []


@pytest_twisted.ensureDeferred
async def test_agentOfEmbeddedServer():
    """
    Without C{--registry}, the agent registers its services in the registry
    the same process serves, wherever its ports listen.
    """
    options = parse(
        "--new", "tcp:0:interface=127.0.0.1", "--find", "tcp:0:interface=127.0.0.1",
        "--event", "tcp:0:interface=127.0.0.1", "--no-web",
        "--service", "web proto http descr 'my site'", "--monitor", "proto *")
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
        parse("--registry", registry_server.description, "--service", "svc a 1"), reactor)
    assert service.server is None
    service.startService()
    try:
        await whenRegistry(registry_server, lambda r: "svc" in r)
    finally:
        await bounded(service.stopService())
    await whenRegistry(registry_server, lambda r: "svc" not in r)
