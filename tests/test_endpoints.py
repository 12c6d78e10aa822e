"""
Tests for L{txinferno.endpoints}: the C{inferno:} client endpoint and the
C{registered:} server endpoint, over loopback against the embedded registry.
"""

import os
import socket
import sys

import pytest
import pytest_twisted
from support import Greeter, Reader, bounded, managerFor, register, whenRegistry
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    clientFromString,
    quoteStringArgument,
    serverFromString,
)
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IStreamClientEndpoint, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher
from zope.interface.verify import verifyObject

from txinferno.client.manager import RegistryManager
from txinferno.client.tcp import connectionFromString
from txinferno.endpoints import (
    InfernoClientEndpoint,
    InfernoLookupFailed,
    InfernoServiceUnreachable,
    RegisteredServerEndpoint,
)
from txinferno.errors import RegistrationRejected


@pytest.fixture
def greeter():
    port = pytest_twisted.blockon(
        TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(Greeter))
    )
    yield port.getHost().port
    pytest_twisted.blockon(port.stopListening())


async def deadPort():
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory())
    number = port.getHost().port
    await port.stopListening()
    return number


async def dial(description):
    reader = Reader()
    endpoint = clientFromString(reactor, description)
    assert isinstance(endpoint, InfernoClientEndpoint)
    await bounded(endpoint.connect(Factory.forProtocol(lambda: reader)))
    return await bounded(reader.closed)


@pytest_twisted.ensureDeferred
async def test_dialByAttributes(registry_server, greeter):
    """
    C{inferno:} finds the service by its attributes and connects to the
    address in its C{addr} attribute.
    """
    await register(
        registry_server, "greeter", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % greeter}
    )
    registry = quoteStringArgument(registry_server.description)
    assert await dial("inferno:registry=%s:proto=greet" % registry) == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_dialByName(registry_server, greeter):
    """
    A service without C{addr} is dialled by its name, given positionally.
    """
    await register(registry_server, "tcp!127.0.0.1!%d" % greeter, {"proto": "greet"})
    registry = quoteStringArgument(registry_server.description)
    assert await dial("inferno:proto:greet:registry=%s" % registry) == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_nextWhenRefused(registry_server, greeter):
    """
    When the first service found refuses, the next one is tried.
    """
    await register(
        registry_server, "a-dead", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % await deadPort()}
    )
    await register(
        registry_server, "b-live", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % greeter}
    )
    connection = connectionFromString(reactor, registry_server.description)
    assert list(await connection.find({"proto": "greet"})) == ["a-dead", "b-live"]
    registry = quoteStringArgument(registry_server.description)
    assert await dial("inferno:registry=%s:choose=first:proto=greet" % registry) == b"hello\n"
    assert await dial("inferno:registry=%s:choose=random:proto=greet" % registry) == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_noMatch(registry_server):
    registry = quoteStringArgument(registry_server.description)
    endpoint = clientFromString(reactor, "inferno:registry=%s:proto=none" % registry)
    with pytest.raises(ConnectError, match="no service matching proto=none"):
        await bounded(endpoint.connect(Factory.forProtocol(Reader)))


@pytest_twisted.ensureDeferred
async def test_noneAccepts(registry_server):
    dead = await deadPort()
    await register(registry_server, "gone", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % dead})
    registry = quoteStringArgument(registry_server.description)
    endpoint = clientFromString(reactor, "inferno:registry=%s:proto=greet" % registry)
    with pytest.raises(
        InfernoServiceUnreachable, match="accepted a connection: gone at tcp!127.0.0.1!%d: " % dead
    ):
        await bounded(endpoint.connect(Factory.forProtocol(Reader)))


def test_clientParserErrors():
    with pytest.raises(ValueError, match="choose must be one of"):
        clientFromString(reactor, "inferno:choose=best:proto=x")
    with pytest.raises(ValueError, match="ATTR:VALUE pairs"):
        clientFromString(reactor, "inferno:proto")


def test_serverParserErrors():
    with pytest.raises(ValueError, match="exactly one inner endpoint"):
        serverFromString(reactor, "registered:proto=x")
    with pytest.raises(ValueError, match="bad character"):
        serverFromString(reactor, r"registered:tcp\:0:name=a b")


