"""
The TCP connection plugin: a registry reached through its three ports
(new, find, event), each any client endpoint (TCP, TLS, UNIX...).
"""

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString
from zope.interface import implementer

from txinferno.client._reconnect import connectionStarter
from txinferno.client.event import DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY, EventClientFactory
from txinferno.client.find import DEFAULT_FIND_TIMEOUT, DEFAULT_MAX_ANSWER_SIZE, runQuery
from txinferno.client.new import Registrar
from txinferno.interfaces import IChangeObserver, IRegistration, IRegistryConnection
from txinferno.wire.description import StyxEndpoint, parseDescription
from txinferno.wire.rules import AttributesLike, Services, checkPositiveOptions, queryLine

__all__ = [
    "DEFAULT_PROBE_INTERVAL",
    "PROBE_QUERY",
    "TCPRegistryConnection",
    "connectionFromString",
]

DEFAULT_PROBE_INTERVAL = 15.0
"""
Seconds between liveness probes of a ready change stream: with the
default probe timeout (L{DEFAULT_FIND_TIMEOUT}, 10 s), a registry that
keeps its sockets open but stops answering (a stopped process, whose
kernel still answers TCP keepalive) is declared lost within 25 s.
"""

PROBE_QUERY = [("txinferno-liveness-probe", "1")]
"""
The query of the liveness probe: cheap, as it matches nothing in a normal
registry.
"""


@implementer(IRegistryConnection)
class TCPRegistryConnection:
    """
    A registry reached through three client endpoints.

    @ivar description: the registry description string, or a description
        of the three endpoints.
    @ivar findTimeout: seconds the registry has to answer: a query
        (connection included), a connection to the new port, a
        registration's listing, C{READY} on the event port.
    """

    def __init__(
        self,
        reactor,
        new,
        find,
        event,
        description=None,
        findTimeout=DEFAULT_FIND_TIMEOUT,
        maxAnswerSize=DEFAULT_MAX_ANSWER_SIZE,
        initialDelay=DEFAULT_INITIAL_DELAY,
        maxDelay=DEFAULT_MAX_DELAY,
        probeInterval=DEFAULT_PROBE_INTERVAL,
        probeTimeout=None,
        clock=None,
    ):
        """
        @param reactor: connects the endpoints given as strings.
        @param new: the new port (6701).
        @param find: the find port (6702).
        @param event: the event port (6703).
        @type new: L{IStreamClientEndpoint}, or a client endpoint string
            for L{clientFromString} (C{tcp:host=H:port=P}, C{tls:...},
            C{unix:path=...}); likewise C{find} and C{event}.  A plain
            C{tcp:host=H:port=P} string for C{new} makes registrations
            connect with C{reactor.connectTCP} itself (see
            L{txinferno.client._reconnect.connectionStarter}).
        @param description: what L{description} says; by default the three
            endpoints.
        @param findTimeout: see L{findTimeout}.
        @param maxAnswerSize: the largest answer, in bytes, a query accepts
            (L{txinferno.errors.AnswerTooLarge} beyond).
        @param initialDelay: seconds before the change stream's first
            reconnection attempt.
        @param maxDelay: the longest wait between reconnection attempts
            (before jitter), by default
            L{txinferno.client.event.DEFAULT_MAX_DELAY}.
        @param probeInterval: seconds between liveness probes of a ready
            change stream (L{DEFAULT_PROBE_INTERVAL} by default), or
            L{None} for none: a registry that stops answering is declared
            lost within C{probeInterval + probeTimeout} seconds.
        @param probeTimeout: seconds a probe may take; by default
            C{findTimeout}.
        @param clock: times everything; by default C{reactor}.
        @type clock: L{IReactorTime}
        @raise ValueError: for a timeout, delay or interval that is not
            positive, or a bad endpoint string.
        @raise TypeError: for a timeout, delay or interval that is not a
            number.
        """
        checkPositiveOptions(
            findTimeout=findTimeout,
            maxAnswerSize=maxAnswerSize,
            initialDelay=initialDelay,
            maxDelay=maxDelay,
            probeInterval=probeInterval,
            probeTimeout=probeTimeout,
        )
        self._find, self._event = [
            clientFromString(reactor, e) if isinstance(e, str) else e for e in (find, event)
        ]
        if description is None:
            description = "new=%s find=%s event=%s" % tuple(
                e if isinstance(e, str) else repr(e) for e in (new, find, event)
            )
        self.description = description
        self.findTimeout = findTimeout
        self._maxAnswerSize = maxAnswerSize
        self._initialDelay = initialDelay
        self._maxDelay = maxDelay
        self._probeInterval = probeInterval
        self._probeTimeout = probeTimeout or findTimeout
        self._clock = clock or reactor
        self._registrar = Registrar(
            connectionStarter(reactor, new), self._findServices, self._clock, findTimeout
        )

    def __repr__(self):
        return "<TCPRegistryConnection %s>" % (self.description,)

    def _query(self, line, timeout):
        """
        Run a query; its answer is shown to the registrar, which watches
        the registrations it has confirmed.
        """
        started = self._clock.seconds()
        answer = runQuery(self._find, line, self._clock, timeout, self._maxAnswerSize)
        return answer.addCallback(self._registrar.sawAnswer, started)

    def _findServices(self, pairs):
        return self._query(queryLine(pairs)[0], self.findTimeout)

    def _probe(self):
        return self._query(queryLine(PROBE_QUERY)[0], self._probeTimeout)

    def register(self, name: str, attrs: AttributesLike) -> Deferred[IRegistration]:
        """
        Register a service and hold it registered.

        @param name: the service name.
        @type name: L{str}
        @param attrs: its attributes: a mapping, a sequence of C{(attr,
            value)} pairs or a flat sequence of words.
        @raise ValueError: before anything is sent, for a name or
            attributes the registry would reject.
        @return: a L{Deferred} that fires with an L{IRegistration} once a
            listing shows the service with its attributes, or fails with
            L{txinferno.errors.RegistrationRejected} (reason C{duplicate
            service name}, or why the registry closed the connection),
            L{txinferno.errors.RegistryTimeout},
            L{txinferno.errors.MalformedAnswer} or a connection error.
            Cancelling it closes the connection.
        """
        return self._registrar.register(name, attrs)

    def find(self, attrs: AttributesLike) -> Deferred[Services]:
        """
        Run one query.

        @param attrs: the pairs every service found must match (a value of
            C{*} matches any value of an attribute that exists); none lists
            every service.
        @raise ValueError: before anything is sent, for an invalid query.
        @return: a L{Deferred} that fires with each matching service's
            attributes by name, or fails with
            L{txinferno.errors.RegistryTimeout} after L{findTimeout},
            L{txinferno.errors.MalformedAnswer},
            L{txinferno.errors.AnswerTooLarge} or a connection error.
            Cancelling it aborts the query.
        """
        return self._findServices(attrs)

    def watch(self, observer: IChangeObserver) -> EventClientFactory:
        """
        Open the change stream, and reopen it with backoff whenever it is
        lost, until it is stopped.

        @type observer: L{txinferno.interfaces.IChangeObserver}
        @return: the stream, already connecting.
        @rtype: L{EventClientFactory}
        """
        stream = EventClientFactory(
            self._event,
            _ChangesAlsoToRegistrar(observer, self._registrar),
            self._clock,
            initialDelay=self._initialDelay,
            maxDelay=self._maxDelay,
            readyTimeout=self.findTimeout,
            probe=self._probe if self._probeInterval else None,
            probeInterval=self._probeInterval,
        )
        stream.start()
        return stream


