"""
Tests for L{txinferno.regquery}, run in-process against the embedded
registry over loopback.
"""

import json

import pytest_twisted
from support import bounded, register
from twisted.internet import reactor
from twisted.internet.defer import Deferred

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
        return bounded(d)


class NoInput:
    """
    Standard input that must not be read.
    """

    def isatty(self):
        raise AssertionError("standard input read")


async def regquery(*argv, stdin=None, interrupted=None):
    out, err = Output(), Output()
    status = await bounded(
        run(reactor, list(argv), stdin or NoInput(), out, err, interrupted or Deferred())
    )
    return status, out.text, err.text


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
    assert not err.endswith(".\n")


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
        status, out, err = await regquery("-r", registry_server.description, "-n", stdin=stdin)
    assert (status, out, err) == (FOUND, "s1\ns2\n", "")


@pytest_twisted.ensureDeferred
async def test_watch(registry_server):
    """
    C{--watch} prints each change until interrupted.
    """
    interrupted = Deferred()
    out, err = Output(), Output()
    done = run(
        reactor,
        ["-r", registry_server.description, "--watch", "proto", "*"],
        NoInput(),
        out,
        err,
        interrupted,
    )
    reg = await register(registry_server, "w1", {"proto": "ssh"})
    await out.whenContains("added w1 proto ssh\n")
    reg.update({"proto": "tcp"})
    await out.whenContains("updated w1 proto tcp\n")
    await reg.unregister()
    await out.whenContains("removed w1 proto tcp\n")
    interrupted.callback(None)
    status = await bounded(done)
    assert status == NOT_FOUND
    assert out.text == "added w1 proto ssh\nupdated w1 proto tcp\nremoved w1 proto tcp\n"
    assert err.text == ""


def test_synopsisAndOptions():
    """
    The usage line names every option, C{-t} included.
    """
    from txinferno.regquery import Options

    synopsis = Options().synopsis
    for option in ("-r DESC", "-t SECONDS", "-n", "--json", "--watch", "--all"):
        assert option in synopsis


@pytest_twisted.ensureDeferred
async def test_optionErrors():
    """
    A bad option value is one line naming the option.
    """
    status, out, err = await regquery("-t", "abc", "a", "b")
    assert (status, err) == (ERROR, "regquery: --timeout abc: must be a positive number\n")
    status, out, err = await regquery("-t", "0", "a", "b")
    assert (status, err) == (ERROR, "regquery: --timeout 0: must be a positive number\n")
    status, out, err = await regquery("--all", "a", "b")
    assert (status, err) == (ERROR, "regquery: --all takes no query\n")


@pytest_twisted.ensureDeferred
async def test_all(registry_server):
    """
    C{--all} lists every service.
    """
    await register(registry_server, "s1", {"k": "1"})
    await register(registry_server, "s2", {})
    status, out, err = await regquery("-r", registry_server.description, "--all")
    assert (status, out, err) == (FOUND, "s1 k 1\ns2\n", "")


@pytest_twisted.ensureDeferred
async def test_namesAsTheyAre(registry_server):
    """
    C{-n} prints a name as it is, as Inferno's regquery does: no quoting.
    """
    await register(registry_server, "q'name", {"k": "1"})
    status, out, err = await regquery("-r", registry_server.description, "-n", "k", "1")
    assert (status, out, err) == (FOUND, "q'name\n", "")
    status, out, err = await regquery("-r", registry_server.description, "k", "1")
    assert out == "'q''name' k 1\n"


@pytest_twisted.ensureDeferred
async def test_standardInputQuotedNewline(registry_server, tmp_path):
    """
    A newline inside quotes does not end a query read from standard input.
    """
    await register(registry_server, "s1", {"z": "two\nlines"})
    queries = tmp_path / "queries"
    queries.write_bytes(b"z 'two\nlines'\n")
    with open(queries) as stdin:
        status, out, err = await regquery("-r", registry_server.description, "-n", stdin=stdin)
    assert (status, out, err) == (FOUND, "s1\n", "")


@pytest_twisted.ensureDeferred
async def test_standardInputBadLine(registry_server, tmp_path):
    """
    A bad line read from standard input is reported on standard error, in
    the registry's quoting, and the next lines are still run; the exit
    status says there was an error.
    """
    await register(registry_server, "s1", {"k": "1"})
    queries = tmp_path / "queries"
    queries.write_bytes(b"k\nk 1\n'two words'\n" + b"x" * 9000 + b"\nk 1\n")
    with open(queries) as stdin:
        status, out, err = await regquery("-r", registry_server.description, "-n", stdin=stdin)
    assert out == "s1\ns1\n"
    assert err == (
        "regquery: odd number of words in query k\n"
        "regquery: odd number of words in query 'two words'\n"
        "regquery: line longer than 8192 bytes\n"
    )
    assert status == ERROR


@pytest_twisted.ensureDeferred
async def test_watchNames(registry_server):
    """
    C{--watch -n} prints the names only.
    """
    interrupted = Deferred()
    out, err = Output(), Output()
    done = run(
        reactor,
        ["-r", registry_server.description, "--watch", "-n", "proto", "*"],
        NoInput(),
        out,
        err,
        interrupted,
    )
    reg = await register(registry_server, "w1", {"proto": "ssh"})
    await out.whenContains("added w1\n")
    await reg.unregister()
    await out.whenContains("removed w1\n")
    interrupted.callback(None)
    assert await bounded(done) == NOT_FOUND
    assert out.text == "added w1\nremoved w1\n"


@pytest_twisted.ensureDeferred
async def test_watchRefused(registry_server):
    """
    Against a registry that refuses connections, C{--watch} says why at
    once rather than waiting C{-t} seconds.
    """
    description = registry_server.description
    await registry_server.stop()
    status, out, err = await regquery("-r", description, "-t", "60", "--watch", "a", "b")
    assert status == ERROR and out == ""
    assert err.startswith("regquery: %s: " % (description,))
    assert "refused" in err.lower() and err.count("\n") == 1


@pytest_twisted.ensureDeferred
async def test_watchOutage(registry_server):
    """
    C{--watch} says on standard error when the registry is lost and when it
    is back, and a service registered again within the settle window is not
    reported removed.
    """
    interrupted = Deferred()
    out, err = Output(), Output()
    done = run(
        reactor,
        [
            "-r",
            registry_server.description,
            "--watch",
            "--settle",
            "30",
            "--max-retry-delay",
            "0.5",
            "proto",
            "*",
        ],
        NoInput(),
        out,
        err,
        interrupted,
    )
    await register(registry_server, "w1", {"proto": "ssh"})
    await out.whenContains("added w1 proto ssh\n")
    await registry_server.restart()
    await err.whenContains("registry lost: ")
    await err.whenContains("registry reachable again\n")
    await register(registry_server, "w2", {"proto": "ssh"})
    await out.whenContains("added w2 proto ssh\n")
    await register(registry_server, "w1", {"proto": "ssh"})
    interrupted.callback(None)
    assert await bounded(done) == FOUND
    assert out.text == "added w1 proto ssh\nadded w2 proto ssh\n"
    assert err.text.count("\n") == 2
    assert err.text.startswith("regquery: %s: registry lost: " % (registry_server.description,))
