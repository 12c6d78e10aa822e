"""
The registry server's log lines read as sentences, in the registry's own
quoting, with no Python representations in them.
"""

import pytest_twisted
from support import bounded, logLines
from twisted.internet import reactor
from twisted.logger import capturedLogs

from txinferno.tap import Options, makeService
from txinferno.testing import connectRaw


async def rejected(server, data):
    conn = await bounded(connectRaw(reactor, "127.0.0.1", server.newPort))
    port = conn.transport.getHost().port
    with capturedLogs() as events:
        conn.send(data)
        await bounded(conn.whenClosed())
    return port, logLines(events)


@pytest_twisted.ensureDeferred
async def test_rejectedWithoutName(registry_server):
    """
    A registration with no name: the line names the peer, not a name.
    """
    port, lines = await rejected(registry_server, b"\n")
    assert lines == ["new connection from 127.0.0.1:%d closed: bad service name" % (port,)]


@pytest_twisted.ensureDeferred
async def test_rejectedOddWords(registry_server):
    """
    A name followed by an odd number of words: the service is refused (never
    said to be removed without having been registered), and the name is
    quoted as the registry quotes it.
    """
    port, lines = await rejected(registry_server, b"'q''x' a\n")
    assert lines == [
        "service 'q''x' refused: odd number of attribute words after the service name",
        "new connection from 127.0.0.1:%d for 'q''x' closed: odd number of attribute "
        "words after the service name" % (port,),
    ]


def test_agentMaxRetryDelay(registry_server):
    """
    C{--max-retry-delay} caps the agent's reconnection backoff.
    """
    options = Options()
    options.parseOptions(
        [
            "--registry",
            registry_server.description,
            "--service",
            "s a 1",
            "--max-retry-delay",
            "2.5",
        ]
    )
    manager = makeService(options, reactor).agent._makeManager()
    assert manager.connection._maxDelay == 2.5
    options = Options()
    options.parseOptions(["--registry", registry_server.description, "--service", "s a 1"])
    manager = makeService(options, reactor).agent._makeManager()
    assert manager.connection._maxDelay == Options().defaults["max-retry-delay"]
