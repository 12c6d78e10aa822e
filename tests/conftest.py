"""
Fixtures shared by the tests: C{registry_server} (an embedded registry on
loopback, from L{txinferno.testing.embedded}), C{manager} (a started manager
connected to it, and C{proxy}, a fault proxy in front of it, both from
C{support}), C{logged} (the log events of the test, from C{support}) and
C{installed} (an installed
copy of txinferno).
"""

import fcntl
import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import logged, manager, proxy

from txinferno.testing import registry_server

__all__ = ["installed", "logged", "manager", "proxy", "registry_server"]

SOURCE = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """
    A virtual environment, outside the source tree, with txinferno
    installed by a normal (not editable) pip install; its C{bin} directory.

    One installation serves the whole run: with pytest-xdist, the first
    worker to need it builds it under a lock in the folder all workers'
    temporary folders share, and the others wait for it and reuse it.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    venv = shared / "installed-venv"
    bindir = venv / "bin"
    with open(shared / "installed-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            # No pip inside: this process's pip installs into it (--python),
            # which spares the venv its own copy of pip.
            subprocess.run(
                [sys.executable, "-m", "venv", "--without-pip", str(venv)],
                check=True,
                timeout=120,
            )
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "--python",
                    str(bindir / "python"),
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    str(SOURCE),
                ],
                check=True,
                timeout=600,
                cwd=str(venv),
            )
            (venv / "complete").touch()
    return bindir


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "logs_errors: the test expects failures or errors to be logged (the autouse"
        " fixture otherwise fails a test that logs one, and fails a test so marked"
        " that logs none)",
    )


@pytest.fixture(autouse=True)
def failOnLoggedErrors(request):
    """
    Fail the test when anything logs a failure or an event at error level or
    above while it runs, unless it is marked C{logs_errors}; fail a test so
    marked that logs none, whose marker would hide errors it does not
    expect.
    """
    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    errors = []

    def observer(event):
        if "log_failure" in event or event.get("log_level") in (LogLevel.error, LogLevel.critical):
            errors.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        yield errors
        # A Deferred the test left failing with nobody to handle it logs
        # its failure when collected: collect now, so that it is this
        # test's.
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observer)
    expected = request.node.get_closest_marker("logs_errors") is not None
    if errors and not expected:
        pytest.fail(
            "logged %d error(s): %s" % (len(errors), "; ".join(formatEvent(e) for e in errors[:3])),
            pytrace=False,
        )
    if expected and not errors:
        pytest.fail("marked logs_errors but logged no error", pytrace=False)
