"""
C{twistd regmgr}: serve a registry on its three TCP ports, and keep services
registered and monitors running, in it or in another registry.

With no options it listens on 127.0.0.1, ports 6701 (new), 6702 (find) and
6703 (event), and serves the same registry over Styx on 6675 (C{--styx},
C{--no-styx})::

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

from txinferno.agent import Agent, parseQuerySpec, parseServiceSpec, readServicesFile
from txinferno.wire.description import clientStringFor, parseDescription
from txinferno.errors import RegistryError
from txinferno.client.manager import RegistryManager
from txinferno.client.tcp import TCPRegistryConnection, connectionFromString
from txinferno.server.registry import Registry
from txinferno.server.protocols import IDLE_TIMEOUT, RegistryServer
from txinferno.server.styx import StyxRegistryServer
from txinferno.wire.words import MAX_LINE

__all__ = ["Options", "makeService"]

PORTS = ("new", "find", "event")


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
        "find (query) and event (change notification), and over Styx (9P2000)."
    )

    optParameters = [
        ["new", None, "tcp:6701:interface=127.0.0.1:backlog=1024",
         "Server endpoint of the new (registration) port."],
        ["find", None, "tcp:6702:interface=127.0.0.1:backlog=1024",
         "Server endpoint of the find (query) port."],
        ["event", None, "tcp:6703:interface=127.0.0.1:backlog=1024",
         "Server endpoint of the event (change notification) port."],
        ["styx", None, "tcp:6675:interface=127.0.0.1:backlog=1024",
         "Server endpoint of the Styx (9P2000) port, Inferno's registry port."],
        ["db", None, None,
         "attrdb(6) file of static services (entries with a service=NAME pair)."],
        ["max-line", None, MAX_LINE,
         "Longest line accepted, in bytes; a longer one closes its connection.",
         _positive(int)],
        ["idle-timeout", None, IDLE_TIMEOUT,
         "Close a new or find connection that sends no line within this many seconds",
         _positive(float)],
        ["registry", "r", None,
         "Use this registry (a description such as tcp:10.0.0.1 or styx:10.0.0.1) instead of "
         "serving one; the server options are then ignored."],
        ["services", None, None,
         "attrdb(6) file of services to keep registered (one service=NAME entry "
         "each); re-read on SIGHUP."],
        ["on-change", None, None,
         "Shell command run for each change a monitor sees (one at a time per "
         "monitor), with TXINFERNO_EVENT, TXINFERNO_NAME, TXINFERNO_SERVICE and "
         "TXINFERNO_QUERY in its environment."],
    ]

    optFlags = [
        ["no-styx", None, "Do not serve the registry over Styx."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["service"] = []
        self["monitor"] = []

    def opt_service(self, spec):
        """
        Keep a service registered: 'NAME [ATTR VALUE]...', words quoted as on
        the registry's wire (repeatable).
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
                parseDescription(self["registry"])
            except ValueError as e:
                raise usage.UsageError("--registry %s: %s" % (self["registry"], e))
        if self["services"] is not None:
            try:
                readServicesFile(self["services"])
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
        for name in PORTS + (() if self["no-styx"] else ("styx",)):
            try:
                self.endpoints[name] = serverFromString(reactor, self[name])
            except (ValueError, TypeError, KeyError) as e:
                raise usage.UsageError("--%s %s: bad endpoint: %s" % (name, self[name], e))
        self.registry = Registry()
        if self["db"] is not None:
            try:
                self.registry.loadStatic(self["db"])
            except (OSError, ValueError) as e:
                raise usage.UsageError("--db %s: cannot read: %s" % (self["db"], e))
            except RegistryError as e:
                raise usage.UsageError("--db %s: %s" % (self["db"], e.text))


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
        L{RegistryServer} (its C{server} attribute), one named C{styx}
        serving the same registry from a L{StyxRegistryServer} (its
        C{styxServer} attribute) unless C{--no-styx}, and an
        L{txinferno.agent.Agent} named C{agent} (its C{agent} attribute)
        when asked for.
    @rtype: L{MultiService}
    """
    if reactor is None:
        from twisted.internet import reactor
    service = MultiService()
    service.server = service.styxServer = service.agent = None
    if options["registry"] is not None:
        description = options["registry"]

        def makeManager():
            return RegistryManager(connectionFromString(reactor, description), reactor)
    else:
        endpoints = _serve(options, service, reactor)

        def makeManager():
            new, find, event = [clientStringFor(e.address) for e in endpoints[:3]]
            return RegistryManager(TCPRegistryConnection(reactor, new, find, event), reactor)

    if options.agentWanted:
        agent = service.agent = Agent(
            makeManager,
            services=options["service"],
            monitors=options["monitor"],
            servicesFile=options["services"],
            onChange=options["on-change"],
            reactor=reactor,
        )
        agent.setName("agent")
        agent.setServiceParent(service)
        if options["services"] is not None:
            signal.signal(signal.SIGHUP,
                          lambda *_: reactor.callFromThread(agent.reload))
    return service


def _serve(options, service, reactor):
    """
    Add the registry server's three TCP ports and its Styx port to
    C{service}.

    @return: the endpoints (C{new}, C{find}, C{event}, then C{styx} unless
        turned off), recording where they listen.
    """
    service.server = RegistryServer(
        options.registry,
        reactor,
        maxLineLength=options["max-line"],
        idleTimeout=options["idle-timeout"],
    )
    factories = {
        "new": service.server.newFactory,
        "find": service.server.findFactory,
        "event": service.server.eventFactory,
    }
    endpoints = []
    names = PORTS
    if "styx" in options.endpoints:
        service.styxServer = StyxRegistryServer(options.registry, reactor)
        factories["styx"] = service.styxServer.factory
        names += ("styx",)
    for name in names:
        endpoint = _RecordingEndpoint(options.endpoints[name])
        port = StreamServerEndpointService(endpoint, factories[name])
        port._raiseSynchronously = True
        port.setName(name)
        port.setServiceParent(service)
        endpoints.append(endpoint)
    return endpoints
