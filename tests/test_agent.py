"""
Tests for L{txinferno.agent} (the agent of C{twistd regmgr}), against the
embedded registry over loopback.
"""

import pytest
import pytest_twisted
from support import bounded, whenRegistry
from twisted.internet import reactor

from txinferno.agent import (
    Agent,
    ChangeCommand,
    parseQuerySpec,
    parseServiceSpec,
    readServicesFile,
)
from txinferno.client.manager import RegistryManager


def attributes(server, name):
    return dict(server.registry[name].attributes())


def test_parseServiceSpec():
    assert parseServiceSpec("web proto http descr 'my site'") == (
        "web", {"proto": "http", "descr": "my site"})
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
    path.write_text("service=keep a=1\nservice=change a=1\nservice=drop a=1\nservice=shrink a=1 b=2\n")
    agent = Agent(lambda: RegistryManager.fromDescription(reactor, registry_server.description),
                  services=[("fixed", {"f": "1"})], servicesFile=str(path))
    agent.startService()
    try:
        names = {"fixed", "keep", "change", "drop", "shrink"}
        await whenRegistry(registry_server, lambda r: names <= set(s.name for s in r))
        keep = registry_server.registry["keep"]

        path.write_text("service=keep a=1\nservice=change a=2\nservice=shrink a=1\nservice=fresh n=1\n")
        await bounded(agent.reload())
        await whenRegistry(
            registry_server,
            lambda r: "drop" not in r and "fresh" in r and "shrink" in r
            and r["change"].get("a") == "2" and r["shrink"].get("b") is None)
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
    command = ('printf "%%s|%%s|%%s\\n" "$TXINFERNO_EVENT" "$TXINFERNO_NAME" '
               '"$TXINFERNO_SERVICE" >> %s' % out)
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
