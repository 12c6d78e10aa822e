"""
C{twistd regmgr}: serve a registry on its three TCP ports, and keep services
registered and monitors running, in it or in another registry.

With no options it listens on 127.0.0.1, ports 6701 (new), 6702 (find) and
6703 (event)::

    twistd -n regmgr
    twistd -n regmgr --new tcp:7701 --find tcp:7702 --event tcp:7703 \\
        --db /etc/services.db
    twistd -n regmgr --registry tcp:10.0.0.1 --service "web proto http" \\
        --monitor "proto *" --on-change ./changed.sh
"""

import signal

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from txinferno.agent import (
    DEFAULT_HOOK_TIMEOUT,
    Agent,
    checkServices,
    parseQuerySpec,
    parseServiceSpec,
    readServicesFile,
)
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
from txinferno.wire.description import clientStringFor, parseRegistryDescription
from txinferno.wire.words import MAX_LINE

__all__ = ["Options", "makeService", "withBacklog"]

PORTS = ("new", "find", "event")

BACKLOG = 4096
"""
The listen queue given to a TCP server endpoint string that names none
(Twisted's own default is 50).
"""


def _positive(kind):
    def coerce(value):
        number = kind(value)
        if number <= 0:
            raise ValueError("must be positive")
        return number

    coerce.coerceDoc = "Must be positive."
    return coerce


