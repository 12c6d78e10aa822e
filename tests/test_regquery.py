"""
Tests for L{txinferno.regquery}, run in-process against the embedded
registry over loopback.
"""

import json

import pytest_twisted
from support import TIMEOUT
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from txinferno.client.tcp import connectionFromString
from txinferno.regquery import ERROR, FOUND, NOT_FOUND, formatAnswer, run


class Output:
    """
    A text stream that keeps what is written and can wait for a text in it.
    """

    def __init__(self):
        self.text = ""
        self._waiting = []

    def write(self, text):
        self.text += text
        for wanted, d in list(self._waiting):
            if wanted in self.text:
                self._waiting.remove((wanted, d))
                d.callback(self.text)

    def flush(self):
        pass

    def whenContains(self, wanted):
        d = Deferred()
        if wanted in self.text:
            d.callback(self.text)
        else:
            self._waiting.append((wanted, d))
        return d.addTimeout(TIMEOUT, reactor)


class NoInput:
    """
    Standard input that must not be read.
    """

    def isatty(self):
        raise AssertionError("standard input read")


async def regquery(*argv, stdin=None, interrupted=None):
    out, err = Output(), Output()
    status = await run(reactor, list(argv), stdin or NoInput(), out, err,
                       interrupted or Deferred()).addTimeout(TIMEOUT, reactor)
    return status, out.text, err.text


async def register(server, name, attrs):
    connection = connectionFromString(reactor, server.description)
    return await connection.register(name, attrs).addTimeout(TIMEOUT, reactor)


def test_formatAnswer():
    services = {"q1": {"descr": "it's a test", "nl": "x\ny"}, "b": {}}
    assert formatAnswer(services) == "q1 descr 'it''s a test' nl 'x\ny'\nb\n"
    assert formatAnswer(services, names=True) == "q1\nb\n"
    assert json.loads(formatAnswer(services, asJSON=True)) == services
    assert json.loads(formatAnswer(services, names=True, asJSON=True)) == ["b", "q1"]


@pytest_twisted.ensureDeferred
async def test_found(registry_server):
    """
    Matching services print in the registry's quoted format; exit 0.
    """
    reg = await register(registry_server, "svc1", [("proto", "ssh"), ("descr", "an example")])
    await register(registry_server, "svc2", [("proto", "http")])
    status, out, err = await regquery("-r", registry_server.description, "proto", "ssh")
    assert (status, out, err) == (FOUND, "svc1 descr 'an example' proto ssh\n", "")
    status, out, _ = await regquery("-r", registry_server.description, "-n", "proto", "*")
    assert status == FOUND
    assert sorted(out.splitlines()) == ["svc1", "svc2"]
    status, out, _ = await regquery("-r", registry_server.description, "--json", "proto", "http")
    assert json.loads(out) == {"svc2": {"proto": "http"}}
    await reg.unregister()


@pytest_twisted.ensureDeferred
async def test_nothingFound(registry_server):
    status, out, err = await regquery("-r", registry_server.description, "proto", "none")
    assert (status, out, err) == (NOT_FOUND, "", "")


@pytest_twisted.ensureDeferred
async def test_badArguments():
    status, out, err = await regquery("proto")
    assert status == ERROR
    assert err.startswith("regquery: odd number of words") and err.count("\n") == 1
    status, out, err = await regquery("-r", "udp:localhost", "a", "b")
    assert status == ERROR and err.startswith("regquery: ") and err.count("\n") == 1


@pytest_twisted.ensureDeferred
async def test_unreachable(registry_server):
    """
    A registry that is not there: one line on standard error, exit 2.
    """
    description = registry_server.description
    await registry_server.stop()
    status, out, err = await regquery("-r", description, "a", "b")
    assert status == ERROR and out == ""
    assert err.startswith("regquery: " + description + ": ")
    assert err.count("\n") == 1


@pytest_twisted.ensureDeferred
async def test_queriesFromStandardInput(registry_server, tmp_path):
    """
    With no attributes, each line of standard input is a query.
    """
    await register(registry_server, "s1", {"k": "1"})
    await register(registry_server, "s2", {"k": "2", "z": "two words"})
    queries = tmp_path / "queries"
    queries.write_bytes(b"k 1\nz 'two words'\nk 3\n")
    with open(queries) as stdin:
        status, out, err = await regquery(
            "-r", registry_server.description, "-n", stdin=stdin)
    assert (status, out, err) == (FOUND, "s1\ns2\n", "")


@pytest_twisted.ensureDeferred
async def test_watch(registry_server):
    """
    C{--watch} prints each change until interrupted.
    """
    interrupted = Deferred()
    out, err = Output(), Output()
    done = run(reactor, ["-r", registry_server.description, "--watch", "proto", "*"],
               NoInput(), out, err, interrupted)
    reg = await register(registry_server, "w1", {"proto": "ssh"})
    await out.whenContains("added w1 proto ssh\n")
    reg.update({"proto": "tcp"})
    await out.whenContains("updated w1 proto tcp\n")
    await reg.unregister()
    await out.whenContains("removed w1 proto tcp\n")
    interrupted.callback(None)
    status = await done.addTimeout(TIMEOUT, reactor)
    assert status == NOT_FOUND
    assert out.text == "added w1 proto ssh\nupdated w1 proto tcp\nremoved w1 proto tcp\n"
    assert err.text == ""
