"""
Twisted endpoints that use a registry, and their string parsers.

C{inferno:} is a client endpoint that dials a service found in the registry
by its attributes::

    clientFromString(reactor, r"inferno:registry=tcp\\:127.0.0.1:proto=ssh")

C{registered:} is a server endpoint that registers what it listens on, for
as long as it listens::

    serverFromString(reactor, r"registered:tcp\\:0:registry=tcp\\:127.0.0.1:name=web:proto=http")

In both, C{registry} is a registry description (see
L{txinferno.wire.description}; colons escaped with a backslash), by default
C{$TXINFERNO_REGISTRY} or C{tcp:127.0.0.1:6701}.  The keywords not listed
below are attributes: the query of C{inferno:}, the service's attributes for
C{registered:}.

For twisted.web's C{Agent} (and treq), L{InfernoAgentEndpointFactory}
dials the service a URI's host names.
"""

from __future__ import annotations

import random
import re
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IReactorCore,
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from txinferno.errors import TxInfernoError
from txinferno.interfaces import IRegistryConnection
from txinferno.wire.description import defaultRegistry, parseRegistryDescription, tcpAddress
from txinferno.wire.dialaddress import dialAddressEndpoint, formatDialAddress
from txinferno.wire.rules import PORT_NAMES, AttributesLike, checkName, normaliseAttrs, queryLine

if TYPE_CHECKING:
    from txinferno.client.manager import RegistryManager
    from txinferno.client.service import ServiceTask

__all__ = [
    "InfernoClientEndpoint",
    "InfernoAgentEndpointFactory",
    "InfernoLookupFailed",
    "InfernoServiceUnreachable",
    "RegisteredServerEndpoint",
    "RegisteredPort",
    "InfernoClientParser",
    "RegisteredServerParser",
]

ADDRESS_ATTRIBUTE = "addr"
CHOICES = ("first", "random")
ATTEMPT_DELAY = 0.3
"""
Seconds C{inferno:} waits for a connection attempt before starting the
next one, as L{twisted.internet.endpoints.HostnameEndpoint} does.
"""


def serviceAddress(name: str, attrs: Mapping[str, str]) -> str:
    """
    The dial address of a service found in a registry: its C{addr}
    attribute if it has one, else its name (by Inferno's custom, services
    are often named by their address, such as C{tcp!host!22}).
    """
    return attrs.get(ADDRESS_ATTRIBUTE, name)


class InfernoLookupFailed(ConnectError, TxInfernoError):
    """
    C{inferno:} could not look the services up: the registry failed the
    query (it could not be reached, timed out, or answered badly).

    @ivar registry: the registry's description.
    @ivar findAddress: the address of its find port.
    @ivar reason: the query's failure.
    @type reason: L{Failure}
    """

    def __init__(self, registry: str, findAddress: str, query: str, reason: Failure) -> None:
        self.registry = registry
        self.findAddress = findAddress
        self.reason = reason
        self.message = "inferno: looking up %s in registry %s (find port %s) failed: %s" % (
            query,
            registry,
            findAddress,
            reason.getErrorMessage(),
        )
        ConnectError.__init__(self, string=self.message)

    def __str__(self) -> str:
        return self.message


class InfernoServiceUnreachable(ConnectError, TxInfernoError):
    """
    C{inferno:} found no service to connect to: none matched, or none of
    those found accepted a connection in time.

    @ivar registry: the registry's description.
    @ivar tried: C{(name, address, why)} for each service tried, in the
        order tried (empty when none matched).
    """

    def __init__(
        self, registry: str, query: str, tried: list[tuple[str, str, str]], why: str | None = None
    ) -> None:
        self.registry = registry
        self.tried = tried
        if not tried:
            self.message = "inferno: no service matching %s in registry %s" % (query, registry)
        else:
            self.message = (
                "inferno: no service matching %s (registry %s) accepted a connection%s: %s"
                % (
                    query,
                    registry,
                    "" if why is None else " " + why,
                    "; ".join("%s at %s: %s" % t for t in tried),
                )
            )
        ConnectError.__init__(self, string=self.message)

    def __str__(self) -> str:
        return self.message