@pytest_twisted.ensureDeferred
async def test_registeredWhileListening(registry_server):
    """
    C{registered:} registers the address it listens on, keeps it registered
    across a registry restart, and unregisters on C{stopListening}.
    """
    registry = quoteStringArgument(registry_server.description)
    endpoint = serverFromString(
        reactor,
        r"registered:tcp\:0\:interface\=127.0.0.1:registry=%s:name=web:proto=http" % registry,
    )
    assert isinstance(endpoint, RegisteredServerEndpoint)
    port = await bounded(endpoint.listen(Factory.forProtocol(Greeter)))
    address = "tcp!127.0.0.1!%d" % port.getHost().port
    await bounded(port.whenRegistered())
    expected = {"addr": address, "proto": "http"}
    assert dict(registry_server.registry["web"].attributes()) == expected
    assert await dial("inferno:registry=%s:proto=http" % registry) == b"hello\n"

    await registry_server.restart()
    await whenRegistry(registry_server, lambda r: "web" in r)
    assert dict(registry_server.registry["web"].attributes()) == expected

    await port.stopListening()
    await whenRegistry(registry_server, lambda r: "web" not in r)
    endpoint = clientFromString(reactor, "inferno:registry=%s:proto=http" % registry)
    with pytest.raises(ConnectError):
        await bounded(endpoint.connect(Factory.forProtocol(Reader)))


@pytest_twisted.ensureDeferred
async def test_registeredByAddress(registry_server):
    """
    Without C{name}, the service is named by its dial address.
    """
    registry = quoteStringArgument(registry_server.description)
    endpoint = serverFromString(
        reactor, r"registered:tcp\:0\:interface\=127.0.0.1:registry=%s:proto=x" % registry
    )
    port = await bounded(endpoint.listen(Factory.forProtocol(Greeter)))
    await bounded(port.whenRegistered())
    name = "tcp!127.0.0.1!%d" % port.getHost().port
    assert dict(registry_server.registry[name].attributes()) == {"proto": "x"}
    await port.stopListening()


