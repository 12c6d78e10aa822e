"""
C{twistd regmgr}: serve a registry on its three TCP ports.

With no options it listens on 127.0.0.1, ports 6701 (new), 6702 (find) and
6703 (event)::

    twistd -n regmgr
    twistd -n regmgr --new tcp:7701 --find tcp:7702 --event tcp:7703 \\
        --db /etc/services.db
"""

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from txinferno.errors import RegistryError
from txinferno.registry import Registry
from txinferno.server import RegistryServer
from txinferno.words import MAX_LINE

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
        "find (query) and event (change notification)."
    )

    optParameters = [
        ["new", None, "tcp:6701:interface=127.0.0.1:backlog=1024",
         "Server endpoint of the new (registration) port."],
        ["find", None, "tcp:6702:interface=127.0.0.1:backlog=1024",
         "Server endpoint of the find (query) port."],
        ["event", None, "tcp:6703:interface=127.0.0.1:backlog=1024",
         "Server endpoint of the event (change notification) port."],
        ["db", None, None,
         "attrdb(6) file of static services (entries with a service=NAME pair)."],
        ["max-line", None, MAX_LINE,
         "Longest line accepted, in bytes; a longer one closes its connection.",
         _positive(int)],
        ["idle-timeout", None, None,
         "Close a new or find connection that sends no line within this many seconds",
         _positive(float)],
    ]

    def postOptions(self):
        self._checkServer()

    def _checkServer(self):
        """
        Check the server options and load the static services.

        @raise usage.UsageError: for an endpoint string that does not parse
            or a static file that cannot be read.
        """
        from twisted.internet import reactor

        self.endpoints = {}
        for name in PORTS:
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


def makeService(options, reactor=None):
    """
    Build the registry service.

    @param options: parsed L{Options}.
    @param reactor: the reactor; the global one when L{None}.
    @return: a L{MultiService} with one L{StreamServerEndpointService} per
        port (named C{new}, C{find} and C{event}), all serving one
        L{RegistryServer} (its C{server} attribute).
    @rtype: L{MultiService}
    """
    service = MultiService()
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
    for name in PORTS:
        port = StreamServerEndpointService(options.endpoints[name], factories[name])
        port.setName(name)
        port.setServiceParent(service)
    return service
