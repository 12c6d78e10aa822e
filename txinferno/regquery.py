"""
C{regquery}: look services up in a registry from a shell, like Inferno's
regquery::

    regquery [-r DESC] [-t SECONDS] [-n] [--json] [--watch] [--all] [attr value ...]

Prints every service matching the query, one per line, in the registry's own
quoted format (C{-n}: names only, as they are, as Inferno's regquery prints
them; C{--json}: a JSON object); C{--all} lists every service.  With no
attributes it reads queries from standard input, one per line (a newline
inside quotes does not end a line), prompting C{> } on a terminal; a bad
line is reported on standard error and the next one read.  C{--watch}
prints each change (added, updated, removed) as it happens until
interrupted, and says on standard error when the registry is lost and when
it is back.

Exit status: 0 when something was found, 1 when nothing was, 2 on error
(with the error on standard error in one line; for standard input, when any
line was bad).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Sequence
from typing import IO, Any, NoReturn

from twisted.internet.defer import Deferred, DeferredQueue, ensureDeferred, succeed
from twisted.internet.protocol import Protocol
from twisted.internet.stdio import StandardIO
from twisted.python import usage

from txinferno import __version__
from txinferno._options import number
from txinferno.client.event import DEFAULT_MAX_DELAY
from txinferno.client.manager import RegistryManager
from txinferno.client.monitor import SETTLE, Monitor
from txinferno.client.observers import ConnectionStateObserver, MonitorObserver
from txinferno.client.tcp import connectionFromString
from txinferno.errors import RegistryUnavailable
from txinferno.wire.description import DEFAULT_REGISTRY, REGISTRY_ENVIRONMENT, defaultRegistry
from txinferno.wire.rules import Services, queryLine
from txinferno.wire.words import MAX_LINE, LineAssembler, formatLine, formatService, splitWords

__all__ = ["Options", "main", "run"]

FOUND, NOT_FOUND, ERROR = 0, 1, 2


class Options(usage.Options):
    """
    The command line of C{regquery}.
    """

    synopsis = "regquery [-r DESC] [-t SECONDS] [-n] [--json] [--watch] [--all] [attr value ...]"
    longdesc = (
        "Find services in an Inferno registry by their attributes; --all lists "
        "every service. With no attributes, read one query a line from standard "
        "input. Exit status: 0 found, 1 nothing found, 2 error."
    )
    optFlags = [
        ["names", "n", "Print the names of the services only, as they are."],
        ["json", None, "Print JSON."],
        ["watch", "w", "Print each change of the matching services until interrupted."],
        ["all", "a", "List every service (with --watch: watch every service)."],
    ]
    optParameters = [
        [
            "registry",
            "r",
            None,
            "The registry description, tcp:... or styx:... (default: $%s, else %s)."
            % (REGISTRY_ENVIRONMENT, DEFAULT_REGISTRY),
        ],
        ["timeout", "t", 10.0, "Seconds to wait for an answer.", number("timeout")],
        [
            "max-retry-delay",
            None,
            DEFAULT_MAX_DELAY,
            "With --watch: the longest wait, in seconds, between attempts to "
            "reach a lost registry.",
            number("max-retry-delay"),
        ],
        [
            "settle",
            None,
            SETTLE,
            "With --watch: seconds after the registry is back during which a "
            "service that has not come back yet is not reported removed.",
            number("settle", inclusive=True),
        ],
    ]

    def opt_version(self) -> NoReturn:
        """
        Display txinferno's version and exit.
        """
        print("regquery (txinferno) %s" % (__version__,))
        sys.exit(0)

    def parseArgs(self, *query: str) -> None:
        if len(query) % 2:
            raise usage.UsageError("odd number of words in query: give attr value pairs")
        self["query"] = list(zip(query[::2], query[1::2]))
        queryLine(self["query"])

    def postOptions(self) -> None:
        if self["registry"] is None:
            self["registry"] = defaultRegistry()
        if self["all"] and self["query"]:
            raise usage.UsageError("--all takes no query")


def _text(line):
    return line.decode("utf-8").rstrip("\n")


def _serviceLine(name, attrs):
    return formatService(name, attrs).decode("utf-8")


def formatAnswer(services: Services, names: bool = False, asJSON: bool = False) -> str:
    """
    Format an answer as C{regquery} prints it.

    @param services: C{{name: {attr: value}}}.
    @param names: print the names only, as they are (unquoted, as
        Inferno's regquery prints them).
    @return: the text to print.
    @rtype: L{str}
    """
    if asJSON:
        value = sorted(services) if names else services
        return json.dumps(value, ensure_ascii=False) + "\n"
    if names:
        return "".join(name + "\n" for name in services)
    return "".join(_serviceLine(name, attrs) for name, attrs in services.items())


class _ChangePrinter(MonitorObserver):
    """
    Prints each change a monitor reports, one line each.
    """

    def __init__(self, out, asJSON, names):
        self._out = out
        self._json = asJSON
        self._names = names

    def _print(self, event, name, attrs):
        if self._json:
            change = {"event": event, "name": name}
            if not self._names:
                change["attrs"] = attrs
            line = json.dumps(change, ensure_ascii=False) + "\n"
        elif self._names:
            line = "%s %s\n" % (event, name)
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


class _OutageReporter(ConnectionStateObserver):
    """
    Says on standard error when the registry is lost and when it is back.
    """

    def __init__(self, err, registry):
        self._err = err
        self._registry = registry

    def registryLost(self, reason):
        self._err.write(
            "regquery: %s: registry lost: %s; reconnecting\n"
            % (self._registry, _oneLine(reason.value))
        )
        self._err.flush()

    def registryConnected(self):
        self._err.write("regquery: %s: registry reachable again\n" % (self._registry,))
        self._err.flush()


class _QueryLines(Protocol):
    """
    Reads standard input without blocking the reactor, a query a line: a
    newline inside quotes does not end a line.

    @ivar lines: the lines read (L{bytes}, without their newline), ended by
        L{None}.
    @type lines: L{DeferredQueue}
    """

    maxLength = MAX_LINE

    def __init__(self):
        self.lines = DeferredQueue()
        self._assembler = LineAssembler()

    def dataReceived(self, data):
        for line in self._assembler.feed(data):
            self.lines.put(_TooLong(self.maxLength) if len(line) >= self.maxLength else line)
        if len(self._assembler.pending) >= self.maxLength:
            self._assembler = LineAssembler()
            self.lines.put(_TooLong(self.maxLength))

    def connectionLost(self, reason=None):
        if self._assembler.pending:
            self.lines.put(self._assembler.pending)
        self.lines.put(None)


class _TooLong(ValueError):
    def __init__(self, limit):
        ValueError.__init__(self, "line longer than %d bytes" % (limit,))


def _readLines(stdin):
    """
    Queue the lines of C{stdin} as they come.

    @return: a L{DeferredQueue} of L{bytes} lines (or L{_TooLong}), ended by
        L{None}.
    """
    reader = _QueryLines()
    if hasattr(stdin, "fileno") and stat.S_ISREG(os.fstat(stdin.fileno()).st_mode):
        source = stdin.buffer if hasattr(stdin, "buffer") else stdin
        while True:
            data = source.read(65536)
            if not data:
                break
            reader.dataReceived(data)
        reader.connectionLost()
    else:
        StandardIO(reader, stdin=stdin.fileno())
    return reader.lines


async def _queries(options, stdin, out, err, interrupted, bad):
    """
    The queries to run: the command line's, or one a line of standard
    input; a bad line is reported on C{err}, counted in C{bad} and skipped.
    """
    if options["query"] or options["all"] or options["watch"]:
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
        if isinstance(line, ValueError):
            problem = str(line)
        else:
            words = splitWords(line)
            if len(words) % 2 == 0:
                yield list(zip(words[::2], words[1::2]))
                continue
            problem = "odd number of words in query %s" % (_text(formatLine(words)),)
        bad.append(problem)
        err.write("regquery: %s\n" % (problem,))
        err.flush()


async def _find(reactor, options, stdin, out, err, interrupted):
    connection = connectionFromString(reactor, options["registry"], findTimeout=options["timeout"])
    found = False
    bad = []
    async for query in _queries(options, stdin, out, err, interrupted, bad):
        services = await connection.find(query)
        found = found or bool(services)
        out.write(formatAnswer(services, options["names"], options["json"]))
        out.flush()
    if bad:
        return ERROR
    return FOUND if found else NOT_FOUND


async def _watch(reactor, options, out, err, interrupted):
    manager = RegistryManager.fromDescription(
        reactor,
        options["registry"],
        findTimeout=options["timeout"],
        maxDelay=options["max-retry-delay"],
    )
    # A first query says at once why a registry cannot be reached.
    await manager.connection.find(options["query"])
    monitor = Monitor(
        options["query"],
        _ChangePrinter(out, options["json"], options["names"]),
        settle=options["settle"],
    )
    manager.attach(monitor)
    manager.startService()
    try:
        await manager.whenConnected().addTimeout(options["timeout"], reactor)
    except Exception:
        await manager.stopService()
        raise RegistryUnavailable("no registry after %g s" % (options["timeout"],)) from None
    manager.addObserver(_OutageReporter(err, options["registry"]))
    await interrupted
    await manager.stopService()
    return FOUND if monitor.services else NOT_FOUND


def parse(argv: Sequence[str], err: IO[str]) -> Options | None:
    """
    Parse C{regquery}'s command line.

    @param argv: the arguments, without the program name.
    @param err: where a usage error goes, in one line.
    @return: the parsed L{Options}, or L{None} after a usage error.
    @raise SystemExit: for C{--help} and C{--version}, once printed.
    """
    options = Options()
    try:
        options.parseOptions(argv)
    except (usage.UsageError, ValueError) as e:
        err.write("regquery: %s\n" % (_oneLine(e),))
        return None
    return options


def run(
    reactor: Any,
    argv: Sequence[str] | Options,
    stdin: IO[str],
    out: IO[str],
    err: IO[str],
    interrupted: Deferred[None],
) -> Deferred[int]:
    """
    Run C{regquery}.

    @param argv: the arguments, without the program name, or parsed
        L{Options}.
    @param stdin: where queries are read when C{argv} gives none.
    @param out: where answers go.
    @param err: where the one-line error goes.
    @param interrupted: a L{Deferred} that fires when the user interrupts;
        C{--watch} runs until then.
    @return: a L{Deferred} that fires with the exit status.
    """
    options = argv if isinstance(argv, Options) else parse(argv, err)
    if options is None:
        return succeed(ERROR)
    if options["watch"]:
        work = _watch(reactor, options, out, err, interrupted)
    else:
        work = _find(reactor, options, stdin, out, err, interrupted)

    def failed(failure):
        err.write("regquery: %s: %s\n" % (options["registry"], _oneLine(failure.value)))
        return ERROR

    return ensureDeferred(work).addErrback(failed)


def _oneLine(error):
    text = str(error) or error.__class__.__name__
    return " ".join(text.split()).rstrip(".")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    The C{regquery} console script: run, and exit with its status.  An
    interrupt (C{SIGINT}, C{SIGTERM}) ends C{--watch} cleanly.  The command
    line is parsed before the reactor starts, so C{--help}, C{--version}
    and usage errors exit at once.
    """
    argv = sys.argv[1:] if argv is None else argv
    options = parse(argv, sys.stderr)
    if options is None:
        sys.exit(ERROR)

    from twisted.internet import reactor

    interrupted: Deferred[None] = Deferred()
    status: list[int] = []
    done: Deferred[None] = Deferred()

    def finished(code):
        status.append(code)
        done.callback(None)
        if reactor.running:
            reactor.stop()

    def shuttingDown():
        if not status and not interrupted.called:
            interrupted.callback(None)
        return done

    def start():
        d = run(reactor, options, sys.stdin, sys.stdout, sys.stderr, interrupted)
        d.addErrback(
            lambda failure: (
                sys.stderr.write("regquery: %s\n" % (_oneLine(failure.value),)),
                ERROR,
            )[1]
        )
        d.addCallback(finished)

    reactor.addSystemEventTrigger("before", "shutdown", shuttingDown)
    reactor.callWhenRunning(start)
    reactor.run()
    sys.exit(status[0] if status else ERROR)
