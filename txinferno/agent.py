"""
The agent of C{twistd regmgr}: keeps services registered and logs (or acts
on) the changes of monitored services, through one
L{txinferno.client.manager.RegistryManager}.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IProcessTransport, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from txinferno._processgroup import inOwnGroup, killGroup
from txinferno.client.health import checkFromString
from txinferno.client.monitor import Monitor
from txinferno.client.observers import MonitorObserver
from txinferno.client.service import HEALTH_ATTRIBUTE, ServiceTask
from txinferno.interfaces import IHealthCheck
from txinferno.wire import attrdb
from txinferno.wire.rules import normaliseAttrs, registrationLine
from txinferno.wire.words import formatService, splitWords

if TYPE_CHECKING:
    from txinferno.client.manager import RegistryManager

__all__ = [
    "parseServiceSpec",
    "parseQuerySpec",
    "readServicesFile",
    "checkServices",
    "Agent",
    "ChangeLogger",
    "ChangeCommand",
    "CHECK_ATTRIBUTE",
    "NO_SERVICES",
    "queryText",
]

CHECK_ATTRIBUTE = "check"
"""
The attribute of a service given to the agent that holds its health check
(a description for L{txinferno.client.health.checkFromString}); it is not
sent to the registry.
"""


def parseServiceSpec(spec: str) -> tuple[str, dict[str, str]]:
    """
    Read a service given on the command line as C{NAME ATTR VALUE...}, words
    quoted as on the registry's wire (C{web descr 'my site'}).

    @raise ValueError: for an odd number of attribute words, or a name or
        attributes the registry would reject.
    @return: the name and the attributes.
    @rtype: L{tuple} of (L{str}, L{dict})
    """
    words = splitWords(spec)
    if not words:
        raise ValueError("empty service: give NAME [ATTR VALUE]...")
    name, rest = words[0], words[1:]
    if len(rest) % 2:
        raise ValueError("service %r: odd number of attribute words" % (name,))
    registrationLine(name, rest)
    return name, dict(zip(rest[::2], rest[1::2]))


def parseQuerySpec(spec: str) -> list[tuple[str, str]]:
    """
    Read a query given on the command line as C{ATTR VALUE...}.

    @raise ValueError: for an odd number of words.
    @return: the pairs.
    @rtype: L{list} of L{tuple}
    """
    words = splitWords(spec)
    if len(words) % 2:
        raise ValueError("query %r: odd number of words" % (spec,))
    return normaliseAttrs(words)


NO_SERVICES = "noservices"
"""
The attribute of the entry that says a services file holds no service on
purpose: a file with no C{service=NAME} entry is refused unless it has an
entry C{noservices} (or the agent was told empty files are allowed).
"""


class IncompleteServicesFile(ValueError):
    """
    A services file that is not whole: its last line has no newline (it is
    being written, or was cut short), or it names no service and does not
    say so with a C{noservices} entry.
    """


def readServicesFile(path: str, allowEmpty: bool = False) -> dict[str, dict[str, str]]:
    """
    Read services from an attrdb(6) file: one C{service=NAME} entry each,
    the entry's other pairs being the attributes.

    A file must end with a newline, so that one cut short (or read while
    it is written) is refused rather than applied in part; and a file with
    no service must say so, with an entry C{noservices} (see
    L{NO_SERVICES}), unless C{allowEmpty}.

    @param allowEmpty: whether a file with no service and no C{noservices}
        entry is accepted.
    @raise OSError: when the file cannot be read.
    @raise IncompleteServicesFile: when it is not whole (see above).
    @raise ValueError: when it cannot be parsed, or holds a name or
        attributes the registry would reject, or a name twice.
    @return: the attributes of each service by name.
    @rtype: L{dict}
    """
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        raise IncompleteServicesFile(
            "the last line has no newline: the file is incomplete (still being "
            "written or cut short)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError("not UTF-8: %s" % (e,)) from None
    entries = attrdb.parse(text)
    services: dict[str, dict[str, str]] = {}
    for name, pairs in attrdb.servicesOf(entries):
        registrationLine(name, pairs)
        if name in services:
            raise ValueError("service %r given twice" % (name,))
        services[name] = dict(pairs)
    if (
        not services
        and not allowEmpty
        and not any(attr == NO_SERVICES for entry in entries for attr, _ in entry)
    ):
        raise IncompleteServicesFile(
            "no service in the file: an empty file is refused unless it has a "
            "'%s' entry (or empty files are allowed)" % (NO_SERVICES,)
        )
    return services


def checkServices(
    services: Mapping[str, Mapping[str, str]], keepFailing: bool, reactor: Any
) -> dict[str, IHealthCheck]:
    """
    Check the health checks of services given to the agent: the
    L{CHECK_ATTRIBUTE} attribute of each, when it has one.

    @param services: the attributes of each service by name.
    @param keepFailing: whether services are kept registered while their
        check fails.
    @param reactor: the reactor the checks would run with (none runs).
    @raise ValueError: for a check that does not parse, or a check of a
        C{persist} service that is to be unregistered while failing (the
        registry would keep it).
    @return: the check of each service that has one, by name.
    @rtype: L{dict}
    """
    checks: dict[str, IHealthCheck] = {}
    for name, attrs in services.items():
        description = attrs.get(CHECK_ATTRIBUTE)
        if description is None:
            continue
        try:
            checks[name] = checkFromString(reactor, description)
        except ValueError as e:
            raise ValueError("service %r: %s" % (name, e)) from None
        if "persist" in attrs and not keepFailing:
            raise ValueError(
                "service %r persists, so unregistering it while its check fails "
                "would not remove it: keep failing services registered" % (name,)
            )
    return checks


def queryText(query: Iterable[tuple[str, str]]) -> str:
    """
    @param query: a monitor's query, C{(attr, value)} pairs.
    @return: the query as C{--monitor} takes it (unquoted).
    @rtype: L{str}
    """
    return " ".join("%s %s" % pair for pair in query)


class ChangeLogger(MonitorObserver):
    """
    Logs every change a monitor reports, and remembers when it last
    resynced.

    @ivar query: the monitor's query.
    @ivar lastResync: when the monitor's view last matched the registry
        again (seconds since the epoch), or L{None}.
    """

    _log = Logger()
    lastResync: float | None = None

    def __init__(self, query: Sequence[tuple[str, str]], clock: IReactorTime | None = None) -> None:
        """
        @param query: the monitor's query.
        @param clock: the clock of L{lastResync}; the reactor when L{None}.
        """
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.query = query
        self._clock = clock

    def resynced(self) -> None:
        self.lastResync = self._clock.seconds()

    def added(self, name: str, attrs: dict[str, str]) -> None:
        self._log.info(
            "added {name} {attrs} (monitor {query})", name=name, attrs=attrs, query=self.query
        )

    def updated(self, name: str, attrs: dict[str, str], previous: dict[str, str]) -> None:
        self._log.info(
            "updated {name} {attrs}, was {previous} (monitor {query})",
            name=name,
            attrs=attrs,
            previous=previous,
            query=self.query,
        )

    def removed(self, name: str, attrs: dict[str, str]) -> None:
        self._log.info(
            "removed {name} {attrs} (monitor {query})", name=name, attrs=attrs, query=self.query
        )


DEFAULT_HOOK_TIMEOUT = 60.0
"""
Seconds an C{--on-change} command may run before it is killed.
"""

MAX_HOOK_STDERR = 4096
"""
The most bytes of a command's standard error kept for the log; the rest is
read and dropped.
"""


class _CommandProcess(ProcessProtocol):
    """
    One run of a L{ChangeCommand}: feeds the service line to the command's
    standard input and closes it, keeps the first L{MAX_HOOK_STDERR} bytes
    of its standard error, drops its output.
    """

    def __init__(self, stdin, done):
        self._stdin = stdin
        self._done = done
        self.stderr = b""
        self.stderrDropped = 0

    def connectionMade(self):
        self.transport.write(self._stdin)
        self.transport.closeStdin()

    def errReceived(self, data):
        room = MAX_HOOK_STDERR - len(self.stderr)
        self.stderr += data[:room]
        self.stderrDropped += max(0, len(data) - room)

    def processExited(self, reason):
        # The command's own children may hold the pipes open: close our ends,
        # so that processEnded follows its exit.
        self.transport.loseConnection()

    def processEnded(self, reason):
        self._done(reason)


class ChangeCommand(MonitorObserver):
    """
    Runs a shell command for every change a monitor reports, never more than
    one at a time: changes that come while it runs wait, the latest one of
    each service replacing an earlier one still waiting.

    The command's environment has C{TXINFERNO_EVENT} (C{added}, C{updated}
    or C{removed}), C{TXINFERNO_NAME}, C{TXINFERNO_SERVICE} (the service as
    the registry prints it: C{NAME ATTR VALUE...}) and C{TXINFERNO_QUERY};
    its standard input is that service line, then end of file.  A command
    still running after C{timeout} seconds is killed (C{SIGKILL}) and that
    is logged; one that fails is logged with its exit status and the start
    of its standard error.

    @ivar runs: commands that ended.
    @ivar failures: those that did not exit with status 0.
    """

    _log = Logger()
    runs = 0
    failures = 0

    def __init__(
        self,
        reactor: Any,
        command: str,
        query: Iterable[tuple[str, str]],
        timeout: float = DEFAULT_HOOK_TIMEOUT,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param reactor: spawns the command (an L{IReactorProcess}).
        @param command: the shell command.
        @param query: the monitor's query, C{(attr, value)} pairs.
        @param timeout: seconds one run may take before it is killed.
        @param clock: times the runs; by default C{reactor}.
        @raise ValueError: for a timeout that is not positive.
        """
        if not timeout > 0:
            raise ValueError("timeout must be positive, not %r" % (timeout,))
        self._reactor = reactor
        self._clock = clock or reactor
        self._command = command
        self._timeout = timeout
        self._query = queryText(query)
        self._pending: dict[str, tuple[str, dict[str, str]]] = {}
        self._running: IProcessTransport | None = None
        self._deadline: IDelayedCall | None = None
        self._idle: list[Deferred[None]] = []
        self._stopped = False

    def whenIdle(self) -> Deferred[None]:
        """
        @return: a L{Deferred} that fires with L{None} once no command runs
            and none waits (at once if so now).
        """
        if self._running is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def stop(self) -> Deferred[None]:
        """
        Drop the changes still waiting and kill the command that runs, if
        any; no command runs after this.

        @return: a L{Deferred} that fires with L{None} once no command runs.
        """
        self._stopped = True
        self._pending.clear()
        if self._running is not None:
            self._log.info(
                "stopping: killing {command} (pid {pid})",
                command=self._command,
                pid=self._running.pid,
            )
            self._kill()
        return self.whenIdle()

    def added(self, name: str, attrs: dict[str, str]) -> None:
        self._queue("added", name, attrs)

    def updated(self, name: str, attrs: dict[str, str], previous: dict[str, str]) -> None:
        self._queue("updated", name, attrs)

    def removed(self, name: str, attrs: dict[str, str]) -> None:
        self._queue("removed", name, attrs)

    def _queue(self, event, name, attrs):
        if self._stopped:
            return
        self._pending.pop(name, None)
        self._pending[name] = (event, attrs)
        if self._running is None:
            self._next()

    def _next(self):
        if not self._pending:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
            return
        name = next(iter(self._pending))
        event, attrs = self._pending.pop(name)
        line = formatService(name, attrs)
        env = dict(os.environ)
        env.update(
            TXINFERNO_EVENT=event,
            TXINFERNO_NAME=name,
            TXINFERNO_SERVICE=line.decode("utf-8").rstrip("\n"),
            TXINFERNO_QUERY=self._query,
        )
        self._log.debug(
            "running {command} for {event} {name}", command=self._command, event=event, name=name
        )
        process = _CommandProcess(line, lambda reason: self._ended(process, reason, event, name))
        argv = inOwnGroup(["/bin/sh", "-c", self._command])
        self._running = self._reactor.spawnProcess(process, argv[0], argv, env=env)
        self._deadline = self._clock.callLater(self._timeout, self._expired, event, name)

    def _kill(self):
        killGroup(self._running)

    def _expired(self, event, name):
        self._deadline = None
        self._log.warn(
            "{command} for {event} {name} still ran after {timeout} s: killed",
            command=self._command,
            event=event,
            name=name,
            timeout=self._timeout,
        )
        self._kill()

    def _ended(self, process, reason, event, name):
        self._running = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.runs += 1
        if not reason.check(error.ProcessDone):
            self.failures += 1
            status = reason.value.exitCode
            if status is None:
                status = "signal %s" % (reason.value.signal,)
            stderr = process.stderr.decode("utf-8", "replace").rstrip("\n")
            if process.stderrDropped:
                stderr += " [%d more bytes]" % (process.stderrDropped,)
            self._log.warn(
                "{command} for {event} {name} failed (exit status {status}): {stderr}",
                command=self._command,
                event=event,
                name=name,
                status=status,
                stderr=stderr or "(no error output)",
            )
        self._next()


