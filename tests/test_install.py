"""
Install txinferno into a fresh virtual environment, outside the source tree,
and check what an installed copy offers: the C{twistd regmgr} plugin.
"""

import os
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.install


def run(bindir, *args, cwd):
    """
    Run an installed command from C{cwd}, with no trace of the source tree in
    its environment.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(bindir) + os.pathsep + env.get("PATH", "")
    return subprocess.run(
        [str(bindir / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(cwd),
        env=env,
    )


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
