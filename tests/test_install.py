"""
Install txinferno into a fresh virtual environment, outside the source tree,
and check what an installed copy offers: the C{twistd regmgr} plugin.
"""

from pathlib import Path

import pytest
from support import runInstalled

SOURCE = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.install


def run(bindir, *args, cwd):
    """
    Run an installed command from C{cwd} (L{runInstalled}), allowing it the
    time of a first start.
    """
    return runInstalled(bindir, *args, cwd=cwd, timeout=120)


def test_twistdListsRegmgr(installed, tmp_path):
    """
    C{twistd --help}, run from a directory outside the source tree, lists
    the C{regmgr} plugin of the installed copy.
    """
    result = run(installed, "twistd", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "regmgr" in result.stdout


def test_installedCopyIsUsed(installed, tmp_path):
    """
    The installed copy, not the source tree, provides the package.
    """
    result = run(
        installed,
        "python",
        "-c",
        "import txinferno; print(txinferno.__file__)",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert not result.stdout.strip().startswith(str(SOURCE))
    assert "site-packages" in result.stdout


def test_endpointParsersFromInstalledCopy(installed, tmp_path):
    """
    The installed copy's C{inferno:} and C{registered:} endpoint string
    parsers are found by Twisted's plugin system.
    """
    script = (
        "from twisted.internet import reactor\n"
        "from twisted.internet.endpoints import clientFromString, serverFromString\n"
        "print(type(clientFromString(reactor, 'inferno:proto=ssh')).__name__)\n"
        "print(type(serverFromString(reactor, r'registered:tcp\\:0:proto=x')).__name__)\n"
    )
    result = run(installed, "python", "-c", script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["InfernoClientEndpoint", "RegisteredServerEndpoint"]
