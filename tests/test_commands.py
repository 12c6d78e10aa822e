"""
The README's tour, run with the installed commands as subprocesses: serve a
registry with C{twistd regmgr}, register a service with C{twistd regmgr
--service}, find it with C{regquery}, watch it with C{regquery --watch}, and
dial it through C{inferno:}.
"""

import os
import re
import socket
import subprocess

import pytest
from support import (
    COMMAND_TIMEOUT,
    LOOPBACK_PORTS,
    STOPPED,
    Command,
    installedEnvironment,
    runInstalled,
)

pytestmark = pytest.mark.install


@pytest.fixture
def registry(installed, tmp_path):
    """
    C{twistd -n regmgr} on free loopback ports; its registry description.
    """
    server = Command(
        installed,
        "twistd",
        "-n",
        "--pidfile=",
        "regmgr",
        *LOOPBACK_PORTS,
        "--web",
        "tcp:0:interface=127.0.0.1",
        cwd=tmp_path,
    )
    ports = server.waitFor(
        r"registry serving new=127.0.0.1:(\d+), find=127.0.0.1:(\d+), event=127.0.0.1:(\d+), "
        r"styx=127.0.0.1:\d+, 0 static services$"
    ).groups()
    yield server, "tcp:host=127.0.0.1:new=%s:find=%s:event=%s" % tuple(ports)
    assert server.stop() == STOPPED
    server.waitFor(r"Server Shut Down")


def test_tour(installed, registry, tmp_path):
    server, description = registry
    target = socket.socket()
    target.bind(("127.0.0.1", 0))
    target.listen(1)
    target.settimeout(COMMAND_TIMEOUT)
    address = "tcp!127.0.0.1!%d" % target.getsockname()[1]

    watch = Command(
        installed, "regquery", "-r", description, "--watch", "proto", "demo", cwd=tmp_path
    )
    agent = Command(
        installed,
        "twistd",
        "-n",
        "--pidfile=",
        "regmgr",
        "--registry",
        description,
        "--service",
        "%s proto demo descr 'my demo'" % address,
        cwd=tmp_path,
    )
    try:
        agent.waitFor(r"service %s registered" % re.escape(address))
        server.waitFor(r"%s" % re.escape(address))

        found = runInstalled(
            installed, "regquery", "-r", description, "proto", "demo", cwd=tmp_path
        )
        assert (found.returncode, found.stderr) == (0, "")
        assert found.stdout == "%s descr 'my demo' proto demo\n" % address
        names = runInstalled(
            installed, "regquery", "-r", description, "-n", "descr", "*", cwd=tmp_path
        )
        assert names.stdout == address + "\n"
        nothing = runInstalled(
            installed, "regquery", "-r", description, "proto", "none", cwd=tmp_path
        )
        assert (nothing.returncode, nothing.stdout) == (1, "")

        watch.waitFor(r"^added %s descr 'my demo' proto demo$" % re.escape(address))

        dial = runInstalled(
            installed,
            "python",
            "-c",
            (
                "from twisted.internet import task, protocol, endpoints\n"
                "async def main(reactor):\n"
                "    e = endpoints.clientFromString(reactor, %r)\n"
                "    p = await e.connect(protocol.Factory.forProtocol(protocol.Protocol))\n"
                "    print('connected to', p.transport.getPeer().port)\n"
                "    p.transport.loseConnection()\n"
                "task.react(lambda r: __import__('twisted').internet.defer.ensureDeferred(main(r)))\n"
            )
            % ("inferno:registry=%s:proto=demo" % description.replace(":", "\\:"),),
            cwd=tmp_path,
        )
        assert dial.returncode == 0, dial.stdout + dial.stderr
        assert dial.stdout == "connected to %d\n" % target.getsockname()[1]
        target.accept()[0].close()

        assert agent.stop() == STOPPED
        agent.waitFor(r"unregistered")
        watch.waitFor(r"^removed %s" % re.escape(address))
    finally:
        agent.stop()
        assert watch.stop() in (0, 1)
        target.close()


