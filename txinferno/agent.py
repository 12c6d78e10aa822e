"""
The agent of C{twistd regmgr}: keeps services registered and logs (or acts
on) the changes of monitored services, through one
L{txinferno.client.manager.RegistryManager}.
"""

import os
from collections import Counter

from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from txinferno.wire import attrdb
from txinferno.client.monitor import Monitor
from txinferno.client.observers import MonitorObserver
from txinferno.client.service import ServiceTask
from txinferno.wire.rules import normaliseAttrs, registrationLine
from txinferno.wire.words import formatService, splitWords

__all__ = ["parseServiceSpec", "parseQuerySpec", "readServicesFile", "Agent",
           "ChangeLogger", "ChangeCommand", "queryText"]


def parseServiceSpec(spec):
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


def parseQuerySpec(spec):
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


def readServicesFile(path):
    """
    Read services from an attrdb(6) file: one C{service=NAME} entry each,
    the entry's other pairs being the attributes.

    @raise OSError: when the file cannot be read.
    @raise ValueError: when it cannot be parsed, or holds a name or
        attributes the registry would reject, or a name twice.
    @return: the attributes of each service by name.
    @rtype: L{dict}
    """
    services = {}
    for name, pairs in attrdb.loadServices(path):
        registrationLine(name, pairs)
        if name in services:
            raise ValueError("service %r given twice" % (name,))
        services[name] = dict(pairs)
    return services


def queryText(query):
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
    lastResync = None

    def __init__(self, query, clock=None):
        """
        @param query: the monitor's query.
        @param clock: the clock of L{lastResync}; the reactor when L{None}.
        """
        if clock is None:
            from twisted.internet import reactor as clock
        self.query = query
        self._clock = clock

    def resynced(self):
        self.lastResync = self._clock.seconds()

    def added(self, name, attrs):
        self._log.info("added {name} {attrs} (monitor {query})",
                       name=name, attrs=attrs, query=self.query)

    def updated(self, name, attrs, previous):
        self._log.info("updated {name} {attrs}, was {previous} (monitor {query})",
                       name=name, attrs=attrs, previous=previous, query=self.query)

    def removed(self, name, attrs):
        self._log.info("removed {name} {attrs} (monitor {query})",
                       name=name, attrs=attrs, query=self.query)


class _CommandProcess(ProcessProtocol):
    def __init__(self, done):
        self._done = done

    def processEnded(self, reason):
        self._done(reason)


class ChangeCommand(MonitorObserver):
    """
    Runs a shell command for every change a monitor reports, never more than
    one at a time: changes that come while it runs wait, the latest one of
    each service replacing an earlier one still waiting.

    The command's environment has C{TXINFERNO_EVENT} (C{added}, C{updated}
    or C{removed}), C{TXINFERNO_NAME}, C{TXINFERNO_SERVICE} (the service as
    the registry prints it: C{NAME ATTR VALUE...}) and C{TXINFERNO_QUERY}.

    @ivar runs: commands that ended.
    @ivar failures: those that did not exit with status 0.
    """

    _log = Logger()
    runs = 0
    failures = 0

    def __init__(self, reactor, command, query):
        self._reactor = reactor
        self._command = command
        self._query = queryText(query)
        self._pending = {}
        self._running = None
        self._idle = []

    def whenIdle(self):
        """
        @return: a L{Deferred} that fires with L{None} once no command runs
            and none waits (at once if so now).
        """
        if self._running is None:
            return succeed(None)
        d = Deferred()
        self._idle.append(d)
        return d

    def added(self, name, attrs):
        self._queue("added", name, attrs)

    def updated(self, name, attrs, previous):
        self._queue("updated", name, attrs)

    def removed(self, name, attrs):
        self._queue("removed", name, attrs)

    def _queue(self, event, name, attrs):
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
        env = dict(os.environ)
        env.update(
            TXINFERNO_EVENT=event,
            TXINFERNO_NAME=name,
            TXINFERNO_SERVICE=formatService(name, attrs).decode("utf-8").rstrip("\n"),
            TXINFERNO_QUERY=self._query,
        )
        self._log.debug("running {command} for {event} {name}",
                        command=self._command, event=event, name=name)
        self._running = self._reactor.spawnProcess(
            _CommandProcess(lambda reason: self._ended(reason, event, name)),
            "/bin/sh", ["/bin/sh", "-c", self._command], env=env)

    def _ended(self, reason, event, name):
        self._running = None
        self.runs += 1
        if not reason.check(error.ProcessDone):
            self.failures += 1
            self._log.warn("{command} for {event} {name} failed: {reason}",
                           command=self._command, event=event, name=name,
                           reason=reason.getErrorMessage())
        self._next()


