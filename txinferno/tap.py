"""
C{twistd regmgr}: serve a registry on its three TCP ports, and keep services
registered and monitors running, in it or in another registry.

With no options it listens on 127.0.0.1, ports 6701 (new), 6702 (find) and
6703 (event), and serves the same registry over Styx on 6675 (C{--styx},
C{--no-styx}); C{--port BASE} and C{--interface ADDR} move the three TCP
bridge ports together, C{--new}, C{--find} and C{--event} take a full
endpoint string for one::

    twistd -n regmgr
    twistd -n regmgr --port 7701 --db /etc/services.db
    twistd -n regmgr --registry tcp:10.0.0.1 --service "web proto http" \\
        --monitor "proto *" --on-change ./changed.sh
"""

from __future__ import annotations

import gc
import ipaddress
import os
import signal
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import usage

from txinferno import __version__
from txinferno._options import number
from txinferno.agent import (
    DEFAULT_HOOK_TIMEOUT,
    Agent,
    checkServices,
    parseQuerySpec,
    parseServiceSpec,
    readServicesFile,
)
from txinferno.client.event import DEFAULT_MAX_DELAY
from txinferno.client.manager import RegistryManager
from txinferno.client.tcp import TCPRegistryConnection, connectionFromString
from txinferno.errors import RegistryError
from txinferno.server.protocols import (
    FIND_BUFFER,
    IDLE_TIMEOUT,
    KEEPALIVE,
    MAX_FINDS,
    WATCHER_TIMEOUT,
    RegistryServer,
)
from txinferno.server.registry import (
    MAX_ATTRIBUTES,
    MAX_PERSISTENT_PER_ORIGIN,
    MAX_SERVICE_BYTES,
    MAX_SERVICES,
    Registry,
)
from txinferno.web import DEFAULT_WEB
from txinferno.wire.description import (
    DEFAULT_BASE_PORT,
    DEFAULT_HOST,
    DEFAULT_STYX_PORT,
    REGISTRY_ENVIRONMENT,
    clientStringFor,
    defaultRegistry,
    parseDescription,
)
from txinferno.wire.rules import PORT_NAMES
from txinferno.wire.words import MAX_LINE

__all__ = ["Options", "RegistryPortsService", "freeze", "makeService", "withBacklog"]

BACKLOG = 4096
"""
The listen queue given to a TCP server endpoint string that names none
(Twisted's own default is 50).
"""


def _portEndpoint(port, interface):
    """
    @return: the server endpoint string of one port, with a listen queue of
        L{BACKLOG}.
    """
    return "tcp:%d:interface=%s:backlog=%d" % (port, interface.replace(":", "\\:"), BACKLOG)


