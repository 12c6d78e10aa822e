"""
The examples of the README and the docs, run in their own order with the
installed commands and the installed package, as a reader would run them.

The only change made to an example is where the registry listens: a free
base port instead of 6701, given to servers as C{--port BASE}, to clients
as C{tcp:127.0.0.1:BASE} and, for C{regquery}, as C{$TXINFERNO_REGISTRY}
(the examples that use the default registry rely on it); the Styx and web
ports on the two free ports after them (C{--styx}, C{--web}; clients get
C{styx:127.0.0.1:BASE+3}), so that no other server on 6675 or 6680 is in
the way.  The steps that
make the virtual environment and C{pip install} are skipped: the
C{installed} fixture made the installation.
"""

import random
import re
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
from support import COMMAND_TIMEOUT, STOPPED, Command, installedEnvironment

SOURCE = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.install


def blocks(path):
    """
    @return: the fenced code blocks of a Markdown file, in order, as
        C{(language, text)}.
    """
    text = (SOURCE / path).read_text()
    return [
        (m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)
    ]


PORTS = 5
"""
The ports from the base on that the examples' registry takes: new, find,
event, Styx, web.
"""


def freeBase():
    """
    @return: a base port whose L{PORTS} - 1 neighbours are free too, on
        127.0.0.1, chosen at random below the system's range of ephemeral
        ports (where the ports that clients use for their connections are
        taken from).
    """
    for _ in range(100):
        base = random.randrange(20000, 32000)
        probes = [socket.socket() for _ in range(PORTS)]
        try:
            for offset, probe in enumerate(probes):
                probe.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError("no %d free ports in a row" % (PORTS,))


class Step:
    """
    One shell command of an example and the output its comment lines show.
    """

    def __init__(self, argv):
        self.argv = argv
        self.expected = []


def shellSteps(text):
    """
    Read a shell example: one L{Step} per command (backslash continuations
    joined, C{&&} splitting commands); comment lines right under a command
    are its expected output, other comments are prose.
    """
    steps = []
    last = None
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line:
            last = None
        elif line.startswith("#"):
            if last is not None:
                last.expected.append(line[1:].strip())
        else:
            words = shlex.split(line, comments=True)
            while "&&" in words:
                i = words.index("&&")
                steps.append(Step(words[:i]))
                words = words[i + 1 :]
            last = Step(words)
            steps.append(last)
    return steps


