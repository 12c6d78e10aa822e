"""
The web port of C{twistd regmgr} (L{txinferno.tap}): its options, and the
agent's C{/health} and metrics.
"""

import pytest
import pytest_twisted
from support import bounded, tapOptions, whenRegistry
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.python import usage
from websupport import _ListeningEndpoint, get, getJSON
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txinferno.interfaces import IConnectionStateObserver
from txinferno.server.change import IRegistryObserver
from txinferno.tap import makeService
from txinferno.web.site import DEFAULT_WEB
from txinferno.web.view import RegistryView

LOOPBACK = "tcp:0:interface=127.0.0.1"


def test_webByDefaultOnLoopback():
    """
    Serving a registry, the web port is on by default, on loopback.
    """
    assert DEFAULT_WEB == "tcp:6680:interface=127.0.0.1"
    options = tapOptions()
    assert (options.webEndpoint._interface, options.webEndpoint._port) == ("127.0.0.1", 6680)


def test_noWeb():
    """
    C{--no-web} serves none, and neither does an agent of another registry
    unless C{--web} asks for it.
    """
    assert tapOptions("--no-web").webEndpoint is None
    assert makeService(tapOptions("--no-web"), reactor).web is None
    assert tapOptions("--registry", "tcp:127.0.0.1").webEndpoint is None
    options = tapOptions("--registry", "tcp:127.0.0.1", "--web", LOOPBACK)
    assert options.webEndpoint._port == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--web", "nonsense:1"], "--web nonsense:1: bad endpoint"),
        (["--web-max-streams", "0"], "--web-max-streams 0: must be a positive integer"),
    ],
)
def test_badWebOptions(argv, message):
    with pytest.raises(usage.UsageError, match=message):
        tapOptions(*argv)


def test_viewIsAnObserver():
    service = makeService(
        tapOptions(
            "--web",
            LOOPBACK,
            "--web-max-streams",
            "7",
            *["--%s=%s" % (p, LOOPBACK) for p in ("new", "find", "event")],
        ),
        reactor,
    )
    assert isinstance(service.web.view, RegistryView)
    assert verifyObject(IRegistryObserver, service.web.view)
    assert [s.name for s in service] == ["ports", "web"]


@pytest_twisted.ensureDeferred
async def test_servedWithRegistry():
    """
    C{twistd regmgr} serves the page and the API of its registry.
    """
    options = tapOptions(
        "--web",
        LOOPBACK,
        *["--%s=%s" % (p, LOOPBACK) for p in ("new", "find", "event")],
        "--service",
        "self proto web",
    )
    options.webEndpoint = endpoint = _ListeningEndpoint(options.webEndpoint)
    service = makeService(options, reactor)
    service.startService()
    try:
        port = (await bounded(endpoint.listening)).getHost().port
        await bounded(service.agent.services["self"].whenRegistered())
        code, services = await getJSON("http://127.0.0.1:%d/v1/services?proto=web" % (port,))
        assert [s["name"] for s in services] == ["self"]
        code, health = await getJSON("http://127.0.0.1:%d/health" % (port,))
        assert (code, health["healthy"]) == (200, True)
    finally:
        await bounded(service.stopService())


@implementer(IConnectionStateObserver)
class _Lost:
    def __init__(self):
        self.lost = Deferred()

    def registryConnected(self):
        pass

    def registryLost(self, reason):
        if not self.lost.called:
            self.lost.callback(None)


@pytest_twisted.ensureDeferred
async def test_agentHealth(registry_server):
    """
    The agent's C{/health} answers 200 while every service it holds is
    registered and 503 once one is not; its metrics say as much.
    """
    options = tapOptions(
        "--registry",
        registry_server.description,
        "--service",
        "svc a 1",
        "--service",
        "other b 2",
        "--monitor",
        "a *",
        "--web",
        LOOPBACK,
    )
    options.webEndpoint = endpoint = _ListeningEndpoint(options.webEndpoint)
    service = makeService(options, reactor)
    assert service.server is None
    service.startService()
    try:
        port = (await bounded(endpoint.listening)).getHost().port
        url = "http://127.0.0.1:%d" % (port,)
        await whenRegistry(registry_server, lambda r: "svc" in r and "other" in r)
        for task in service.agent.services.values():
            await bounded(task.whenRegistered())
        code, health = await getJSON(url + "/health")
        assert code == 200
        assert health["services"] == {"other": {"registered": True}, "svc": {"registered": True}}
        code, _, body = await get(url + "/")
        assert code == 404
        watcher = _Lost()
        service.agent.manager.addObserver(watcher)
        await registry_server.stop()
        await bounded(watcher.lost)
        code, health = await getJSON(url + "/health")
        assert code == 503
        assert health["healthy"] is False
        _, _, body = await get(url + "/metrics")
        text = body.decode()
        for line in [
            "txinferno_agent_services 2.0",
            "txinferno_agent_services_registered 0.0",
            "txinferno_agent_monitors 1.0",
            "txinferno_agent_hook_runs_total 0.0",
        ]:
            assert line + "\n" in text, line
        assert 'txinferno_agent_monitor_last_resync_timestamp_seconds{query="a *"}' in text
    finally:
        await bounded(service.stopService())
