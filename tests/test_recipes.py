"""
The recipes of docs/recipes.md run: HTTP over C{inferno:} with twisted.web's
C{Agent} and with treq, through L{InfernoAgentEndpointFactory}; the .tac
file under C{twistd -ny} against the embedded registry.
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
import treq
from support import bounded, registryServices, whenRegistry
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import ProcessProtocol
from twisted.web.client import Agent, readBody
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data
from zope.interface.verify import verifyObject

from txinferno.client.tcp import connectionFromString
from txinferno.endpoints import (
    InfernoAgentEndpointFactory,
    InfernoServiceUnreachable,
    RegisteredServerEndpoint,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def site(text):
    root = Resource()
    root.putChild(b"hello", Data(text, "text/plain"))
    return Site(root)


@pytest_twisted.async_yield_fixture
async def webServices(registry_server):
    """
    Two web sites registered through C{registered:}: C{web} and C{other}.
    """
    ports = []
    for name in ("web", "other"):
        endpoint = RegisteredServerEndpoint(
            reactor,
            TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"),
            connectionFromString(reactor, registry_server.description),
            attrs={"proto": "http"},
            name=name,
        )
        port = await bounded(endpoint.listen(site(b"hello from %s\n" % name.encode())))
        await bounded(port.whenRegistered())
        ports.append(port)
    try:
        yield registry_server
    finally:
        for port in ports:
            await bounded(port.stopListening())


def agentFor(server):
    factory = InfernoAgentEndpointFactory(
        reactor, connectionFromString(reactor, server.description), {"proto": "http"}
    )
    return Agent.usingEndpointFactory(reactor, factory)


@pytest_twisted.ensureDeferred
async def test_agentOverInferno(webServices):
    """
    twisted.web's C{Agent} reaches the service the URI's host names.
    """
    agent = agentFor(webServices)
    for name in ("web", "other"):
        response = await bounded(agent.request(b"GET", b"http://%s/hello" % name.encode()))
        assert response.code == 200
        assert await bounded(readBody(response)) == b"hello from %s\n" % name.encode()


def test_agentEndpointFactoryInterface(registry_server):
    factory = InfernoAgentEndpointFactory(
        reactor, connectionFromString(reactor, registry_server.description)
    )
    assert verifyObject(IAgentEndpointFactory, factory)
    with pytest.raises(ValueError, match="choose must be one of"):
        InfernoAgentEndpointFactory(
            reactor, connectionFromString(reactor, registry_server.description), choose="best"
        )


@pytest_twisted.ensureDeferred
async def test_treqOverInferno(webServices):
    response = await bounded(treq.get("http://web/hello", agent=agentFor(webServices)))
    assert await bounded(treq.content(response)) == b"hello from web\n"


@pytest_twisted.ensureDeferred
async def test_agentUnknownService(webServices):
    with pytest.raises(
        InfernoServiceUnreachable, match="no service matching name=nowhere proto=http"
    ):
        await bounded(agentFor(webServices).request(b"GET", b"http://nowhere/hello"))


@pytest_twisted.ensureDeferred
async def test_agentOnlyHTTP(registry_server):
    factory = InfernoAgentEndpointFactory(
        reactor, connectionFromString(reactor, registry_server.description)
    )
    with pytest.raises(SchemeNotSupported):
        await bounded(Agent.usingEndpointFactory(reactor, factory).request(b"GET", b"https://web/"))


class _Twistd(ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = Deferred()
        self._waiting = []

    def outReceived(self, data):
        self.output += data
        for text, d in list(self._waiting):
            if text in self.output:
                self._waiting.remove((text, d))
                d.callback(None)

    def waitFor(self, text):
        """
        @return: a L{Deferred} that fires once C{text} is in the output.
        """
        d = Deferred()
        self._waiting.append((text, d))
        self.outReceived(b"")
        return bounded(d)

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback((reason.value.exitCode, reason.value.signal))


@pytest_twisted.ensureDeferred
async def test_tacFile(registry_server, tmp_path):
    """
    C{twistd -ny docs/examples/registry.tac} registers its site and its
    service, serves the site where the registry says, and unregisters both
    on SIGTERM.
    """
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    env = dict(
        os.environ,
        TXINFERNO_REGISTRY=registry_server.description,
        EXAMPLE_WEB="tcp:0:interface=127.0.0.1",
    )
    process = _Twistd()
    transport = reactor.spawnProcess(
        process,
        twistd,
        [twistd, "-ny", str(EXAMPLES / "registry.tac"), "--pidfile", "", "-l", "-"],
        env=env,
        path=str(tmp_path),
    )
    try:
        await whenRegistry(registry_server, lambda r: "example-web" in r and "example-notes" in r)
        assert registryServices(registry_server)["example-notes"] == {
            "proto": "notes",
            "descr": "an example",
        }
        response = await bounded(agentFor(registry_server).request(b"GET", b"http://example-web/"))
        assert await bounded(readBody(response)) == b"hello from the example\n"
        await process.waitFor(b"HTTP service example-web is here")
    finally:
        if not process.ended.called:
            transport.signalProcess(signal.SIGTERM)
    status = await bounded(process.ended)
    output = process.output.decode()
    # twistd ends by the signal it was stopped with, once it has shut down.
    assert status in [(0, None), (None, signal.SIGTERM)], output
    assert "Server Shut Down." in output
    assert "Traceback" not in output and "#warn" not in output, output
    await whenRegistry(registry_server, lambda r: len(r) == 0)


def test_trialExample(tmp_path):
    """
    The trial example of docs/recipes.md passes under trial.
    """
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "twisted.trial",
            "--temp-directory",
            str(tmp_path / "_trial"),
            "test_with_trial",
        ],
        cwd=str(EXAMPLES),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED (successes=1)" in result.stdout


def test_docsServeOnLoopback():
    """
    Every server endpoint the docs show for the registry's ports names its
    interface, as docs/security.md promises loopback unless told otherwise.
    """
    pages = [EXAMPLES.parent / "../README.md"] + sorted(EXAMPLES.parent.glob("*.md"))
    found = []
    for page in pages:
        found += re.findall(r"--(?:new|find|event)[ =](tcp:[^\s`]+)", page.read_text())
    assert found
    assert [e for e in found if "interface=" not in e] == []


@pytest_twisted.ensureDeferred
async def test_twistdWebOnRegistered(registry_server, tmp_path):
    """
    C{twistd web --listen registered:...} registers the site, and on SIGTERM
    unregisters it once (the reactor's shutdown and the port's own stop
    both ask) with no warning.
    """
    (tmp_path / "index.html").write_text("hello\n")
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    listen = (
        r"registered:tcp\:0\:interface\=127.0.0.1:registry=%s:name=site:proto=http"
        % registry_server.description.replace(":", "\\:")
    )
    process = _Twistd()
    transport = reactor.spawnProcess(
        process,
        twistd,
        [
            twistd,
            "-n",
            "--pidfile",
            "",
            "-l",
            "-",
            "web",
            "--listen",
            listen,
            "--path",
            str(tmp_path),
        ],
        env=dict(os.environ),
        path=str(tmp_path),
    )
    try:
        await whenRegistry(registry_server, lambda r: "site" in r)
        response = await bounded(
            agentFor(registry_server).request(b"GET", b"http://site/index.html")
        )
        assert await bounded(readBody(response)) == b"hello\n"
    finally:
        if not process.ended.called:
            transport.signalProcess(signal.SIGTERM)
    await bounded(process.ended)
    output = process.output.decode()
    assert "Server Shut Down." in output
    assert "Traceback" not in output and "#warn" not in output, output
    await whenRegistry(registry_server, lambda r: "site" not in r)