class Reader:
    """
    Runs examples as a reader would, one after the other, in one directory,
    against a registry on free ports.
    """

    def __init__(self, bindir, cwd):
        self.bindir = bindir
        self.cwd = cwd
        self.base = freeBase()
        self.registry = "tcp:127.0.0.1:%d" % (self.base,)
        self.background = []
        self.server = None
        self.env = installedEnvironment(bindir)
        self.env["TXINFERNO_REGISTRY"] = self.registry

    def localise(self, argv):
        argv = [re.sub(r"^tcp:127\.0\.0\.1(:\d+)?$", self.registry, a) for a in argv]
        if argv[:1] == ["twistd"] and "regmgr" in argv and "--registry" not in argv:
            if "--port" in argv:
                argv[argv.index("--port") + 1] = str(self.base)
            else:
                i = argv.index("regmgr") + 1
                argv[i:i] = ["--port", str(self.base)]
            for offset, name in ((3, "styx"), (4, "web")):
                if not {"--" + name, "--no-" + name} & set(argv):
                    i = argv.index("regmgr") + 1
                    endpoint = "tcp:%d:interface=127.0.0.1" % (self.base + offset,)
                    argv[i:i] = ["--" + name, endpoint]
        return argv

    def start(self, argv):
        command = Command(
            self.bindir,
            *argv,
            cwd=self.cwd,
            extraEnv={k: v for k, v in self.env.items() if k.startswith("TXINFERNO")},
        )
        self.background.append(command)
        return command

    def runShell(self, text):
        for step in shellSteps(text):
            argv = self.localise(step.argv)
            if (
                argv[:1] in (["pip"], ["."])
                or argv[:3] == ["python", "-m", "pytest"]
                or argv[:3] == ["python3", "-m", "venv"]
            ):
                continue
            if argv[:1] == ["twistd"]:
                command = self.start(argv)
                if "--registry" in argv:
                    command.waitFor(r"service \S+ registered")
                else:
                    command.waitFor(r"registry serving new=")
                    self.server = (argv, command)
                    if "--service" in argv:
                        command.waitFor(r"service \S+ registered")
            elif "--watch" in argv:
                self.watch = self.start(argv)
                self.watch.waitFor(r"^added ")
            else:
                result = subprocess.run(
                    argv,
                    cwd=str(self.cwd),
                    env=self.env,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                )
                assert result.returncode == 0, (argv, result.stdout, result.stderr)
                if step.expected:
                    assert result.stdout.splitlines() == step.expected, argv

    def runPython(self, text):
        script = text.replace('"tcp:127.0.0.1"', '"%s"' % (self.registry,))
        script = script.replace(r"tcp\:127.0.0.1", r"tcp\:127.0.0.1\:%d" % (self.base,))
        for offset in range(3):
            script = script.replace("tcp:%d:" % (6701 + offset,), "tcp:%d:" % (self.base + offset,))
        script = script.replace('"styx:127.0.0.1"', '"styx:127.0.0.1:%d"' % (self.base + 3,))
        result = subprocess.run(
            [str(self.bindir / "python"), "-c", script],
            cwd=str(self.cwd),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def restartServer(self):
        argv, command = self.server
        assert command.stop() == STOPPED
        self.background.remove(command)
        self.server = (argv, self.start(argv))
        self.server[1].waitFor(r"registry serving new=")

    def stop(self):
        for command in reversed(self.background):
            command.stop()


@pytest.fixture
def reader(installed, tmp_path):
    reader = Reader(installed, tmp_path)
    yield reader
    reader.stop()


def test_readme(reader):
    """
    The README's shell tour, then its Python tour, then the restart it
    describes: the agent registers its service again, and C{regquery
    --watch} says the registry was lost and is back, without reporting the
    service removed.
    """
    examples = blocks("README.md")
    ran = []
    for language, text in examples:
        if language == "sh" and "bench/" not in text:
            reader.runShell(text)
            ran.append(language)
        elif language == "python":
            output = reader.runPython(text)
            ran.append(language)
            if "ServiceTask" in text:
                assert "added tcp!127.0.0.1!8081 {'proto': 'http'}" in output
                assert "tcp!127.0.0.1!8080" in output
    assert ran == ["sh", "sh", "sh", "python", "python"]
    agent = [c for c in reader.background if "--service" in c.process.args][0]
    reader.restartServer()
    agent.waitFor(r"service tcp!127.0.0.1!8080 registered")
    found = subprocess.run(
        ["regquery", "proto", "http"],
        cwd=str(reader.cwd),
        env=reader.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert found.stdout == "tcp!127.0.0.1!8080 descr 'my web site' proto http\n"
    reader.watch.waitFor(r"registry reachable again")
    assert reader.watch.stop() in (0, 1)
    watched = "".join(reader.watch.seen) + "".join(iter(reader.watch.lines.get, None))
    assert "registry lost" in watched
    assert "removed tcp!127.0.0.1!8080" not in watched


def test_quickstart(reader):
    """
    The quick start's examples, in order.
    """
    ran = []
    for language, text in blocks("docs/quickstart.md"):
        if language == "sh":
            reader.runShell(text)
        elif language == "python":
            reader.runPython(text)
        ran.append(language)
    assert ran == ["sh", "sh", "sh", "sh", "python", "python"]


def test_regqueryPage(reader):
    """
    The regquery page's examples, against the registry of the quick start.
    """
    reader.runShell("twistd -n regmgr\n")
    reader.runShell(
        "twistd -n --pidfile= regmgr --registry tcp:127.0.0.1 "
        "--service \"tcp!127.0.0.1!8080 proto http descr 'my web site'\"\n"
    )
    shell = [text for language, text in blocks("docs/regquery.md") if language == "sh"]
    assert shell
    for text in shell:
        reader.runShell(text)


def test_serverPage(reader, tmp_path):
    """
    The server page's examples: its static file, the commands that serve
    it, and the program that serves it itself.
    """
    examples = blocks("docs/server.md")
    for language, text in examples:
        if language == "text" and "service=" in text:
            (tmp_path / "services.db").write_text(text)
    assert (tmp_path / "services.db").exists()
    commands = [text for language, text in examples if language == "sh"]
    for line in commands[0].splitlines():
        reader.runShell(line + "\n")
        argv, command = reader.server
        static = 2 if "--db" in argv else 0
        assert re.search(
            r"registry serving .*, %d static services$" % (static,), "".join(command.seen), re.M
        )
        found = subprocess.run(
            ["regquery", "--all"],
            cwd=str(reader.cwd),
            env=reader.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert found.returncode == (0 if static else 1), found.stderr
        assert len(found.stdout.splitlines()) == static
        assert command.stop() == STOPPED
        reader.background.remove(command)
    program = [text for language, text in examples if language == "python"][0]
    output = reader.runPython(program)
    assert "static1" in output


def test_programsOfOtherPages(reader):
    """
    The complete programs of the client, connection and agent pages, each
    page in order, against the registry of the quick start.  (Fragments,
    such as a single C{clientFromString} call, and commands that name a
    remote registry are not run.)
    """
    reader.runShell("twistd -n regmgr\n")
    ran = []
    for page in ("docs/client.md", "docs/connection.md"):
        for language, text in blocks(page):
            if language == "python" and "react(" in text:
                output = reader.runPython(text)
                assert "tcp!myhost!22" in output
                ran.append(page)
    # connection.md has one program for each plugin, TCP and Styx.
    assert ran == ["docs/client.md", "docs/connection.md", "docs/connection.md"]
    argv, server = reader.server
    assert server.stop() == STOPPED
    reader.background.remove(server)
    local = [
        line
        for line in shellSteps(
            [text for language, text in blocks("docs/agent.md") if language == "sh"][0]
        )
        if "10.0.0.1" not in " ".join(line.argv)
    ]
    assert len(local) == 2
    # "serve one and register in it" holds where no $TXINFERNO_REGISTRY names another.
    del reader.env["TXINFERNO_REGISTRY"]
    for step in local:
        reader.runShell(shlex.join(step.argv) + "\n")
        argv, server = reader.server
        assert server.stop() == STOPPED
        reader.background.remove(server)