class Options(usage.Options):
    """
    The options of C{twistd regmgr}.

    After parsing, C{self.registry} holds the L{Registry} with the static
    services of C{--db} loaded.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve an Inferno registry(4) on three TCP ports: new (register), "
        "find (query) and event (change notification)."
    )

    optParameters = [
        ["new", None, "tcp:6701:interface=127.0.0.1",
         "Server endpoint of the new (registration) port (a TCP endpoint without "
         "backlog= gets backlog=%d)." % (BACKLOG,)],
        ["find", None, "tcp:6702:interface=127.0.0.1",
         "Server endpoint of the find (query) port."],
        ["event", None, "tcp:6703:interface=127.0.0.1",
         "Server endpoint of the event (change notification) port."],
        ["db", None, None,
         "attrdb(6) file of static services (entries with a service=NAME pair)."],
        ["max-line", None, MAX_LINE,
         "Longest line accepted, in bytes; a longer one closes its connection.",
         _positive(int)],
        ["idle-timeout", None, IDLE_TIMEOUT,
         "Close a new or find connection that sends no line within this many seconds",
         _positive(float)],
        # What one client can make the server hold, and how long (issue 14).
        ["max-services", None, MAX_SERVICES,
         "Most services the registry holds; a registration beyond is refused.",
         _positive(int)],
        ["max-attributes", None, MAX_ATTRIBUTES,
         "Most attributes of one service; a write beyond is refused.", _positive(int)],
        ["max-service-bytes", None, MAX_SERVICE_BYTES,
         "Most bytes of one service's name, attributes and values; a write beyond "
         "is refused.", _positive(int)],
        ["max-persistent", None, MAX_PERSISTENT_PER_ORIGIN,
         "Most persistent services one peer address may leave behind; beyond, a "
         "service goes with its connection.", _positive(int)],
        ["max-finds", None, MAX_FINDS,
         "Most long find answers written at once; more wait their turn.", _positive(int)],
        ["find-buffer", None, FIND_BUFFER,
         "Most bytes of a find answer held for one connection.", _positive(int)],
        ["watcher-timeout", None, WATCHER_TIMEOUT,
         "Drop an event watcher whose socket has not drained for this many seconds.",
         _positive(float)],
        ["keepalive-idle", None, KEEPALIVE[0],
         "Seconds of silence on an accepted connection before the first TCP "
         "keepalive probe.", _positive(int)],
        ["keepalive-interval", None, KEEPALIVE[1],
         "Seconds between unanswered keepalive probes.", _positive(int)],
        ["keepalive-count", None, KEEPALIVE[2],
         "Unanswered keepalive probes after which a connection is closed.",
         _positive(int)],
        ["registry", "r", None,
         "Use this registry (a description such as tcp:10.0.0.1) instead of "
         "serving one; the server options are then ignored."],
        ["services", None, None,
         "attrdb(6) file of services to keep registered (one service=NAME entry "
         "each; an attribute check= is its health check); re-read on SIGHUP."],
        ["on-change", None, None,
         "Shell command run for each change a monitor sees (one at a time per "
         "monitor), with TXINFERNO_EVENT, TXINFERNO_NAME, TXINFERNO_SERVICE and "
         "TXINFERNO_QUERY in its environment and the service line on its stdin."],
        ["hook-timeout", None, DEFAULT_HOOK_TIMEOUT,
         "Kill an --on-change command still running after this many seconds.",
         _positive(float)],
    ]

    optFlags = [
        ["allow-empty-services", None,
         "Accept a --services file that names no service (unregistering all of "
         "its services) even without a 'noservices' entry."],
        ["keep-failing", None,
         "Keep a service whose health check fails registered, with the attribute "
         "'health failing' (and 'health passing' once it passes again), instead of "
         "unregistering it."],
        ["log-changes", None, "Log each change with all its attributes, at debug level "
         "(the info line shows the first 100 characters)."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["service"] = []
        self["monitor"] = []

    def opt_service(self, spec):
        """
        Keep a service registered: 'NAME [ATTR VALUE]...', words quoted as on
        the registry's wire (repeatable); an attribute 'check' is its health
        check (not sent), such as "web check 'http://127.0.0.1:8080/ interval=5'".
        """
        try:
            self["service"].append(parseServiceSpec(spec))
        except ValueError as e:
            raise usage.UsageError("--service %s: %s" % (spec, e))

    def opt_monitor(self, spec):
        """
        Log every service matching 'ATTR VALUE...' that comes, changes or goes
        (repeatable).
        """
        try:
            self["monitor"].append(parseQuerySpec(spec))
        except ValueError as e:
            raise usage.UsageError("--monitor %s: %s" % (spec, e))

    def postOptions(self):
        if self["registry"] is None:
            self._checkServer()
        else:
            try:
                parseRegistryDescription(self["registry"])
            except ValueError as e:
                raise usage.UsageError("--registry %s: %s" % (self["registry"], e))
        from twisted.internet import reactor

        try:
            checkServices(dict(self["service"]), self["keep-failing"], reactor)
        except ValueError as e:
            raise usage.UsageError("--service: %s" % (e,))
        if self["services"] is not None:
            try:
                checkServices(readServicesFile(self["services"], self["allow-empty-services"]),
                              self["keep-failing"], reactor)
            except (OSError, ValueError) as e:
                raise usage.UsageError("--services %s: %s" % (self["services"], e))
        if self["on-change"] is not None and not self["monitor"]:
            raise usage.UsageError("--on-change needs at least one --monitor")

    @property
    def agentWanted(self):
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

        self.endpoints = {}
        for name in PORTS:
            given = self[name]
            self[name] = withBacklog(given)
            try:
                self.endpoints[name] = serverFromString(reactor, self[name])
            except (ValueError, TypeError, KeyError) as e:
                raise usage.UsageError("--%s %s: bad endpoint: %s" % (name, given, e))
        self.registry = Registry(
            maxServices=self["max-services"],
            maxAttributes=self["max-attributes"],
            maxServiceBytes=self["max-service-bytes"],
            maxPersistentPerOrigin=self["max-persistent"],
            logFullChanges=bool(self["log-changes"]),
        )
        if self["db"] is not None:
            try:
                self.registry.loadStatic(self["db"])
            except (OSError, ValueError) as e:
                raise usage.UsageError("--db %s: cannot read: %s" % (self["db"], e))
            except RegistryError as e:
                raise usage.UsageError("--db %s: %s" % (self["db"], e.text))


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


class _RecordingEndpoint:
    """
    A server endpoint that remembers the address its port listens on.
    """

    def __init__(self, endpoint):
        self._endpoint = endpoint
        self.address = None

    def listen(self, factory):
        def listening(port):
            self.address = port.getHost()
            return port

        return self._endpoint.listen(factory).addCallback(listening)


def makeService(options, reactor=None):
    """
    Build the C{regmgr} service: the registry server unless C{--registry}
    names another registry, and the agent when services or monitors are
    given.

    @param options: parsed L{Options}.
    @param reactor: the reactor; the global one when L{None}.
    @return: a L{MultiService} with one L{StreamServerEndpointService} per
        port (named C{new}, C{find} and C{event}), all serving one
        L{RegistryServer} (its C{server} attribute), and an
        L{txinferno.agent.Agent} named C{agent} (its C{agent} attribute)
        when asked for.
    @rtype: L{MultiService}
    """
    if reactor is None:
        from twisted.internet import reactor
    service = MultiService()
    service.server = service.agent = None
    if options["registry"] is not None:
        description = options["registry"]

        def makeManager():
            return RegistryManager(connectionFromString(reactor, description), reactor)
    else:
        endpoints = _serve(options, service, reactor)

        def makeManager():
            new, find, event = [clientStringFor(e.address) for e in endpoints]
            return RegistryManager(TCPRegistryConnection(reactor, new, find, event), reactor)

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
            signal.signal(signal.SIGHUP,
                          lambda *_: reactor.callFromThread(agent.reload))
    return service


def _serve(options, service, reactor):
    """
    Add the registry server's three ports to C{service}.

    @return: the three endpoints, recording where they listen.
    """
    service.server = RegistryServer(
        options.registry,
        reactor,
        maxLineLength=options["max-line"],
        idleTimeout=options["idle-timeout"],
        maxFinds=options["max-finds"],
        findBufferSize=options["find-buffer"],
        watcherTimeout=options["watcher-timeout"],
        keepAlive=(options["keepalive-idle"], options["keepalive-interval"],
                   options["keepalive-count"]),
    )
    factories = {
        "new": service.server.newFactory,
        "find": service.server.findFactory,
        "event": service.server.eventFactory,
    }
    endpoints = []
    for name in PORTS:
        endpoint = _RecordingEndpoint(options.endpoints[name])
        port = StreamServerEndpointService(endpoint, factories[name])
        port._raiseSynchronously = True
        port.setName(name)
        port.setServiceParent(service)
        endpoints.append(endpoint)
    return endpoints