def test_badOption(installed, tmp_path):
    """
    A bad option ends twistd at once, with the error on its last line.
    """
    result = runInstalled(
        installed, "twistd", "-n", "regmgr", "--registry", "udp:10.0.0.1", cwd=tmp_path
    )
    assert result.returncode != 0
    assert "--registry udp:10.0.0.1" in result.stdout.strip().splitlines()[-1]


COMMANDS = [["regquery"], ["twistd", "regmgr"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(installed, tmp_path, command):
    """
    Every command's C{--help} prints its usage and exits 0, at once.
    """
    result = runInstalled(installed, *command, "--help", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert "Usage" in result.stdout or result.stdout.startswith("regquery [")
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_version(installed, tmp_path, command):
    """
    Every command's C{--version} prints txinferno's version and exits 0.
    """
    version = runInstalled(
        installed, "python", "-c", "import txinferno; print(txinferno.__version__)", cwd=tmp_path
    ).stdout.strip()
    result = runInstalled(installed, *command, "--version", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "%s (txinferno) %s\n" % (" ".join(command), version)


def test_portInUse(installed, tmp_path):
    """
    A port already in use: one line naming the port's role and address, no
    port opened or logged as started, exit 1.
    """
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        result = runInstalled(
            installed,
            "twistd",
            "-n",
            "--pidfile=",
            "regmgr",
            "--port",
            "0",
            "--event",
            "tcp:%d:interface=127.0.0.1" % (port,),
            cwd=tmp_path,
        )
    finally:
        busy.close()
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    wanted = "cannot listen for the event port on 127.0.0.1:%d: address already in use" % (port,)
    assert [line for line in output.splitlines() if "cannot listen" in line] == [
        line for line in output.splitlines() if line.endswith(wanted)
    ]
    assert wanted in output
    assert "Traceback" not in output and "starting on" not in output
    assert "registry serving" not in output


def test_regqueryUnreachable(installed, tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result = runInstalled(
        installed, "regquery", "-r", "tcp:127.0.0.1:%d" % port, "a", "b", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1


def test_regqueryInteractive(installed, registry, tmp_path):
    """
    On a terminal, regquery prompts for each query; a bad line is reported
    on standard error and the prompt comes again, as Inferno's regquery
    does.
    """
    import pty

    server, description = registry
    agent = Command(
        installed,
        "twistd",
        "-n",
        "--pidfile=",
        "regmgr",
        "--registry",
        description,
        "--service",
        "it proto demo",
        cwd=tmp_path,
    )
    master, slave = pty.openpty()
    env = installedEnvironment(installed)
    try:
        agent.waitFor(r"service it registered")
        query = subprocess.Popen(
            [str(installed / "regquery"), "-r", description, "-n"],
            cwd=str(tmp_path),
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(slave)
        slave = None
        os.write(master, b"proto\nproto demo\n\x04")
        out, err = query.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
        agent.stop()
    assert err == "regquery: odd number of words in query proto\n"
    assert out == "> > it\n> "
    assert query.returncode == 2


def test_webPortOfInstalledCopy(registry):
    """
    The installed copy's web port serves the page with its script and style
    sheet (package data), the API and the metrics.
    """
    import json
    import urllib.request

    server, description = registry
    port = server.waitFor(r"web port serving on 127\.0\.0\.1:(\d+)").group(1)
    base = "http://127.0.0.1:%s" % (port,)

    def fetch(path):
        with urllib.request.urlopen(base + path, timeout=COMMAND_TIMEOUT) as response:
            return response.status, response.read()

    status, page = fetch("/")
    assert status == 200 and b"static/view.js" in page
    status, script = fetch("/static/view.js")
    assert status == 200 and b"new EventSource(" in script
    status, style = fetch("/static/view.css")
    assert status == 200 and b"body.live #state" in style
    status, body = fetch("/v1/status")
    assert json.loads(body)["services"] == 0
    status, metrics = fetch("/metrics")
    assert b"txinferno_registry_services 0.0" in metrics