def _findAddress(connection):
    """
    @return: where C{connection} sends queries, as well as can be said: the
        find port's C{HOST:PORT} for a registry description, else the
        connection's description.
    """
    try:
        find = parseRegistryDescription(connection.description).find
    except ValueError:
        return connection.description
    host, port = tcpAddress(find)
    return "%s:%d" % (host, port)


class _Connecting:
    """
    One C{connect()} of L{InfernoClientEndpoint}: the lookup, then the
    race.  The services found are tried in order, each started
    C{attemptDelay} after the one before (or as soon as the one before
    fails); the first to connect wins and the others are cancelled, as
    L{twisted.internet.endpoints.HostnameEndpoint} does with a host's
    addresses.  A deadline bounds the whole.

    @ivar result: fires with the winning protocol or fails with
        L{InfernoLookupFailed} or L{InfernoServiceUnreachable}.
    @ivar tried: C{(name, address, why)} for each service that failed.
    """

    _log = Logger()

    LOOKING_UP = "looking up"
    RACING = "racing"
    DONE = "done"

    def __init__(self, endpoint, protocolFactory):
        """
        @param endpoint: the L{InfernoClientEndpoint} connecting.
        @param protocolFactory: the factory to connect.
        """
        self._endpoint = endpoint
        self._reactor = endpoint._reactor
        self._factory = protocolFactory
        self._registry = endpoint._connection.description
        self._queryText = endpoint._queryText()
        self._state = self.LOOKING_UP
        self._candidates = []
        self._attempts = {}
        self._next = None
        self.tried = []
        self.result = Deferred(lambda _: self._cancelled())
        self._deadline = self._reactor.callLater(endpoint._timeout, self._expired)
        self._lookup = endpoint._connection.find(endpoint._query)
        self._lookup.addCallbacks(self._found, self._lookupFailed)

    def _finish(self, outcome):
        """
        Fire L{result} with C{outcome} (a protocol or an exception), once.
        """
        self._state = self.DONE
        if self._deadline.active():
            self._deadline.cancel()
        if isinstance(outcome, Exception):
            self.result.errback(outcome)
        else:
            self.result.callback(outcome)

    def _lookupError(self, reason):
        return InfernoLookupFailed(
            self._registry, _findAddress(self._endpoint._connection), self._queryText, reason
        )

    def _cancelled(self):
        if self._deadline.active():
            self._deadline.cancel()
        state, self._state = self._state, self.DONE
        if state is self.LOOKING_UP:
            self._lookup.cancel()
        else:
            self._stopAttempts("cancelled")

    def _expired(self):
        why = "no connection within %s s" % (self._endpoint._timeout,)
        if self._state is self.LOOKING_UP:
            self._state = self.DONE
            self._lookup.cancel()
            self._finish(
                self._lookupError(
                    Failure(TimeoutError("no answer within %s s" % (self._endpoint._timeout,)))
                )
            )
        else:
            self._stopAttempts(why)
            self._finish(
                InfernoServiceUnreachable(
                    self._registry,
                    self._queryText,
                    self.tried,
                    "within %s s" % (self._endpoint._timeout,),
                )
            )

    def _lookupFailed(self, reason):
        if self._state is self.LOOKING_UP:
            self._finish(self._lookupError(reason))

    def _found(self, services):
        if self._state is not self.LOOKING_UP:
            return
        self._state = self.RACING
        name = self._endpoint._name
        for service, attrs in services.items():
            if name is not None and service != name:
                continue
            address = serviceAddress(service, attrs)
            try:
                endpoint = dialAddressEndpoint(self._reactor, address, self._endpoint._timeout)
            except ValueError as e:
                self._log.warn("service {name}: {error}", name=service, error=str(e))
                self.tried.append((service, address, str(e)))
                continue
            self._candidates.append((service, address, endpoint))
        if self._endpoint._choose == "random":
            random.shuffle(self._candidates)
        self._startNext()

    def _stopAttempts(self, why):
        """
        Cancel every attempt in progress (each noted as failed C{why}) and
        start no other.
        """
        self._candidates = []
        if self._next is not None:
            self._next.cancel()
            self._next = None
        attempts, self._attempts = self._attempts, {}
        for d, (name, address) in attempts.items():
            self.tried.append((name, address, why))
            d.cancel()

    def _startNext(self):
        self._next = None
        if self._state is not self.RACING:
            return
        if not self._candidates:
            if not self._attempts:
                self._finish(InfernoServiceUnreachable(self._registry, self._queryText, self.tried))
            return
        name, address, endpoint = self._candidates.pop(0)
        d = endpoint.connect(self._factory)
        self._attempts[d] = (name, address)
        d.addCallbacks(self._connected, self._failed, callbackArgs=(d,), errbackArgs=(d,))
        if d in self._attempts and self._candidates:
            self._next = self._reactor.callLater(self._endpoint._attemptDelay, self._startNext)

    def _connected(self, protocol, d):
        if self._attempts.pop(d, None) is None:
            # Connected after another attempt won: not wanted.
            protocol.transport.loseConnection()
            return
        self._stopAttempts("cancelled")
        self._finish(protocol)

    def _failed(self, reason, d):
        attempt = self._attempts.pop(d, None)
        if attempt is None:
            return
        name, address = attempt
        self._log.info(
            "service {name} at {address} did not connect: {error}",
            name=name,
            address=address,
            error=reason.getErrorMessage(),
        )
        self.tried.append((name, address, reason.getErrorMessage()))
        if self._next is not None:
            self._next.cancel()
        self._startNext()


