"""
Fixtures shared by the tests: C{registry_server} (an embedded registry on
loopback, from L{txinferno.testing.embedded}), C{manager} (a started manager
connected to it, from C{support}) and C{installed} (an installed
copy of txinferno).
"""

import subprocess
import sys
from pathlib import Path

import pytest
from support import manager

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


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "logs_errors: the test expects failures or errors to be logged (the autouse"
        " fixture otherwise fails a test that logs one)",
    )


@pytest.fixture(autouse=True)
def failOnLoggedErrors(request):
    """
    Fail the test when anything logs a failure or an event at error level or
    above while it runs, unless it is marked C{logs_errors}.
    """
    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    errors = []

    def observer(event):
        if "log_failure" in event or event.get("log_level") in (LogLevel.error, LogLevel.critical):
            errors.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        yield errors
    finally:
        globalLogPublisher.removeObserver(observer)
    if errors and request.node.get_closest_marker("logs_errors") is None:
        pytest.fail(
            "logged %d error(s): %s" % (len(errors), "; ".join(formatEvent(e) for e in errors[:3])),
            pytrace=False,
        )
