"""
Tests for L{txinferno.testing.embedded.EmbeddedRegistry.waitFor}.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
from support import register
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, TimeoutError
from twisted.internet.task import Clock

from txinferno.testing import EmbeddedRegistry


@pytest_twisted.ensureDeferred
async def test_waitForRegistration(registry_server):
    """
    C{waitFor} fires with the service once it is registered, and at once
    when it is there already.
    """
    waiting = registry_server.waitFor("w1")
    assert not waiting.called
    await register(registry_server, "w1", {"a": "1"})
    service = await waiting
    assert service.name == "w1" and dict(service.attributes()) == {"a": "1"}
    again = registry_server.waitFor("w1")
    assert again.called


@pytest_twisted.ensureDeferred
async def test_waitForAcrossRestart(registry_server):
    """
    Right after a restart the name is gone; C{waitFor} waits for it to be
    registered in the fresh registry, even when asked before the restart.
    """
    registration = await register(registry_server, "w2", {"a": "1"})
    await registry_server.restart()
    early = registry_server.waitFor("w2")
    assert "w2" not in registry_server.registry and not early.called
    await registry_server.restart()
    await register(registry_server, "w2", {"a": "1"})
    service = await early
    assert registry_server.registry["w2"] is service
    del registration


@pytest_twisted.ensureDeferred
async def test_waitForTimeoutAndCancel():
    """
    C{waitFor} gives up after its timeout; cancelling it stops the wait.
    """
    clock = Clock()
    server = EmbeddedRegistry(reactor=reactor)
    await server.start()
    try:
        server.reactor = clock
        late = server.waitFor("never", timeout=1)
        clock.advance(1)
        with pytest.raises(TimeoutError):
            await late
        cancelled = server.waitFor("never", timeout=None)
        cancelled.cancel()
        with pytest.raises(CancelledError):
            await cancelled
        assert server._waiters == []
    finally:
        server.reactor = reactor
        await server.stop()


def test_testingPage(tmp_path):
    """
    The test kit page's example passes as a test (run with this
    interpreter's pytest, outside the source tree).
    """
    page = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text()
    examples = re.findall(r"^```python\n(.*?)^```$", page, re.M | re.S)
    (tmp_path / "test_example.py").write_text(examples[0])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_example.py"),
        ],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest_twisted.ensureDeferred
async def test_stopRemovesEveryService():
    """
    When C{stop} fires, every connection is closed and every service they
    registered is gone from the registry: the last connection to close
    releases its service before it counts as closed.
    """
    server = EmbeddedRegistry(reactor=reactor)
    await server.start()
    try:
        registrations = [await register(server, "s%d" % i, {"a": "1"}) for i in range(3)]
        registry = server.registry
        assert len(registry) == 3
    finally:
        await server.stop()
    assert [s.name for s in registry] == []
    del registrations