@implementer(IStreamClientEndpoint)
class InfernoClientEndpoint:
    """
    Connects to a service found in a registry by its attributes.

    Each connection looks the services up anew, then races them as
    L{twisted.internet.endpoints.HostnameEndpoint} races a host's addresses:
    in the registry's order (or shuffled), each started C{attemptDelay}
    seconds after the one before or as soon as it fails; the first to
    connect wins and the others are cancelled.  C{timeout} bounds the whole.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        connection: IRegistryConnection,
        query: AttributesLike,
        choose: str = "first",
        timeout: float = 30,
        attemptDelay: float = ATTEMPT_DELAY,
        name: str | None = None,
    ) -> None:
        """
        @param reactor: the reactor to connect with, and to time with.
        @param connection: how to reach the registry.
        @type connection: L{txinferno.interfaces.IRegistryConnection}
        @param query: the attributes the service must have, a mapping or
            C{(attr, value)} pairs; C{*} matches any value.
        @param choose: C{first} or C{random}: the order in which the
            services found are tried.
        @param timeout: seconds a whole C{connect()} may take, the lookup
            and every attempt included.
        @param attemptDelay: seconds between the start of one attempt and
            the next, while the first has neither connected nor failed.
        @param name: when given, only the service of this name is dialled
            (the registry cannot query names: those the query finds are
            filtered by name).
        @raise ValueError: for an invalid query or choice, or a timeout or
            delay that is not positive.
        """
        if choose not in CHOICES:
            raise ValueError("choose must be one of %s, not %r" % (", ".join(CHOICES), choose))
        for option, value in [("timeout", timeout), ("attemptDelay", attemptDelay)]:
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError("%s must be a positive number, not %r" % (option, value))
        self._query = queryLine(query)[1]
        self._reactor = reactor
        self._connection = connection
        self._choose = choose
        self._timeout = timeout
        self._attemptDelay = attemptDelay
        self._name = name

    def __repr__(self) -> str:
        return "<InfernoClientEndpoint %s %r>" % (self._connection.description, self._query)

    def _queryText(self):
        text = " ".join("%s=%s" % pair for pair in self._query)
        if self._name is not None:
            return ("name=%s %s" % (self._name, text)).rstrip()
        return text or "(everything)"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Look the services up and race connections to them.

        @return: a L{Deferred} that fires with the connected protocol, or
            fails with L{InfernoLookupFailed} when the registry fails the
            lookup (naming the registry and its find port), or
            L{InfernoServiceUnreachable} when no service matches or none
            connects within C{timeout} (naming each one tried, its address
            and why).  Both are kinds of L{ConnectError}.  Cancelling it cancels
            the lookup or every attempt.
        """
        return _Connecting(self, protocolFactory).result


