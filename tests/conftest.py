"""
Fixtures shared by the tests: C{registry_server} (an embedded registry on
loopback, from L{txinferno.testing.embedded}), C{manager} (a started manager
connected to it, from C{clientsupport}) and C{installed} (an installed
copy of txinferno).
"""

import subprocess
import sys
from pathlib import Path

import pytest
from clientsupport import manager

from txinferno.testing import registry_server

__all__ = ["installed", "manager", "registry_server"]

SOURCE = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """
    A virtual environment, outside the source tree, with txinferno
    installed by a normal (not editable) pip install; its C{bin} directory.
    """
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bindir = venv / "bin"
    subprocess.run(
        [str(bindir / "pip"), "install", "-q", "--disable-pip-version-check", str(SOURCE)],
        check=True,
        timeout=600,
        cwd=str(venv),
    )
    return bindir