@pytest.fixture
def blackHole():
    """
    A loopback address that never answers a connection attempt: a listening
    socket whose accept queue is full (the kernel drops further SYNs).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fill = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(address)
        fill.append(s)
    yield address[1]
    for s in fill + [listener]:
        s.close()


@pytest_twisted.ensureDeferred
async def test_raceBlackHoleFirst(registry_server, greeter, blackHole):
    """
    Dead entries first in the registry's order do not hold the live one
    back: the next attempt starts after C{attemptDelay}, the first to
    connect wins and the others are cancelled.
    """
    for name in ("a-hole", "b-hole", "c-hole"):
        await register(
            registry_server, name, {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % blackHole}
        )
    await register(
        registry_server, "d-live", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % greeter}
    )
    registry = quoteStringArgument(registry_server.description)
    # The whole connect may take 60 s; the test allows it TIMEOUT (10 s):
    # trying each entry in turn would wait on the first hole for ever.
    assert (
        await dial("inferno:registry=%s:timeout=60:attemptDelay=0.05:proto=greet" % registry)
        == b"hello\n"
    )


@pytest_twisted.ensureDeferred
async def test_overallTimeout(registry_server, blackHole):
    """
    C{timeout} bounds the whole connect; the error names every service
    tried, its address and why.
    """
    for name in ("a-hole", "b-hole"):
        await register(
            registry_server, name, {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % blackHole}
        )
    registry = quoteStringArgument(registry_server.description)
    endpoint = clientFromString(
        reactor, "inferno:registry=%s:timeout=0.5:attemptDelay=0.1:proto=greet" % registry
    )
    with pytest.raises(InfernoServiceUnreachable) as caught:
        await bounded(endpoint.connect(Factory.forProtocol(Reader)))
    address = "tcp!127.0.0.1!%d" % blackHole
    assert caught.value.tried == [
        ("a-hole", address, "no connection within 0.5 s"),
        ("b-hole", address, "no connection within 0.5 s"),
    ]
    assert str(caught.value) == (
        "inferno: no service matching proto=greet (registry %s) accepted a connection "
        "within 0.5 s: a-hole at %s: no connection within 0.5 s; b-hole at %s: "
        "no connection within 0.5 s" % (registry_server.description, address, address)
    )


@pytest_twisted.ensureDeferred
async def test_lookupFailureNamesRegistry():
    """
    When the registry cannot be reached, the error says so, with the
    address of its find port.
    """
    port = await deadPort()
    description = "tcp:host=127.0.0.1:new=%d:find=%d:event=%d" % (port, port, port)
    endpoint = clientFromString(
        reactor, "inferno:registry=%s:proto=x" % quoteStringArgument(description)
    )
    with pytest.raises(InfernoLookupFailed) as caught:
        await bounded(endpoint.connect(Factory.forProtocol(Reader)))
    assert caught.value.findAddress == "127.0.0.1:%d" % port
    assert str(caught.value).startswith(
        "inferno: looking up proto=x in registry %s (find port 127.0.0.1:%d) failed: "
        % (description, port)
    )
    assert isinstance(caught.value, ConnectError)


@pytest.mark.parametrize(
    "description, message",
    [
        (
            "inferno:registry=tcp:127.0.0.1:28700:proto=x",
            r"registry=tcp is followed by 127.0.0.1:28700: unescaped colons end the registry "
            r"description, so escape them with a backslash: registry=tcp\\:127.0.0.1\\:28700",
        ),
        (
            "inferno:registry=tcp:host=10.0.0.1:find=7001:proto=x",
            r"registry=tcp is followed by host=10.0.0.1:find=7001",
        ),
        (
            "inferno:registry=tcp:registry.example:proto=x",
            r"registry=tcp is followed by registry.example: .* registry=tcp\\:registry.example$",
        ),
        ("inferno:timeout=soon:proto=x", "timeout=soon is not a number of seconds"),
        ("inferno:timeout=0:proto=x", "timeout must be a positive number"),
    ],
)
def test_clientParserExplains(description, message):
    with pytest.raises(ValueError, match=message):
        clientFromString(reactor, description)


def test_clientParserKeepsAttributeOnlyRegistry():
    """
    A bare C{registry=tcp} followed by attribute pairs is not mistaken for
    a registry description that lost its colons.
    """
    assert isinstance(
        clientFromString(reactor, "inferno:registry=tcp:proto:ssh"), InfernoClientEndpoint
    )


@pytest.mark.parametrize(
    "description, message",
    [
        (
            r"registered:tcp\:0\:interface=127.0.0.1:name=web",
            r"the inner endpoint's '=' must be escaped with a backslash too: "
            r"'tcp:0:interface=127.0.0.1' reads as a keyword; write tcp\\:0\\:interface\\=127.0.0.1",
        ),
        (
            r"registered:tcp\:0:registry=tcp:10.0.0.1:name=web",
            r"registry=tcp is followed by 10.0.0.1",
        ),
    ],
)
def test_serverParserExplains(description, message):
    with pytest.raises(ValueError, match=message):
        serverFromString(reactor, description)


@pytest_twisted.ensureDeferred
async def test_registeredWithApplicationManager(registry_server):
    """
    Given the application's manager, the port attaches its service to it,
    and detaches it when it stops listening, leaving the manager running.
    """
    manager = managerFor(registry_server)
    try:
        endpoint = RegisteredServerEndpoint(
            reactor,
            TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"),
            manager=manager,
            attrs={"proto": "http"},
            name="web",
        )
        port = await bounded(endpoint.listen(Factory.forProtocol(Greeter)))
        assert port.manager is manager
        task = await bounded(port.whenRegistered())
        assert task is port.service and task in manager.tasks
        await port.stopListening()
        await whenRegistry(registry_server, lambda r: "web" not in r)
        assert manager.running and task not in manager.tasks
    finally:
        await manager.stopService()


def test_registeredNeedsOneRegistry(registry_server):
    inner = TCP4ServerEndpoint(reactor, 0)
    with pytest.raises(TypeError, match="a connection or a manager"):
        RegisteredServerEndpoint(reactor, inner)
    with pytest.raises(TypeError, match="a connection or a manager"):
        RegisteredServerEndpoint(
            reactor,
            inner,
            connectionFromString(reactor, registry_server.description),
            manager=RegistryManager.fromDescription(reactor, registry_server.description),
        )


SCRIPT = """
import sys
from twisted.internet import reactor, defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.internet.interfaces import IStreamClientEndpoint, IStreamServerEndpoint
from twisted.logger import globalLogPublisher
from zope.interface.verify import verifyObject
from twisted.logger import globalLogBeginner, textFileLogObserver

globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])

async def main():
    endpoint = serverFromString(reactor, sys.argv[1])
    port = await endpoint.listen(Factory.forProtocol(Protocol))
    await port.whenRegistered()
    print("REGISTERED", flush=True)
    reactor.stop()

