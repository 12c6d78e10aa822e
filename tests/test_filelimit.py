"""
Tests for L{txinferno._filelimit}: a client at its open-file limit gets an
error naming the limit.
"""

import resource
import socket

import pytest
import pytest_twisted
from support import bounded
from twisted.internet import reactor
from twisted.python.failure import Failure

from txinferno._filelimit import explainOpenFileLimit, raiseOpenFileLimit
from txinferno.client.tcp import connectionFromString
from txinferno.errors import OpenFileLimit


def test_raiseOpenFileLimit():
    """
    The soft limit is raised to the hard one, and reported.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert raiseOpenFileLimit() == (lowered, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        assert raiseOpenFileLimit() == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_otherFailuresPass():
    failure = Failure(ValueError("x"))
    assert explainOpenFileLimit(failure) is failure


@pytest_twisted.ensureDeferred
async def test_findAtTheLimit(registry_server):
    """
    A find that cannot open a socket fails with L{OpenFileLimit}, naming
    the limit, and works again once files are free.
    """
    connection = connectionFromString(reactor, registry_server.description)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = []
    limit = min(512, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        while True:
            try:
                held.append(socket.socket())
            except OSError:
                break
        with pytest.raises(OpenFileLimit, match="at most %d open" % (limit,)):
            await bounded(connection.find({"a": "b"}))
    finally:
        for s in held:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert await bounded(connection.find({"a": "b"})) == {}
