"""
C{regquery}: look services up in a registry from a shell, like Inferno's
regquery::

    regquery [-r DESC] [-n] [--json] [--watch] [attr value ...]

Prints every service matching the query, one per line, in the registry's own
quoted format (C{-n}: names only; C{--json}: a JSON object).  With no
attributes it reads queries from standard input, one per line, prompting
C{> } on a terminal.  C{--watch} prints each change (added, updated,
removed) as it happens until interrupted.

Exit status: 0 when something was found, 1 when nothing was, 2 on error
(with the error on standard error in one line).
"""

import json
import os
import stat
import sys

from twisted.internet.defer import Deferred, DeferredQueue, ensureDeferred, succeed
from twisted.internet.stdio import StandardIO
from twisted.protocols.basic import LineReceiver
from twisted.python import usage

from txinferno.wire.description import DEFAULT_REGISTRY, REGISTRY_ENVIRONMENT, defaultRegistry
from txinferno.errors import RegistryUnavailable
from txinferno.client.manager import RegistryManager
from txinferno.client.monitor import Monitor
from txinferno.client.observers import MonitorObserver
from txinferno.client.tcp import connectionFromString
from txinferno.wire.rules import queryLine
from txinferno.wire.words import decode, formatService, splitWords

__all__ = ["Options", "main"]

FOUND, NOT_FOUND, ERROR = 0, 1, 2


class Options(usage.Options):
    """
    The command line of C{regquery}.
    """

    synopsis = "regquery [-r DESC] [-n] [--json] [--watch] [attr value ...]"
    longdesc = (
        "Find services in an Inferno registry by their attributes. With no "
        "attributes, read one query a line from standard input. Exit status: "
        "0 found, 1 nothing found, 2 error."
    )
    optFlags = [
        ["names", "n", "Print the names of the services only."],
        ["json", None, "Print JSON."],
        ["watch", "w", "Print each change of the matching services until interrupted."],
    ]
    optParameters = [
        ["registry", "r", None,
         "The registry description (default: $%s, else %s)."
         % (REGISTRY_ENVIRONMENT, DEFAULT_REGISTRY)],
        ["timeout", "t", 10.0, "Seconds to wait for an answer.", float],
    ]

    def parseArgs(self, *query):
        if len(query) % 2:
            raise usage.UsageError("odd number of words in query: give attr value pairs")
        self["query"] = list(zip(query[::2], query[1::2]))
        queryLine(self["query"])

    def postOptions(self):
        if self["registry"] is None:
            self["registry"] = defaultRegistry()
        if not self["timeout"] > 0:
            raise usage.UsageError("--timeout must be positive")
        if self["watch"] and not self["query"] and self["names"]:
            raise usage.UsageError("--watch and --names do not go together")


def _serviceLine(name, attrs):
    return formatService(name, attrs).decode("utf-8")


def formatAnswer(services, names=False, asJSON=False):
    """
    Format an answer as C{regquery} prints it.

    @param services: C{{name: {attr: value}}}.
    @return: the text to print.
    @rtype: L{str}
    """
    if asJSON:
        value = sorted(services) if names else services
        return json.dumps(value, ensure_ascii=False) + "\n"
    if names:
        return "".join(_serviceLine(name, {}) for name in services)
    return "".join(_serviceLine(name, attrs) for name, attrs in services.items())


class _ChangePrinter(MonitorObserver):
    """
    Prints each change a monitor reports, one line each.
    """

    def __init__(self, out, asJSON):
        self._out = out
        self._json = asJSON

    def _print(self, event, name, attrs):
        if self._json:
            line = json.dumps({"event": event, "name": name, "attrs": attrs},
                              ensure_ascii=False) + "\n"
        else:
            line = event + " " + _serviceLine(name, attrs)
        self._out.write(line)
        self._out.flush()

    def added(self, name, attrs):
        self._print("added", name, attrs)

    def updated(self, name, attrs, previous):
        self._print("updated", name, attrs)

    def removed(self, name, attrs):
        self._print("removed", name, attrs)


class _QueryLines(LineReceiver):
    """
    Reads standard input without blocking the reactor, a query a line.
    """

    delimiter = b"\n"

    def __init__(self):
        self.lines = DeferredQueue()

    def lineReceived(self, line):
        self.lines.put(line)

    def connectionLost(self, reason):
        if self._buffer:
            self.lines.put(self._buffer)
        self.lines.put(None)