@implementer(IChangeObserver)
class _ChangesAlsoToRegistrar:
    """
    Passes a change stream's reports on to its observer, and tells the
    registrar of each change too: registrations waiting to be listed again
    may be in the registry now.
    """

    def __init__(self, observer, registrar):
        self._observer = observer
        self._registrar = registrar

    def streamReady(self):
        self._observer.streamReady()

    def registryChanged(self, version):
        self._registrar.registryChanged()
        self._observer.registryChanged(version)

    def streamLost(self, reason):
        self._observer.streamLost(reason)


def connectionFromString(reactor: Any, description: str, **options: Any) -> IRegistryConnection:
    """
    Make a connection plugin from a registry description string: the TCP
    plugin for C{tcp:}, the Styx one for C{styx:}.

    @param reactor: the reactor to connect with.
    @param description: such as C{tcp:192.0.2.1}, C{tcp:192.0.2.1:7000},
        C{tcp:host=192.0.2.1:new=7000:find=7001:event=7002},
        C{styx:192.0.2.1} or C{styx:endpoint=tls\\:h\\:6675:user=alice};
        see L{txinferno.wire.description}.
    @param options: keyword arguments of L{TCPRegistryConnection} or
        L{txinferno.client.styxconnection.StyxRegistryConnection}.
    @raise ValueError: for a bad description or option.
    @rtype: L{TCPRegistryConnection} or
        L{txinferno.client.styxconnection.StyxRegistryConnection}
    """
    parsed = parseDescription(description)
    if isinstance(parsed, StyxEndpoint):
        from txinferno.client.styxconnection import StyxRegistryConnection

        return StyxRegistryConnection(
            reactor, parsed.endpoint, parsed.user, description=description, **options
        )
    new, find, event = parsed
    return TCPRegistryConnection(reactor, new, find, event, description=description, **options)