@implementer(IAgentEndpointFactory)
class InfernoAgentEndpointFactory:
    """
    An endpoint factory for L{twisted.web.client.Agent.usingEndpointFactory}
    (and so for treq): the host of each C{http://} URI names the service,
    found in the registry among those matching a query, and dialled as
    L{InfernoClientEndpoint} dials.  C{http://web/status} reaches the
    service named C{web}.
    """

    def __init__(
        self,
        reactor: Any,
        connection: IRegistryConnection,
        query: AttributesLike = (),
        **options: Any,
    ) -> None:
        """
        @param reactor: the reactor to connect with.
        @param connection: how to reach the registry.
        @type connection: L{txinferno.interfaces.IRegistryConnection}
        @param query: the attributes every service dialled must have (such
            as C{{"proto": "http"}}); the fewer services it matches, the
            smaller each lookup's answer.
        @param options: C{choose}, C{timeout}, C{attemptDelay} of
            L{InfernoClientEndpoint}.
        @raise ValueError: for an invalid query or option.
        """
        self._reactor = reactor
        self._connection = connection
        self._query = queryLine(query)[1]
        self._options = options
        # Check the options now rather than at the first request.
        InfernoClientEndpoint(reactor, connection, self._query, **options)

    def endpointForURI(self, uri: URI) -> InfernoClientEndpoint:
        """
        @param uri: the request's URI.
        @type uri: L{twisted.web.client.URI}
        @return: an L{InfernoClientEndpoint} for the service named by the
            URI's host.
        @raise SchemeNotSupported: for a scheme other than C{http} (give
            C{Agent.usingEndpointFactory} a factory of your own that wraps
            the endpoint in TLS for C{https}).
        """
        if uri.scheme != b"http":
            raise SchemeNotSupported("unsupported scheme %r: only http" % (uri.scheme,))
        return InfernoClientEndpoint(
            self._reactor,
            self._connection,
            self._query,
            name=uri.host.decode("ascii"),
            **self._options,
        )


@implementer(IListeningPort)
class RegisteredPort:
    """
    A listening port whose address is registered while it listens.

    @ivar service: the task keeping the registration.
    @type service: L{txinferno.client.service.ServiceTask}
    @ivar manager: the manager running it.
    @type manager: L{txinferno.client.manager.RegistryManager}
    """

    def __init__(
        self,
        port: IListeningPort,
        manager: RegistryManager,
        service: ServiceTask,
        reactor: IReactorCore | None = None,
    ) -> None:
        """
        @param port: the inner endpoint's listening port.
        @param manager: the manager C{service} is attached to.
        @param service: the task keeping the registration.
        @param reactor: when given, the manager is the port's own: it is
            stopped with the port, and before C{reactor} shuts down, so
            that a program that stops its reactor unregisters cleanly.
            When L{None}, the manager is the application's: the port only
            detaches its task from it.
        """
        self._port = port
        self.manager = manager
        self.service = service
        self._reactor = reactor
        self._shutdownTrigger: object | None = None
        self._managerStopped: Deferred[None] | None = None
        if reactor is not None:
            self._shutdownTrigger = reactor.addSystemEventTrigger(
                "before", "shutdown", self._reactorStopping
            )

    def _stopManager(self):
        """
        Stop the port's own manager, once (the reactor's shutdown and
        L{stopListening} may both ask).

        @return: a L{Deferred} that fires once it is stopped.
        """
        if self._shutdownTrigger is not None:
            self._reactor.removeSystemEventTrigger(self._shutdownTrigger)
            self._shutdownTrigger = None
        if self._managerStopped is None:
            self._managerStopped = self.manager.stopService()
        d = Deferred()

        def stopped(result):
            # A failure goes to the first caller only.
            d.callback(result)

        self._managerStopped.addBoth(stopped)
        return d

    def _reactorStopping(self):
        # The trigger is running: it is no longer to be removed.
        self._shutdownTrigger = None
        return self._stopManager()

    def whenRegistered(self) -> Deferred[ServiceTask]:
        """
        @return: a L{Deferred} that fires with the
            L{txinferno.client.service.ServiceTask} (the port's C{service})
            once the registry holds the service (at once if it does now),
            or fails with L{txinferno.errors.RegistrationRejected} if the
            next attempt is rejected (C{duplicate service name}); the task
            keeps trying with backoff either way (see
            L{txinferno.client.service.ServiceTask.whenRegistered}).
        """
        return self.service.whenRegistered()

    def startListening(self) -> None:
        """
        Listening starts when the endpoint's C{listen} does; nothing to do.
        """

    def stopListening(self) -> Deferred[None]:
        """
        Unregister the service, then stop listening.

        @return: a L{Deferred} that fires once both are done.
        """
        if self._reactor is None:
            d = self.manager.detach(self.service)
        else:
            d = self._stopManager()
        d.addCallback(lambda _: self._port.stopListening())
        return d

    def getHost(self) -> IAddress:
        """
        @return: the address of the listening port.
        """
        return self._port.getHost()