def _readLines(stdin):
    """
    Queue the lines of C{stdin} as they come.

    @return: a L{DeferredQueue} of L{bytes} lines, ended by L{None}.
    """
    if hasattr(stdin, "fileno") and stat.S_ISREG(os.fstat(stdin.fileno()).st_mode):
        lines = DeferredQueue()
        for line in stdin.buffer if hasattr(stdin, "buffer") else stdin:
            lines.put(line)
        lines.put(None)
        return lines
    reader = _QueryLines()
    StandardIO(reader, stdin=stdin.fileno())
    return reader.lines


async def _queries(options, stdin, out, interrupted):
    if options["query"] or options["watch"]:
        yield options["query"]
        return
    interactive = stdin.isatty()
    lines = _readLines(stdin)
    interrupted.addCallback(lambda _: lines.put(None))
    while True:
        if interactive:
            out.write("> ")
            out.flush()
        line = await lines.get()
        if line is None:
            return
        words = splitWords(line)
        if len(words) % 2:
            raise ValueError("odd number of words in query %r" % (decode(line).rstrip("\n"),))
        yield list(zip(words[::2], words[1::2]))


async def _find(reactor, options, stdin, out, interrupted):
    connection = connectionFromString(
        reactor, options["registry"], findTimeout=options["timeout"])
    found = False
    async for query in _queries(options, stdin, out, interrupted):
        services = await connection.find(query)
        found = found or bool(services)
        out.write(formatAnswer(services, options["names"], options["json"]))
        out.flush()
    return FOUND if found else NOT_FOUND


async def _watch(reactor, options, out, interrupted):
    manager = RegistryManager.fromDescription(
        reactor, options["registry"], findTimeout=options["timeout"])
    monitor = Monitor(options["query"], _ChangePrinter(out, options["json"]))
    manager.attach(monitor)
    manager.startService()
    try:
        await manager.whenConnected().addTimeout(options["timeout"], reactor)
    except Exception:
        await manager.stopService()
        raise RegistryUnavailable(
            "no registry after %g s" % (options["timeout"],)) from None
    await interrupted
    await manager.stopService()
    return FOUND if monitor.services else NOT_FOUND


def run(reactor, argv, stdin, out, err, interrupted):
    """
    Run C{regquery}.

    @param argv: the arguments, without the program name.
    @param stdin: where queries are read when C{argv} gives none.
    @param out: where answers go.
    @param err: where the one-line error goes.
    @param interrupted: a L{Deferred} that fires when the user interrupts;
        C{--watch} runs until then.
    @return: a L{Deferred} that fires with the exit status.
    """
    options = Options()
    try:
        options.parseOptions(argv)
    except (usage.UsageError, ValueError) as e:
        err.write("regquery: %s\n" % (_oneLine(e),))
        return succeed(ERROR)
    if options["watch"]:
        work = _watch(reactor, options, out, interrupted)
    else:
        work = _find(reactor, options, stdin, out, interrupted)

    def failed(failure):
        err.write("regquery: %s: %s\n" % (options["registry"], _oneLine(failure.value)))
        return ERROR

    return ensureDeferred(work).addErrback(failed)


def _oneLine(error):
    text = str(error) or error.__class__.__name__
    return " ".join(text.split())


def main(argv=None):
    """
    The C{regquery} console script: run, and exit with its status.  An
    interrupt (C{SIGINT}, C{SIGTERM}) ends C{--watch} cleanly.
    """
    from twisted.internet import reactor

    argv = sys.argv[1:] if argv is None else argv
    interrupted = Deferred()
    status = []

    def finished(code):
        status.append(code)
        if reactor.running:
            reactor.stop()

    def shuttingDown():
        if not status and not interrupted.called:
            interrupted.callback(None)
        return done

    done = Deferred()
    reactor.addSystemEventTrigger("before", "shutdown", shuttingDown)
    reactor.callWhenRunning(
        lambda: run(reactor, argv, sys.stdin, sys.stdout, sys.stderr, interrupted)
        .addCallback(finished)
        .addBoth(lambda _: done.callback(None)))
    reactor.run()
    sys.exit(status[0] if status else ERROR)