class Options(usage.Options):
    """
    The options of C{twistd regmgr}.

    After parsing, C{self.registry} holds the L{Registry} with the static
    services of C{--db} loaded.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve an Inferno registry(4) on three TCP ports: new (register), "
        "find (query) and event (change notification), and over Styx (9P2000)."
    )

    optParameters = [
        [
            "port",
            "p",
            DEFAULT_BASE_PORT,
            "Serve the new, find and event ports on BASE, BASE+1 and BASE+2 "
            "(0: three ports the system chooses).",
            number("port", int, 0, inclusive=True),
        ],
        [
            "interface",
            None,
            DEFAULT_HOST,
            "The address the three ports listen on (0.0.0.0: every IPv4 address).",
        ],
        [
            "new",
            None,
            None,
            "Server endpoint string of the new (registration) port, instead of "
            "the one --port and --interface give (a TCP endpoint without backlog= "
            "gets backlog=%d)." % (BACKLOG,),
        ],
        ["find", None, None, "Server endpoint string of the find (query) port, likewise."],
        [
            "event",
            None,
            None,
            "Server endpoint string of the event (change notification) port, likewise.",
        ],
        [
            "styx",
            None,
            "tcp:%d:interface=%s" % (DEFAULT_STYX_PORT, DEFAULT_HOST),
            "Server endpoint of the Styx (9P2000) port, Inferno's registry port.",
        ],
        ["db", None, None, "attrdb(6) file of static services (entries with a service=NAME pair)."],
        [
            "max-line",
            None,
            MAX_LINE,
            "Longest line accepted, in bytes; a longer one closes its connection.",
            number("max-line", int),
        ],
        [
            "idle-timeout",
            None,
            IDLE_TIMEOUT,
            "Close a new or find connection that sends no line within this many seconds.",
            number("idle-timeout"),
        ],
        # What one client can make the server hold, and how long (issue 14).
        [
            "max-services",
            None,
            MAX_SERVICES,
            "Most services the registry holds; a registration beyond is refused.",
            number("max-services", int),
        ],
        [
            "max-attributes",
            None,
            MAX_ATTRIBUTES,
            "Most attributes of one service; a write beyond is refused.",
            number("max-attributes", int),
        ],
        [
            "max-service-bytes",
            None,
            MAX_SERVICE_BYTES,
            "Most bytes of one service's name, attributes and values; a write beyond is refused.",
            number("max-service-bytes", int),
        ],
        [
            "max-persistent",
            None,
            MAX_PERSISTENT_PER_ORIGIN,
            "Most persistent services one peer address may leave behind; beyond, a "
            "service goes with its connection.",
            number("max-persistent", int),
        ],
        [
            "max-finds",
            None,
            MAX_FINDS,
            "Most long find answers written at once; more wait their turn.",
            number("max-finds", int),
        ],
        [
            "find-buffer",
            None,
            FIND_BUFFER,
            "Most bytes of a find answer held for one connection.",
            number("find-buffer", int),
        ],
        [
            "watcher-timeout",
            None,
            WATCHER_TIMEOUT,
            "Drop an event watcher whose socket has not drained for this many seconds.",
            number("watcher-timeout"),
        ],
        [
            "keepalive-idle",
            None,
            KEEPALIVE[0],
            "Seconds of silence on an accepted connection before the first TCP keepalive probe.",
            number("keepalive-idle", int),
        ],
        [
            "keepalive-interval",
            None,
            KEEPALIVE[1],
            "Seconds between unanswered keepalive probes.",
            number("keepalive-interval", int),
        ],
        [
            "keepalive-count",
            None,
            KEEPALIVE[2],
            "Unanswered keepalive probes after which a connection is closed.",
            number("keepalive-count", int),
        ],
        [
            "registry",
            "r",
            None,
            "Keep the services and run the monitors in this registry (a description "
            "such as tcp:10.0.0.1 or styx:10.0.0.1) instead of serving one; the server "
            "options are then ignored. Default with --service, --services or --monitor: $%s "
            "when it is set." % (REGISTRY_ENVIRONMENT,),
        ],
        [
            "max-retry-delay",
            None,
            DEFAULT_MAX_DELAY,
            "The agent's longest wait, in seconds, between attempts to reach a lost registry.",
            number("max-retry-delay"),
        ],
        [
            "services",
            None,
            None,
            "attrdb(6) file of services to keep registered (one service=NAME entry "
            "each; an attribute check= is its health check); re-read on SIGHUP.",
        ],
        [
            "web",
            None,
            None,
            "Server endpoint of the web port (live view, JSON API, metrics, "
            "health); default %s when serving a registry, none otherwise." % (DEFAULT_WEB,),
        ],
        [
            "web-max-streams",
            None,
            256,
            "Most event streams (open live views) the web port serves at once.",
            number("web-max-streams", int),
        ],
        [
            "on-change",
            None,
            None,
            "Shell command run for each change a monitor sees (one at a time per "
            "monitor), with TXINFERNO_EVENT, TXINFERNO_NAME, TXINFERNO_SERVICE and "
            "TXINFERNO_QUERY in its environment and the service line on its stdin.",
        ],
        [
            "hook-timeout",
            None,
            DEFAULT_HOOK_TIMEOUT,
            "Kill an --on-change command still running after this many seconds.",
            number("hook-timeout"),
        ],
    ]

    optFlags = [
        [
            "allow-empty-services",
            None,
            "Accept a --services file that names no service (unregistering all of "
            "its services) even without a 'noservices' entry.",
        ],
        [
            "keep-failing",
            None,
            "Keep a service whose health check fails registered, with the attribute "
            "'health failing' (and 'health passing' once it passes again), instead of "
            "unregistering it.",
        ],
        ["no-styx", None, "Do not serve the registry over Styx."],
        ["no-web", None, "Serve no web port."],
        [
            "log-changes",
            None,
            "Log every change with all its attributes, at debug level, however many come "
            "(the info lines show the first 100 characters, and sum up bursts).",
        ],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["service"] = []
        self["monitor"] = []
        # The help text wraps each option's text itself: one paragraph each.
        self.docs = {name: doc and " ".join(doc.split()) for name, doc in self.docs.items()}

    def opt_version(self) -> NoReturn:
        """
        Display txinferno's version and exit.
        """
        print("twistd regmgr (txinferno) %s" % (__version__,))
        raise SystemExit(0)

    def opt_service(self, spec: str) -> None:
        """
        Keep a service registered: 'NAME [ATTR VALUE]...', words quoted as on
        the registry's wire (repeatable); an attribute 'check' is its health
        check (not sent), such as "web check 'http://127.0.0.1:8080/ interval=5'".
        """
        _checkQuotes("--service", spec)
        try:
            self["service"].append(parseServiceSpec(spec))
        except ValueError as e:
            raise usage.UsageError("--service %s: %s" % (spec, e)) from None

    def opt_monitor(self, spec: str) -> None:
        """
        Log every service matching 'ATTR VALUE...' that comes, changes or goes
        (repeatable).
        """
        _checkQuotes("--monitor", spec)
        try:
            self["monitor"].append(parseQuerySpec(spec))
        except ValueError as e:
            raise usage.UsageError("--monitor %s: %s" % (spec, e)) from None

    def postOptions(self) -> None:
        if self["registry"] is None and self.agentWanted and REGISTRY_ENVIRONMENT in os.environ:
            self["registry"] = defaultRegistry()
            self.registryFrom = "$" + REGISTRY_ENVIRONMENT
        else:
            self.registryFrom = "--registry"
        if self["registry"] is None:
            self._checkServer()
        else:
            try:
                parseDescription(self["registry"])
            except ValueError as e:
                raise usage.UsageError(
                    "%s %s: %s" % (self.registryFrom, self["registry"], e)
                ) from None
        from twisted.internet import reactor

        try:
            checkServices(dict(self["service"]), self["keep-failing"], reactor)
        except ValueError as e:
            raise usage.UsageError("--service: %s" % (e,)) from None
        if self["services"] is not None:
            try:
                checkServices(
                    readServicesFile(self["services"], self["allow-empty-services"]),
                    self["keep-failing"],
                    reactor,
                )
            except (OSError, ValueError) as e:
                raise usage.UsageError("--services %s: %s" % (self["services"], e)) from None
        if self["on-change"] is not None and not self["monitor"]:
            raise usage.UsageError("--on-change needs at least one --monitor")
        self._checkWeb()

    def _checkWeb(self):
        """
        Set C{self.webEndpoint}: where to serve the web port, or L{None}.
        """
        from twisted.internet import reactor

        web = self["web"]
        if web is None and self["registry"] is None:
            web = DEFAULT_WEB
        self.webEndpoint = None
        if web is not None and not self["no-web"]:
            try:
                self.webEndpoint = serverFromString(reactor, web)
            except (ValueError, TypeError, KeyError) as e:
                raise usage.UsageError("--web %s: bad endpoint: %s" % (web, e)) from None

    @property
    def agentWanted(self) -> bool:
        """
        Whether there are services to keep or monitors to run.
        """
        return bool(self["service"] or self["monitor"] or self["services"])

    def _checkServer(self):
        """
        Check the server options and load the static services.

        @raise usage.UsageError: for an endpoint string that does not parse
            or a static file that cannot be read.
        """
        from twisted.internet import reactor

        base = self["port"]
        if base > 65533:
            raise usage.UsageError(
                "--port %d: must leave room for ports BASE+1 and BASE+2 (at most 65533)" % (base,)
            )
        try:
            ipaddress.ip_address(self["interface"])
        except ValueError:
            raise usage.UsageError(
                "--interface %s: not an IPv4 or IPv6 address" % (self["interface"],)
            ) from None
        self.endpoints = {}
        for offset, name in enumerate(PORT_NAMES):
            if self[name] is None:
                self[name] = _portEndpoint(base + offset if base else 0, self["interface"])
                option = "--port %d --interface %s" % (base, self["interface"])
            else:
                option = "--%s %s" % (name, self[name])
            try:
                self.endpoints[name] = serverFromString(reactor, self[name])
            except (ValueError, TypeError, KeyError) as e:
                raise usage.UsageError("%s: bad endpoint: %s" % (option, e)) from None
        if not self["no-styx"]:
            try:
                self.endpoints["styx"] = serverFromString(reactor, self["styx"])
            except (ValueError, TypeError, KeyError) as e:
                raise usage.UsageError("--styx %s: bad endpoint: %s" % (self["styx"], e)) from None
        for name in PORT_NAMES:
            given = self[name]
            self[name] = withBacklog(given)
            try:
                self.endpoints[name] = serverFromString(reactor, self[name])
            except (ValueError, TypeError, KeyError) as e:
                raise usage.UsageError("--%s %s: bad endpoint: %s" % (name, given, e)) from None
        self.registry = Registry(
            reactor,
            maxServices=self["max-services"],
            maxAttributes=self["max-attributes"],
            maxServiceBytes=self["max-service-bytes"],
            maxPersistentPerOrigin=self["max-persistent"],
            logFullChanges=bool(self["log-changes"]),
        )
        if self["db"] is not None:
            try:
                self.registry.loadStatic(self["db"])
            except OSError as e:
                raise usage.UsageError(
                    "--db %s: cannot read: %s" % (self["db"], e.strerror or e)
                ) from None
            except UnicodeDecodeError as e:
                raise usage.UsageError("--db %s: not UTF-8: %s" % (self["db"], e)) from None
            except ValueError as e:
                raise usage.UsageError("--db %s: %s" % (self["db"], e)) from None
            except RegistryError as e:
                raise usage.UsageError("--db %s: %s" % (self["db"], e.text)) from None


def withBacklog(description: str) -> str:
    """
    Give a TCP server endpoint string (C{tcp:}, C{tcp6:} or C{ssl:}) that
    names no listen queue C{backlog=}L{BACKLOG}; leave others alone.

    @param description: a server endpoint string.
    @return: the string to listen with.
    """
    kind = description.split(":", 1)[0]
    if kind in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        return "%s:backlog=%d" % (description, BACKLOG)
    return description


def _checkQuotes(option, spec):
    """
    @raise usage.UsageError: when C{spec} leaves a quote open.
    """
    if spec.count("'") % 2:
        raise usage.UsageError("%s %s: unterminated quote" % (option, spec))


class RegistryPortsService(Service):
    """
    Listens on a L{RegistryServer}'s three ports while running: on all three,
    or, when one cannot listen, on none.

    Under twistd the ports open in L{privilegedStartService}; a port that
    cannot listen is logged in one line (C{cannot listen for the event port
    on 127.0.0.1:6703: address already in use}) and twistd exits with
    status 1.

    @ivar server: the server.
    @ivar endpoints: where its C{new}, C{find} and C{event} ports listen.
    @ivar also: the other ports to open with them, all or none: C{(role,
        endpoint, factory)} (the Styx port).
    """

    _log = Logger()

    def __init__(
        self,
        server: RegistryServer,
        endpoints: Sequence[IStreamServerEndpoint],
        also: Iterable[tuple[str, IStreamServerEndpoint, IProtocolFactory]] = (),
    ) -> None:
        self.server = server
        self.endpoints = endpoints
        self.also = list(also)
        self._listening: Deferred[Any] | None = None

    def privilegedStartService(self) -> None:
        failure = self._listen()
        if failure is not None:
            self._log.error("{error}", error=failure.getErrorMessage())
            raise SystemExit(1)
        Service.privilegedStartService(self)

    def startService(self) -> None:
        if self._listening is None:
            failure = self._listen()
            if failure is not None:
                failure.raiseException()
        Service.startService(self)

    def _listen(self):
        """
        @return: the L{Failure} (of a L{PortListenError}) when listening
            failed at once, else L{None}.
        """
        outcome = []
        self._listening = self.server.listen(*self.endpoints, also=self.also)
        self._listening.addErrback(outcome.append)
        if outcome:
            self._listening = None
            return outcome[0]
        return None

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        self._listening = None
        return self.server.stopListening()


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """
    Build the C{regmgr} service: the registry server unless C{--registry}
    (or, for an agent, C{$TXINFERNO_REGISTRY}) names another registry, and
    the agent when services or monitors are given.

    @param options: parsed L{Options}.
    @param reactor: the reactor; the global one when L{None}.
    @return: a L{MultiService} with a L{RegistryPortsService} named
        C{ports} serving one L{RegistryServer} (its C{server} attribute) and,
        unless C{--no-styx}, a L{txinferno.server.styx.StyxRegistryServer}
        of the same registry (its C{styxServer} attribute), an
        L{txinferno.agent.Agent} named C{agent} (its C{agent} attribute)
        when asked for, and the L{txinferno.web.site.WebService} named
        C{web} (its C{web} attribute) unless C{--no-web}.  The modules of
        the Styx server and of the web port (twisted.web's server and
        templates, C{prometheus_client}) are imported only when they are
        served.  Made before the reactor runs (as twistd does), it has the
        reactor L{freeze} the objects of the startup once it runs.
    @rtype: L{MultiService}
    """
    if reactor is None:
        from twisted.internet import reactor
    if not reactor.running:
        reactor.callWhenRunning(freeze)
    # Any: the MultiService carries the server, styxServer, agent and web attributes.
    service: Any = MultiService()
    service.server = service.styxServer = service.agent = None
    maxDelay = options["max-retry-delay"]
    if options["registry"] is not None:
        description = options["registry"]
        if options.agentWanted:
            _log.info(
                "the agent uses the registry {registry} (from {source})",
                registry=description,
                source=options.registryFrom,
            )

        def makeManager():
            return RegistryManager(
                connectionFromString(reactor, description, maxDelay=maxDelay), reactor
            )
    else:
        server = _serve(options, service, reactor)

        def makeManager():
            new, find, event = [clientStringFor(port.getHost()) for port in server.ports[:3]]
            return RegistryManager(
                TCPRegistryConnection(reactor, new, find, event, maxDelay=maxDelay), reactor
            )

    if options.agentWanted:
        agent = service.agent = Agent(
            makeManager,
            services=options["service"],
            monitors=options["monitor"],
            servicesFile=options["services"],
            onChange=options["on-change"],
            reactor=reactor,
            keepFailing=options["keep-failing"],
            allowEmpty=options["allow-empty-services"],
            hookTimeout=options["hook-timeout"],
        )
        agent.setName("agent")
        agent.setServiceParent(service)
    if options["services"] is not None:
        signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(service.agent.reload))
    else:
        signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(_nothingToReload))
    service.web = None
    if options.webEndpoint is not None:
        from txinferno.web.site import WebService

        web = service.web = WebService(
            options.webEndpoint,
            server=service.server,
            agent=service.agent,
            reactor=reactor,
            maxStreams=options["web-max-streams"],
        )
        web.setName("web")
        web.setServiceParent(service)
    return service


_log = Logger()


def freeze() -> None:
    """
    Collect the garbage of the startup, then move every object left (the
    modules, classes and functions imported, the options, the static
    services) to the collector's permanent generation (L{gc.freeze}), so
    that no collection walks them again: they live as long as the process,
    and without them each full collection of a busy registry walks only the
    objects made since (services, connections, answers).
    """
    gc.collect()
    gc.freeze()


def _nothingToReload():
    _log.warn(
        "SIGHUP ignored: there is nothing to reload (static services of --db are "
        "read once, at start; a --services file is re-read on SIGHUP)"
    )


def _serve(options, service, reactor):
    """
    Add the registry server's three TCP ports and its Styx port to
    C{service}.

    @return: the L{RegistryServer}.
    """
    keepAlive = (
        options["keepalive-idle"],
        options["keepalive-interval"],
        options["keepalive-count"],
    )
    server = service.server = RegistryServer(
        options.registry,
        reactor,
        maxLineLength=options["max-line"],
        idleTimeout=options["idle-timeout"],
        maxFinds=options["max-finds"],
        findBufferSize=options["find-buffer"],
        watcherTimeout=options["watcher-timeout"],
        keepAlive=keepAlive,
    )
    also = []
    if "styx" in options.endpoints:
        from txinferno.server.styx import StyxRegistryServer

        service.styxServer = StyxRegistryServer(options.registry, reactor, keepAlive=keepAlive)
        also.append(("styx", options.endpoints["styx"], service.styxServer.factory))
    ports = RegistryPortsService(server, [options.endpoints[name] for name in PORT_NAMES], also)
    # The reactor aborts the connections left during its shutdown, and their
    # services go: the summary of those the change log only counted is
    # logged after that, not lost with the reactor's pending calls.
    reactor.addSystemEventTrigger("after", "shutdown", options.registry.flushLog)
    ports.setName("ports")
    ports.setServiceParent(service)
    return server