@implementer(IStreamServerEndpoint)
class RegisteredServerEndpoint:
    """
    Listens on another server endpoint and keeps the address it listens on
    registered, across registry restarts, until the port stops listening.

    The service's name is C{name} if given (its dial address then goes in
    its C{addr} attribute), else the dial address itself, C{tcp!HOST!PORT}.

    Each port has a manager of its own (and so a change stream of its own)
    unless the application gives its own manager, whose registry is then
    used and whose life the application keeps: the port attaches its
    service task to it and detaches it when it stops listening.
    """

    def __init__(
        self,
        reactor: Any,
        inner: IStreamServerEndpoint,
        connection: IRegistryConnection | None = None,
        attrs: AttributesLike = (),
        name: str | None = None,
        host: str | None = None,
        manager: RegistryManager | None = None,
    ) -> None:
        """
        @param inner: the endpoint to listen on.
        @type inner: L{IStreamServerEndpoint}
        @param connection: how to reach the registry, when C{manager} is
            not given.
        @type connection: L{txinferno.interfaces.IRegistryConnection}
        @param attrs: the service's attributes.
        @param name: the service's name, or L{None} for its dial address.
        @param host: the host in the dial address; by default the address
            listened on, or this machine's name when listening on all.
        @param manager: the application's manager, to attach the service
            task to (instead of a manager of the port's own).
        @type manager: L{txinferno.client.manager.RegistryManager}
        @raise ValueError: for invalid attributes or name.
        @raise TypeError: unless exactly one of C{connection} and
            C{manager} is given.
        """
        if (connection is None) == (manager is None):
            raise TypeError("give a connection or a manager, not both or neither")
        self._attrs = normaliseAttrs(attrs)
        if name is not None:
            checkName(name)
        self._reactor = reactor
        self._inner = inner
        self._connection = connection
        self._manager = manager
        self._name = name
        self._host = host

    def _dialAddress(self, address):
        host = self._host
        if host is None:
            host = address.host
            if host in ("0.0.0.0", "::", ""):
                host = socket.getfqdn()
        return formatDialAddress(host, address.port)

    async def _listen(self, protocolFactory):
        from txinferno.client.manager import RegistryManager
        from txinferno.client.service import ServiceTask

        port = await self._inner.listen(protocolFactory)
        address = self._dialAddress(port.getHost())
        attrs = dict(self._attrs)
        if self._name is None:
            name = address
        else:
            name = self._name
            attrs[ADDRESS_ATTRIBUTE] = address
        try:
            service = ServiceTask(name, attrs)
        except ValueError:
            await port.stopListening()
            raise
        if self._manager is not None:
            self._manager.attach(service)
            return RegisteredPort(port, self._manager, service)
        manager = RegistryManager(self._connection, clock=self._reactor)
        manager.attach(service)
        manager.startService()
        return RegisteredPort(port, manager, service, self._reactor)

    # Deferred is invariant, so the interface's Deferred[IListeningPort] does not
    # admit the Deferred[RegisteredPort] (an IListeningPort) given here.
    def listen(  # type: ignore[override]
        self, protocolFactory: IProtocolFactory
    ) -> Deferred[RegisteredPort]:
        """
        Listen, and register the service.

        @return: a L{Deferred} that fires with a L{RegisteredPort} once
            listening; the registration proceeds (and is kept) from then on,
            see L{RegisteredPort.whenRegistered}.
        """
        return Deferred.fromCoroutine(self._listen(protocolFactory))


def _split(kwargs, options):
    taken = {k: kwargs.pop(k) for k in options if k in kwargs}
    return taken, list(kwargs.items())


_HOST_OR_PORT = re.compile(r"[0-9]+|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|localhost")
"""
A positional part that looks like a host (a dotted name or address,
C{localhost}) or a port: after a bare C{registry=tcp}, the sign of a
registry description whose colons were not escaped.
"""