class Agent(Service):
    """
    Keeps services registered and monitors running, through one registry
    manager, and re-reads a services file on demand.

    Reloads never overlap: one asked for while another is being applied
    waits for it, and all those asked for meanwhile are served by one more
    reading of the file, so the services after any number of reloads are
    those of the file as last read.

    @ivar manager: the manager (made by L{startService}).
    @ivar services: the L{txinferno.client.service.ServiceTask} tasks by name.
    @ivar monitors: the L{txinferno.client.monitor.Monitor} tasks.

    A service whose attributes include L{CHECK_ATTRIBUTE} has that health
    check (the attribute is not sent to the registry): it is registered
    while the check passes, or, with C{keepFailing}, kept registered with
    its L{txinferno.client.service.HEALTH_ATTRIBUTE} attribute saying how
    the check stands.

    @ivar changeLoggers: the L{ChangeLogger} of each monitor.
    @ivar changeCommands: the L{ChangeCommand} of each monitor, when there
        is a command to run.
    @ivar retired: the L{ServiceTask.losses} and L{ServiceTask.failures} of
        the tasks detached so far, under C{losses} and C{failures}.
    """

    _log = Logger()

    def __init__(
        self,
        makeManager: Callable[[], RegistryManager],
        services: Iterable[tuple[str, Mapping[str, str]]] = (),
        monitors: Iterable[Sequence[tuple[str, str]]] = (),
        servicesFile: str | None = None,
        onChange: str | None = None,
        reactor: Any = None,
        keepFailing: bool = False,
        allowEmpty: bool = False,
        hookTimeout: float = DEFAULT_HOOK_TIMEOUT,
    ) -> None:
        """
        @param makeManager: called with no argument when the agent starts,
            returns the (not yet started) manager to attach tasks to.
        @param services: C{(name, attrs)} pairs to keep registered.
        @param monitors: queries whose changes are logged.
        @param servicesFile: an attrdb(6) file of more services, re-read by
            L{reload}.
        @param onChange: a shell command to run for each change of each
            monitor (see L{ChangeCommand}), or L{None}.
        @param reactor: spawns the C{onChange} command and runs the health
            checks; the global reactor when L{None}.
        @param keepFailing: keep services registered while their health
            check fails.
        @param allowEmpty: whether a services file with no service (and no
            C{noservices} entry) is accepted, unregistering all of its
            services (see L{readServicesFile}).
        @param hookTimeout: seconds an C{onChange} command may run.
        """
        self._makeManager = makeManager
        self.manager: RegistryManager | None = None
        self.servicesFile = servicesFile
        self.services: dict[str, ServiceTask] = {}
        self._fixed = dict(services)
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._keepFailing = keepFailing
        self._allowEmpty = allowEmpty
        self._reloading: Deferred[Any] | None = None
        self._reloadWaiters: list[Deferred[None]] = []
        self.monitors: list[Monitor] = []
        self.changeLoggers: list[ChangeLogger] = []
        self.changeCommands: list[ChangeCommand] = []
        self.retired: dict[str, Any] = {"losses": 0, "failures": Counter()}
        for query in monitors:
            logger = ChangeLogger(query, self._reactor)
            self.changeLoggers.append(logger)
            observer: MonitorObserver = logger
            if onChange is not None:
                command = ChangeCommand(self._reactor, onChange, query, timeout=hookTimeout)
                self.changeCommands.append(command)
                observer = _Both(logger, command)
            self.monitors.append(Monitor(query, observer))

    def _readFile(self):
        """
        @return: the services of the services file (none without one).
        @raise OSError: when the services file cannot be read.
        @raise ValueError: when it cannot be parsed or is not whole.
        """
        if self.servicesFile is None:
            return {}
        return readServicesFile(self.servicesFile, self._allowEmpty)

    def _wanted(self, fromFile):
        """
        @return: the attributes, and the check (or L{None}), of each service
            to keep registered (the fixed ones and C{fromFile}), by name.
        @raise ValueError: when a service holds a bad check.
        """
        wanted = dict(self._fixed)
        wanted.update(fromFile)
        checks = checkServices(wanted, self._keepFailing, self._reactor)
        return {
            name: ({a: v for a, v in attrs.items() if a != CHECK_ATTRIBUTE}, checks.get(name))
            for name, attrs in wanted.items()
        }

    def startService(self) -> None:
        """
        Attach every task and start the manager.

        @raise OSError: when the services file cannot be read.
        @raise ValueError: when it cannot be parsed.
        """
        wanted = self._wanted(self._readFile())
        self.manager = self._makeManager()
        self._apply(wanted)
        for monitor in self.monitors:
            self.manager.attach(monitor)
        Service.startService(self)
        self.manager.startService()

    def stopService(self) -> Deferred[list[Any]]:
        """
        Kill the C{onChange} commands still running and stop the manager:
        every service is unregistered.

        @return: a L{Deferred} that fires once all is closed.
        """
        Service.stopService(self)
        stopped = [command.stop() for command in self.changeCommands]
        assert self.manager is not None, "stopped before it started"
        stopped.append(self.manager.stopService())
        return gatherResults(stopped)

    def reload(self) -> Deferred[None]:
        """
        Re-read the services file and register, update or unregister only
        what changed.  A file that cannot be read or parsed, or is not whole
        (see L{readServicesFile}), is logged and changes nothing.  A reload
        asked for while one is applied waits for it, then reads the file
        again (once for all that waited).

        @return: a L{Deferred} that fires once the file is applied and the
            services removed are unregistered.
        """
        d: Deferred[None] = Deferred()
        self._reloadWaiters.append(d)
        if self._reloading is None:
            self._reloadNext()
        return d

    def _reloadNext(self):
        waiters, self._reloadWaiters = self._reloadWaiters, []
        self._reloading = self._reloadOnce()

        def done(_):
            self._reloading = None
            for d in waiters:
                d.callback(None)
            if self._reloadWaiters:
                self._reloadNext()

        self._reloading.addBoth(done)

    def _reloadOnce(self):
        if not self.running:
            return succeed(None)
        try:
            fromFile = self._readFile()
            wanted = self._wanted(fromFile)
        except (OSError, ValueError) as e:
            self._log.error(
                "services file {path} not reloaded (the services stay as they were): {error}",
                path=self.servicesFile,
                error=str(e),
            )
            return succeed(None)
        if fromFile:
            self._log.info(
                "services file {path} reloaded: {count} services",
                path=self.servicesFile,
                count=len(fromFile),
            )
        else:
            self._log.warn(
                "services file {path} reloaded: it names no service, so "
                "every service of the file is unregistered",
                path=self.servicesFile,
            )
        return self._apply(wanted)

    def _apply(self, wanted):
        """
        Make the registered services C{wanted}: attach the new ones, update
        the changed ones, detach the others.  A service that lost an
        attribute is registered again (the registry cannot delete one), and
        so is one whose check changed.

        @return: a L{Deferred} that fires once the tasks detached are gone
            and those registered again attached.
        """
        detaching = []
        later = set()
        for name, task in list(self.services.items()):
            attrs, check = wanted.get(name, (None, None))
            if attrs is None:
                del self.services[name]
                self._retire(task)
                detaching.append(self.manager.detach(task))
            elif not _own(task) <= set(attrs) or _changed(task.check, check):
                del self.services[name]
                self._retire(task)
                later.add(name)
                d = self.manager.detach(task)
                d.addCallback(lambda _, name=name, want=(attrs, check): self._reattach(name, *want))
                detaching.append(d)
            else:
                task.update(attrs)
        for name, (attrs, check) in wanted.items():
            if name not in self.services and name not in later:
                self._attach(name, attrs, check)
        return gatherResults(detaching)

    def _retire(self, task):
        self.retired["losses"] += task.losses
        self.retired["failures"].update(task.failures)

    def _attach(self, name, attrs, check):
        self.services[name] = self.manager.attach(
            ServiceTask(name, attrs, check=check, keepWhileFailing=self._keepFailing)
        )

    def _reattach(self, name, attrs, check):
        if self.running:
            self._attach(name, attrs, check)


def _own(task):
    """
    @return: the names of the attributes of C{task} the agent was given
        (not the one its check sets).
    """
    return set(task.attrs) - ({HEALTH_ATTRIBUTE} if task.keepWhileFailing else set())


def _changed(old, new):
    """
    @return: whether health check C{new} differs from C{old} (either may be
        L{None}): another kind, target or timing.
    """
    if old is None or new is None:
        return old is not new
    timing = ("interval", "timeout", "rise", "fall")
    return (type(old), old.description) != (type(new), new.description) or any(
        getattr(old, a) != getattr(new, a) for a in timing
    )


class _Both(MonitorObserver):
    """
    Tells two monitor observers.
    """

    def __init__(self, first, second):
        self._observers = (first, second)

    def added(self, name, attrs):
        for o in self._observers:
            o.added(name, attrs)

    def updated(self, name, attrs, previous):
        for o in self._observers:
            o.updated(name, attrs, previous)

    def removed(self, name, attrs):
        for o in self._observers:
            o.removed(name, attrs)

    def resynced(self):
        for o in self._observers:
            o.resynced()