class Agent(Service):
    """
    Keeps services registered and monitors running, through one registry
    manager, and re-reads a services file on demand.

    @ivar manager: the manager (made by L{startService}).
    @ivar services: the L{txinferno.client.service.ServiceTask} tasks by name.
    @ivar monitors: the L{txinferno.client.monitor.Monitor} tasks.
    @ivar changeLoggers: the L{ChangeLogger} of each monitor.
    @ivar changeCommands: the L{ChangeCommand} of each monitor, when there
        is a command to run.
    @ivar retired: the L{ServiceTask.losses} and L{ServiceTask.failures} of
        the tasks detached so far, under C{losses} and C{failures}.
    """

    _log = Logger()

    def __init__(self, makeManager, services=(), monitors=(), servicesFile=None,
                 onChange=None, reactor=None):
        """
        @param makeManager: called with no argument when the agent starts,
            returns the (not yet started) manager to attach tasks to.
        @param services: C{(name, attrs)} pairs to keep registered.
        @param monitors: queries whose changes are logged.
        @param servicesFile: an attrdb(6) file of more services, re-read by
            L{reload}.
        @param onChange: a shell command to run for each change of each
            monitor (see L{ChangeCommand}), or L{None}.
        @param reactor: spawns the C{onChange} command.
        """
        self._makeManager = makeManager
        self.manager = None
        self.servicesFile = servicesFile
        self.services = {}
        self._fixed = dict(services)
        self.monitors = []
        self.changeLoggers = []
        self.changeCommands = []
        self.retired = {"losses": 0, "failures": Counter()}
        for query in monitors:
            observer = ChangeLogger(query, reactor)
            self.changeLoggers.append(observer)
            if onChange is not None:
                command = ChangeCommand(reactor, onChange, query)
                self.changeCommands.append(command)
                observer = _Both(observer, command)
            self.monitors.append(Monitor(query, observer))

    def _wanted(self):
        wanted = dict(self._fixed)
        if self.servicesFile is not None:
            wanted.update(readServicesFile(self.servicesFile))
        return wanted

    def startService(self):
        """
        Attach every task and start the manager.

        @raise OSError: when the services file cannot be read.
        @raise ValueError: when it cannot be parsed.
        """
        wanted = self._wanted()
        self.manager = self._makeManager()
        self._apply(wanted)
        for monitor in self.monitors:
            self.manager.attach(monitor)
        Service.startService(self)
        self.manager.startService()

    def stopService(self):
        """
        Stop the manager: every service is unregistered.

        @return: a L{Deferred} that fires once all is closed.
        """
        Service.stopService(self)
        return self.manager.stopService()

    def reload(self):
        """
        Re-read the services file and register, update or unregister only
        what changed.  A file that cannot be read or parsed is logged and
        changes nothing.

        @return: a L{Deferred} that fires once the services removed are
            unregistered.
        """
        try:
            wanted = self._wanted()
        except (OSError, ValueError) as e:
            self._log.error("services file {path} not reloaded: {error}",
                            path=self.servicesFile, error=str(e))
            return gatherResults([])
        self._log.info("services file {path} reloaded", path=self.servicesFile)
        return self._apply(wanted)

    def _apply(self, wanted):
        """
        Make the registered services C{wanted}: attach the new ones, update
        the changed ones, detach the others.  A service that lost an
        attribute is registered again (the registry cannot delete one).
        """
        detaching = []
        later = set()
        for name, task in list(self.services.items()):
            attrs = wanted.get(name)
            if attrs is None:
                del self.services[name]
                self._retire(task)
                detaching.append(self.manager.detach(task))
            elif not set(task.attrs) <= set(attrs):
                del self.services[name]
                self._retire(task)
                later.add(name)
                d = self.manager.detach(task)
                d.addCallback(lambda _, name=name, attrs=attrs: self._attach(name, attrs))
                detaching.append(d)
            else:
                task.update(attrs)
        for name, attrs in wanted.items():
            if name not in self.services and name not in later:
                self._attach(name, attrs)
        return gatherResults(detaching)

    def _retire(self, task):
        self.retired["losses"] += task.losses
        self.retired["failures"].update(task.failures)

    def _attach(self, name, attrs):
        self.services[name] = self.manager.attach(ServiceTask(name, attrs))


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