def _escapeColons(text):
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def _checkRegistry(prefix, registry, args, kwargs):
    """
    Check the C{registry=} value of an endpoint string.

    @param registry: the value, or L{None}.
    @param args: the string's positional parts.
    @param kwargs: its other keywords.
    @raise ValueError: when C{registry} lost its colons: a bare scheme
        followed by parts that look like a host, a port or the keywords of
        a registry description (C{registry=tcp:127.0.0.1:6701}, where
        C{registry=tcp\\:127.0.0.1\\:6701} was meant).
    """
    if registry is not None and ":" not in registry:
        stray = [a for a in args if _HOST_OR_PORT.fullmatch(a)]
        stray += ["%s=%s" % (k, kwargs[k]) for k in ("host",) + PORT_NAMES if k in kwargs]
        if stray:
            meant = ":".join([registry] + stray)
            raise ValueError(
                "%s: registry=%s is followed by %s: unescaped colons end the registry "
                "description, so escape them with a backslash: registry=%s"
                % (prefix, registry, ":".join(stray), _escapeColons(meant))
            )


def _connection(reactor, registry):
    from txinferno.client.tcp import connectionFromString

    return connectionFromString(reactor, registry or defaultRegistry())


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class InfernoClientParser:
    """
    The parser of C{inferno:} client endpoint strings:
    C{inferno:[registry=DESC:][name=NAME:][choose=first|random:][timeout=S:][attemptDelay=S:]ATTR=VALUE...}
    (positional C{ATTR:VALUE} pairs are accepted too).
    """

    prefix = "inferno"

    def parseStreamClient(self, reactor: Any, *args: Any, **kwargs: Any) -> InfernoClientEndpoint:
        options, pairs = _split(kwargs, ("registry", "choose", "timeout", "attemptDelay", "name"))
        _checkRegistry("inferno", options.get("registry"), args, kwargs)
        if len(args) % 2:
            raise ValueError("inferno: positional arguments must be ATTR:VALUE pairs")
        pairs = list(zip(args[::2], args[1::2])) + pairs
        return InfernoClientEndpoint(
            reactor,
            _connection(reactor, options.get("registry")),
            pairs,
            choose=options.get("choose", "first"),
            timeout=_seconds("timeout", options.get("timeout", 30)),
            attemptDelay=_seconds("attemptDelay", options.get("attemptDelay", ATTEMPT_DELAY)),
            name=options.get("name"),
        )


def _seconds(option, text):
    try:
        return float(text)
    except ValueError:
        raise ValueError("inferno: %s=%s is not a number of seconds" % (option, text)) from None


@implementer(IPlugin, IStreamServerEndpointStringParser)
class RegisteredServerParser:
    """
    The parser of C{registered:} server endpoint strings:
    C{registered:INNER:[registry=DESC:][name=NAME:][host=HOST:]ATTR=VALUE...},
    where INNER is a server endpoint string with its colons and equals signs
    escaped (C{tcp\\:0\\:interface\\=127.0.0.1}).
    """

    prefix = "registered"

    def parseStreamServer(
        self, reactor: Any, *args: Any, **kwargs: Any
    ) -> RegisteredServerEndpoint:
        unescaped = [k for k in kwargs if ":" in k]
        if unescaped:
            raise ValueError(
                "registered: the inner endpoint's '=' must be escaped with a backslash too: "
                "'%s=%s' reads as a keyword; write %s"
                % (
                    unescaped[0],
                    kwargs[unescaped[0]],
                    _escapeColons("%s=%s" % (unescaped[0], kwargs[unescaped[0]])),
                )
            )
        _checkRegistry("registered", kwargs.get("registry"), args[1:], kwargs)
        if len(args) != 1:
            raise ValueError(
                "registered: needs exactly one inner endpoint, its colons and equals signs "
                "escaped, such as registered:tcp\\:0\\:interface\\=127.0.0.1:..."
            )
        options, pairs = _split(kwargs, ("registry", "name", "host"))
        return RegisteredServerEndpoint(
            reactor,
            serverFromString(reactor, args[0]),
            _connection(reactor, options.get("registry")),
            pairs,
            name=options.get("name"),
            host=options.get("host"),
        )