defer.ensureDeferred(main()).addErrback(lambda f: (f.printTraceback(), reactor.stop()))
reactor.run()
"""


@pytest_twisted.ensureDeferred
async def test_registeredScriptStopsCleanly(registry_server, tmp_path):
    """
    A script (outside twistd) that stops its reactor while a C{registered:}
    port listens unregisters cleanly: no warning of a lost registry or
    registration.
    """
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    description = (
        r"registered:tcp\:0\:interface\=127.0.0.1:registry=%s:name=web:proto=http"
        % quoteStringArgument(registry_server.description)
    )
    out, err, status = await bounded(
        getProcessOutputAndValue(sys.executable, [str(script), description], env=dict(os.environ))
    )
    output = out.decode() + err.decode()
    assert status == 0 and "REGISTERED" in output, output
    assert "#warn" not in output and "non-clean" not in output, output
    assert "web" not in registry_server.registry


@pytest_twisted.ensureDeferred
async def test_registeredRejected(registry_server):
    """
    When the name is held by another service, C{whenRegistered()} fails
    with the rejection, and the port keeps listening.
    """
    holder = await register(registry_server, "web", {"proto": "other"})
    registry = quoteStringArgument(registry_server.description)
    endpoint = serverFromString(
        reactor,
        r"registered:tcp\:0\:interface\=127.0.0.1:registry=%s:name=web:proto=http" % registry,
    )
    port = await bounded(endpoint.listen(Factory.forProtocol(Greeter)))
    try:
        with pytest.raises(RegistrationRejected, match="duplicate service name"):
            await bounded(port.whenRegistered())
        # The port still listens.
        reader = Reader()
        await bounded(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
                Factory.forProtocol(lambda: reader)
            )
        )
        assert await bounded(reader.closed) == b"hello\n"
    finally:
        await port.stopListening()
        await holder.unregister()


@pytest_twisted.ensureDeferred
async def test_dialByServiceName(registry_server, greeter):
    """
    C{inferno:name=NAME} dials only the service of that name among those
    the query finds.
    """
    dead = await deadPort()
    await register(registry_server, "a-dead", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % dead})
    await register(
        registry_server, "b-live", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % greeter}
    )
    registry = quoteStringArgument(registry_server.description)
    assert await dial("inferno:registry=%s:name=b-live:proto=greet" % registry) == b"hello\n"
    endpoint = clientFromString(reactor, "inferno:registry=%s:name=a-dead:proto=greet" % registry)
    with pytest.raises(InfernoServiceUnreachable) as caught:
        await bounded(endpoint.connect(Factory.forProtocol(Reader)))
    assert [name for name, _, _ in caught.value.tried] == ["a-dead"]


@pytest_twisted.ensureDeferred
async def test_cancelConnect(registry_server, blackHole):
    """
    Cancelling C{connect()} fails it with L{CancelledError}, during the
    lookup as during the race.
    """
    dead = await deadPort()
    await register(registry_server, "a-dead", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % dead})
    await register(
        registry_server, "b-hole", {"proto": "greet", "addr": "tcp!127.0.0.1!%d" % blackHole}
    )
    registry = quoteStringArgument(registry_server.description)
    endpoint = clientFromString(reactor, "inferno:registry=%s:proto=greet" % registry)
    d = endpoint.connect(Factory.forProtocol(Reader))
    d.cancel()
    with pytest.raises(CancelledError):
        await d

    # Once a-dead has failed, the race waits on b-hole.
    refused = Deferred()

    seen = []

    def observe(event):
        if event.get("name") == "a-dead" and not seen:
            seen.append(event)
            # On the next turn: the b-hole attempt starts once a-dead's
            # failure is handled.
            reactor.callLater(0, refused.callback, None)

    globalLogPublisher.addObserver(observe)
    try:
        d = endpoint.connect(Factory.forProtocol(Reader))
        await bounded(refused)
    finally:
        globalLogPublisher.removeObserver(observe)
    assert not d.called
    d.cancel()
    with pytest.raises(CancelledError):
        await d


def test_interfaces(registry_server):
    connection = connectionFromString(reactor, registry_server.description)
    assert verifyObject(IStreamClientEndpoint, InfernoClientEndpoint(reactor, connection, {}))
    assert verifyObject(
        IStreamServerEndpoint,
        RegisteredServerEndpoint(reactor, TCP4ServerEndpoint(reactor, 0), connection),
    )
