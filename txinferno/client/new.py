"""
The new port (6701): a registration is an open connection.

The registry never writes on this port; it tells of a rejected
registration only by closing the connection, and under concurrency that
close can come late (spec section 4): silence proves nothing.  So a
registration counts as made only once a find, started after its line was
written, shows the service with exactly the attributes it sent while its
connection is still open; a find that shows the name with other
attributes means C{duplicate service name} at once.  The finds ask for the
registrations' own attributes (registrations of a burst that share
attributes share one find), so that their answers stay small however
large the registry grows; only a service without attributes, and the
explanation of a close, need the full listing.  When a connection closes
first, a listing started after the close tells why: the name held by
another service means C{duplicate service name}.

A confirmed registration stays watched: every later answer of the find
port that lists its name with attributes it never sent shows that someone
else holds the name, and the registration is lost.  One case no listing
can decide: another holder with the same name and exactly the same
attributes (one services file given to two agents) looks like ours; the
registrar waits L{CONFIRM_AFTER} after writing, so that the registry's
close of a duplicate usually comes first.
"""

from enum import Enum

from twisted.internet import defer
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno._filelimit import explainOpenFileLimit
from txinferno._keepalive import enableKeepAlive
from txinferno.client._burstlog import BurstLog
from txinferno.client._listing import (
    BURST_LISTING_DELAY,
    CHECK_RETRY_DELAY,
    CONFIRM_AFTER,
    EXPLAIN_INTERVAL,
    MAX_QUERIES,
    ListingScheduler,
)
from txinferno.client._states import StateMachine
from txinferno.client._throttle import ConnectionThrottle
from txinferno.errors import (
    MalformedAnswer,
    RegistrationLost,
    RegistrationRejected,
    RegistryTimeout,
)
from txinferno.interfaces import IRegistration
from txinferno.wire.persist import persists
from txinferno.wire.rules import registrationLine, updateLine
from txinferno.wire.words import formatLine

__all__ = [
    "DEFAULT_REGISTRATION_TIMEOUT",
    "DEFAULT_MAX_CONNECTING",
    "CHECK_RETRY_DELAY",
    "BURST_LISTING_DELAY",
    "CONFIRM_AFTER",
    "MAX_QUERIES",
    "EXPLAIN_INTERVAL",
    "LOSS_WINDOW",
    "STALE_RETRIES",
    "NewClientProtocol",
    "NewClientFactory",
    "Registration",
    "Registrar",
]

DEFAULT_REGISTRATION_TIMEOUT = 10.0
"""
Seconds a connection attempt to the new port may take, and seconds a
registration may stay unlisted while its connection is open.
"""

DEFAULT_MAX_CONNECTING = 32
"""
Connection attempts to the new port in progress at once: a burst of
registrations reaches the registry as a steady stream rather than as one
flood of connections its listen queue may not hold.
"""


LOSS_WINDOW = 0.5
"""
Seconds over which the losses of registrations are collected into one log
line per reason: a registry that dies closes every registration, and the
closes arrive over many turns of the reactor.
"""

STALE_RETRIES = 10
"""
How many times a registration that the registry closed because the name
is held by exactly our name and attributes, after an attempt of ours with
them was given up unanswered (its line may have waited in a stalled
registry's queue, to be read after the stall), is made again at once
rather than reported as a duplicate: the stale attempt's entry goes as
soon as the registry reads its close.
"""

_WAITING, _CONFIRMED, _ENDED = "waiting", "confirmed", "ended"
"""
What a confirmation round decides for a registration.
"""


class NewClientProtocol(Protocol):
    """
    Write a registration line and hold the connection.

    The registry never writes on this port: any byte received means the
    peer is not a registry, and the connection is aborted with
    L{MalformedAnswer} as the reason.
    """

    def __init__(self, registration):
        """
        @type registration: L{Registration}
        """
        self._registration = registration
        self._error = None

    def connectionMade(self):
        enableKeepAlive(self.transport)
        self._registration._connectionMade(self)

    def dataReceived(self, data):
        self.abortWith(
            MalformedAnswer(
                "the registry wrote %d bytes on the registration connection "
                "of %r, which a registry never does: %r"
                % (len(data), self._registration.name, data[:80])
            )
        )

    def abortWith(self, error):
        """
        Abort the connection; C{error} is the reason its loss is reported
        with.
        """
        if self._error is None:
            self._error = error
            self.transport.abortConnection()

    def connectionLost(self, reason):
        if self._error is not None:
            reason = Failure(self._error)
        self._registration._connectionLost(reason)


class NewClientFactory(ClientFactory):
    """
    The factory of one registration's connection: builds its protocol and
    tells it when the connection could not be made.
    """

    noisy = False

    def __init__(self, registration):
        self._registration = registration

    def buildProtocol(self, addr):
        return NewClientProtocol(self._registration)

    def clientConnectionFailed(self, connector, reason):
        self._registration._connectFailed(reason)


class _RegistrationState(Enum):
    """
    The states of a L{Registration}.
    """

    queued = "waiting for its turn to connect"
    connecting = "its connection attempt in progress"
    written = "its line written, waiting for a listing to confirm it"
    closed = "closed before confirmation, waiting for a listing to explain why"
    again = "to be made again, on a new connection, after a short wait"
    registered = "confirmed: the registry holds it while its connection is open"
    unregistering = "closing its connection"
    orphaned = "held by a persistent entry an earlier connection left"
    failed = "never registered: rejected, timed out, cancelled or broken"
    ended = "registered, then unregistered or lost"


@implementer(IRegistration)
class Registration(StateMachine):
    """
    One service held registered by its open connection to the new port.

    An application uses what L{IRegistration} gives (L{update},
    L{unregister}, L{whenLost}); L{confirm}, L{confirmOrphan}, L{fail},
    L{again} and L{watch} are how its L{Registrar} tells it the verdict of
    each listing.

    @ivar name: the service name.
    @ivar attrs: the service's attributes as last sent.
    @type attrs: L{dict}
    @ivar registered: a L{Deferred} that fires with this registration once
        confirmed (see L{Registrar.register}).
    @ivar writtenAt: when its line was last written, or L{None}.
    @ivar closeReason: why its connection closed before it was confirmed,
        or L{None}.
    @type closeReason: L{Failure}
    """

    _log = Logger()

    __slots__ = (
        "_registrar",
        "_throttle",
        "_listing",
        "name",
        "attrs",
        "registered",
        "writtenAt",
        "closeReason",
        "_line",
        "_turn",
        "_connector",
        "_protocol",
        "_retry",
        "_listedSince",
        "_end",
        "_endWaiters",
        "_sent",
    )
    # Ten thousand registrations are ten thousand objects that the garbage
    # collector walks: no dict each.

    def __init__(self, registrar, throttle, listing, name, pairs, line):
        """
        @param registrar: the L{Registrar} that decides on it.
        @param throttle: the L{ConnectionThrottle} of its connection attempts.
        @param listing: the L{ListingScheduler} that lists it while it waits.
        @param name: the service name.
        @param pairs: its attributes, as C{(attr, value)} pairs.
        @param line: its registration line.
        """
        self._registrar = registrar
        self._throttle = throttle
        self._listing = listing
        self.name = name
        self.attrs = dict(pairs)
        self.registered = defer.Deferred(self._cancelled)
        self.writtenAt = None
        self.closeReason = None
        self._line = line
        self._state = _RegistrationState.queued
        self._turn = None
        self._connector = None
        self._protocol = None
        self._retry = None
        self._listedSince = None
        self._end = None
        self._endWaiters = None
        self._sent = None
        self._queue()

    def __repr__(self):
        return "<Registration %r>" % (self.name,)

    # Events from the throttle and the connection.

    def _turnCame(self, semaphore):
        self._handle("turn")

    def _timedOut(self):
        self._handle("timedOut")

    def _cancelled(self, d):
        self._handle("cancel")

    def _connectionMade(self, protocol):
        self._handle("connected", protocol)

    def _connectFailed(self, reason):
        self._handle("connectFailed", reason)

    def _connectionLost(self, reason):
        self._handle("malformed" if reason.check(MalformedAnswer) else "connectionLost", reason)

    # Events from the registrar's verdicts.

    def confirm(self, listedSince):
        """
        A find started at C{listedSince} showed this service with exactly
        its attributes, its connection open: it is registered.
        """
        self._handle("confirm", listedSince)

    def confirmOrphan(self):
        """
        A listing after this registration's connection closed shows a
        persistent entry with exactly its name and attributes: one an
        earlier connection of ours left, taken as this registration.
        """
        self._handle("orphan")

    def fail(self, reason):
        """
        End this unconfirmed registration with C{reason}: closing its
        connection, if open, and giving it up as a stale attempt unless the
        registry rejected it.
        """
        self._handle("fail", reason)

    def again(self):
        """
        Make this closed registration again, on a new connection, after
        L{CHECK_RETRY_DELAY}: the registry closed it while a stale attempt
        of ours held the name.
        """
        self._handle("again")

    def watch(self, listed, started):
        """
        A find started at C{started} listed this registered registration's
        name with C{listed}: when C{listed} holds attributes it never sent,
        someone else holds the name, and the registration is lost.  The
        registrar watches only the registrations in the I{registered} state
        (it is told of every way out of it); a plain method rather than an
        event, since every answer of the find port watches every one.
        """
        if started < self._listedSince or self._sentEverything(listed):
            return
        self._protocol.abortWith(
            RegistrationLost(
                "duplicate service name: the registry lists it with attributes "
                "this registration never sent (%s)" % (_describe(listed),)
            )
        )

    def _sentEverything(self, listed):
        """
        @return: whether every attribute and value of C{listed} is one this
            registration sent, and every attribute it sent is there (the
            registry never removes one).
        """
        if listed == self.attrs:
            return True
        sent = self._sent
        if sent is None:
            return False
        return listed.keys() == sent.keys() and all(
            value in sent[attr] for attr, value in listed.items()
        )

    # IRegistration

    def update(self, attrs):
        """
        Add attributes or change their values, in one line.

        @raise ValueError: for invalid attributes, before anything is sent.
        @raise RegistrationLost: when the registration is gone or being
            removed.
        """
        line, pairs = updateLine(attrs)
        self._handle("update", line, pairs)

    def unregister(self):
        """
        Close the connection, removing the service unless it persists.

        @return: a L{Deferred} that fires with L{None} once the connection
            is closed.
        """
        return self._handle("unregister")

    def whenLost(self):
        """
        @return: a L{Deferred} that fires with L{None} when the registration
            ends through L{unregister}, or fails with L{RegistrationLost}
            when its connection closes otherwise.
        """
        return self._handle("whenLost")

    # Actions: waiting and connecting.

    def _queue(self):
        self.closeReason = None
        self._turn = self._throttle.ask(self._timedOut)
        self._turn.whenStarted(self._turnCame)

    def _connect(self):
        self._connector = self._registrar.connect(NewClientFactory(self))

    def _leaveQueue(self):
        self._turn.end()

    def _stopConnecting(self):
        self._turn.end()
        self._connector.stopConnecting()

    def _connectTimedOut(self):
        self._connector.stopConnecting()
        self._queueTimedOut()

    def _queueTimedOut(self):
        self.registered.errback(
            Failure(
                RegistryTimeout(
                    "could not connect to the new port within %g s" % (self._registrar.timeout,)
                )
            )
        )

    def _cannotConnect(self, reason):
        self._turn.end()
        self.registered.errback(explainOpenFileLimit(reason))

    def _write(self, protocol):
        self._turn.end()
        self._protocol = protocol
        protocol.transport.write(self._line)
        self.writtenAt = self._registrar.clock.seconds()
        self._listing.written(self)

    def _refuse(self, protocol):
        """
        Given up (cancelled or timed out) while an endpoint connected.
        """
        protocol.transport.abortConnection()

    # Actions: waiting for a verdict.

    def _abandon(self):
        """
        Give up the open connection.  Its line, unanswered, may still be
        read by a registry that was not answering: the registrar remembers
        it as a stale attempt.
        """
        self._listing.forget(self)
        self._registrar.abandoned(self)
        self._protocol.transport.abortConnection()

    def _failWritten(self, reason):
        if reason.check(RegistrationRejected, MalformedAnswer):
            self._listing.forget(self)
            self._protocol.transport.abortConnection()
        else:
            self._abandon()
        self.registered.errback(reason)

    def _failClosed(self, reason):
        """
        Fail with C{reason} a registration whose connection is closed (by
        the registry, or after the peer wrote on it).
        """
        self._protocol = None
        self._listing.forget(self)
        self.registered.errback(reason)

    def _closedUnconfirmed(self, reason):
        self._protocol = None
        self.closeReason = reason
        self._listing.closed(self)

    def _forget(self):
        self._listing.forget(self)

    def _confirm(self, listedSince):
        self._listedSince = listedSince
        self.registered.callback(self)

    def _confirmOrphan(self):
        self._listing.forget(self)
        self._log.warn(
            "service {name} is held by a persistent entry with its attributes, "
            "left by an earlier connection: taken as registered; it cannot be "
            "updated or removed over TCP",
            name=self.name,
        )
        self.registered.callback(self)

    def _scheduleAgain(self):
        self._listing.forget(self)
        self._retry = self._registrar.clock.callLater(CHECK_RETRY_DELAY, self._handle, "retry")

    def _cancelAgain(self):
        self._retry.cancel()

    # Actions: registered.

    def _sendUpdate(self, line, pairs):
        self._protocol.transport.write(line)
        if self._sent is None:
            # Every value ever sent, kept from the first update on.
            self._sent = {attr: {value} for attr, value in self.attrs.items()}
        self.attrs.update(pairs)
        for attr, value in pairs:
            self._sent.setdefault(attr, set()).add(value)

    def _gone(self, line, pairs):
        raise RegistrationLost("registration of %r is gone" % (self.name,))

    def _orphanUpdated(self, line, pairs):
        lost = RegistrationLost(
            "service %r is held by a persistent entry left by an earlier "
            "connection, which cannot be updated over TCP" % (self.name,)
        )
        self._tellEnd(Failure(lost))
        raise lost

    def _close(self):
        self._registrar.unregistering(self)
        d = self._waitForEnd()
        self._protocol.transport.loseConnection()
        return d

    def _waitForEnd(self):
        """
        @return: a L{Deferred} that L{_tellEnd} fires.
        """
        d = defer.Deferred()
        if self._endWaiters is None:
            self._endWaiters = []
        self._endWaiters.append(d)
        return d

    def _orphanUnregistered(self):
        self._tellEnd(None)
        return defer.succeed(None)

    def _alreadyEnded(self):
        return defer.succeed(None)

    def _endResult(self):
        return defer.succeed(None) if self._end is None else defer.fail(self._end)

    def _lost(self, reason):
        self._protocol = None
        why = _whyLost(reason)
        self._registrar.ended(self, why)
        self._tellEnd(Failure(RegistrationLost("registration of %r lost: %s" % (self.name, why))))

    def _unregistered(self, reason):
        self._protocol = None
        self._registrar.ended(self, None)
        self._tellEnd(None)

    def _tellEnd(self, end):
        """
        Fire the L{Deferred}s waiting for the end: with L{None} for an
        unregistration, else with the failure C{end}.
        """
        self._end = end
        waiters, self._endWaiters = self._endWaiters, None
        for d in waiters or ():
            d.callback(None) if end is None else d.errback(end)


_S = _RegistrationState
_R = Registration
Registration._transitions = {
    _S.queued: {
        "turn": (_S.connecting, _R._connect),
        "timedOut": (_S.failed, _R._queueTimedOut),
        "cancel": (_S.failed, _R._leaveQueue),
    },
    _S.connecting: {
        "connected": (_S.written, _R._write),
        "connectFailed": (_S.failed, _R._cannotConnect),
        "timedOut": (_S.failed, _R._connectTimedOut),
        "cancel": (_S.failed, _R._stopConnecting),
    },
    _S.written: {
        "confirm": (_S.registered, _R._confirm),
        "fail": (_S.failed, _R._failWritten),
        "connectionLost": (_S.closed, _R._closedUnconfirmed),
        "malformed": (_S.failed, _R._failClosed),
        "cancel": (_S.failed, _R._abandon),
    },
    _S.closed: {
        "orphan": (_S.orphaned, _R._confirmOrphan),
        "again": (_S.again, _R._scheduleAgain),
        "fail": (_S.failed, _R._failClosed),
        "cancel": (_S.failed, _R._forget),
    },
    _S.again: {
        "retry": (_S.queued, _R._queue),
        "cancel": (_S.failed, _R._cancelAgain),
    },
    _S.registered: {
        "update": (_S.registered, _R._sendUpdate),
        "unregister": (_S.unregistering, _R._close),
        "whenLost": (_S.registered, _R._waitForEnd),
        "connectionLost": (_S.ended, _R._lost),
        "malformed": (_S.ended, _R._lost),
    },
    _S.unregistering: {
        "update": (_S.unregistering, _R._gone),
        "unregister": (_S.unregistering, _R._waitForEnd),
        "whenLost": (_S.unregistering, _R._waitForEnd),
        "connectionLost": (_S.ended, _R._unregistered),
        "malformed": (_S.ended, _R._unregistered),
    },
    _S.orphaned: {
        "update": (_S.ended, _R._orphanUpdated),
        "unregister": (_S.ended, _R._orphanUnregistered),
        "whenLost": (_S.orphaned, _R._waitForEnd),
    },
    _S.failed: {
        "connected": (_S.failed, _R._refuse),
    },
    _S.ended: {
        "update": (_S.ended, _R._gone),
        "unregister": (_S.ended, _R._alreadyEnded),
        "whenLost": (_S.ended, _R._endResult),
    },
}
# For each state, the events it takes: {event: (next state, action)}; an
# event not listed is ignored (a stale one: a connection's report after the
# registration was given up, a verdict on one already decided).  The table
# is drawn in docs/connection.md.


class Registrar:
    """
    Registers services through the new port and confirms them through
    listings of the find port, coalesced: a L{ConnectionThrottle} paces the
    connections, a L{ListingScheduler} runs the listings, and the registrar
    decides what each listing means for each registration.

    @ivar connect: starts a registration's connection (see C{startConnection}
        below).
    @ivar clock: times connections and confirmations.
    @ivar timeout: seconds a registration may wait for its connection (its
        turn included), and seconds it may stay unlisted while its
        connection is open.
    """

    _log = Logger()

    def __init__(
        self,
        startConnection,
        findServices,
        clock,
        timeout=DEFAULT_REGISTRATION_TIMEOUT,
        maxConnecting=DEFAULT_MAX_CONNECTING,
    ):
        """
        @param startConnection: connects a L{ClientFactory} to the new port
            and returns its L{IConnector}; see
            L{txinferno.client._reconnect.connectionStarter}.
        @param findServices: a callable taking a sequence of C{(attr,
            value)} pairs and returning a L{Deferred} that fires with the
            attributes by name of every service matching them (every
            service for no pairs), or fails.
        @param clock: times connections and confirmations.
        @type clock: L{IReactorTime}
        @param timeout: see L{timeout}.
        @param maxConnecting: the most connection attempts in progress at
            once; more registrations wait their turn in order.
        """
        self.connect = startConnection
        self.clock = clock
        self.timeout = timeout
        self._throttle = ConnectionThrottle(clock, maxConnecting, timeout)
        self._listing = ListingScheduler(clock, findServices, self._throttle.busy, self._decide)
        self._unregistrationsInProgress = 0
        self._serviceLog = BurstLog(self._log, clock)
        self._watched = {}
        self._stale = {}

    def register(self, name, attrs):
        """
        Register a service.

        @raise ValueError: before anything is sent, for a name or
            attributes the registry would reject.

        @return: a L{Deferred} that fires with a L{Registration} once a
            listing shows the service, or fails with
            L{RegistrationRejected} (C{duplicate service name}, or the
            registry closed the connection for another reason),
            L{RegistryTimeout}, L{MalformedAnswer} or the connection error.
            Cancelling it closes the connection.
        """
        line, pairs = registrationLine(name, attrs)
        return Registration(self, self._throttle, self._listing, name, pairs, line).registered

    def registryChanged(self):
        """
        The registry reported a change: a listing waiting for its delay
        starts now, unless registrations are still connecting.
        """
        self._listing.registryChanged()

    def sawAnswer(self, services, started):
        """
        Watch the registered registrations (confirmed, and not being
        unregistered) in an answer of the find port (see
        L{Registration.watch}).

        @param services: the answer.
        @param started: when its find started.
        @return: C{services}.
        """
        watched = self._watched
        if watched:
            if len(watched) < len(services):
                pairs = [(r, services.get(name)) for name, r in watched.items()]
            else:
                pairs = [(watched.get(name), a) for name, a in services.items()]
            for registration, listed in pairs:
                if registration is not None and listed is not None:
                    registration.watch(listed, started)
        return services

    # What registrations tell.

    def abandoned(self, registration):
        """
        C{registration}'s connection, its line written and unanswered, is
        given up: remember its name and attributes as a stale attempt,
        good for L{STALE_RETRIES} attempts made again.
        """
        self._stale[registration.name] = (dict(registration.attrs), STALE_RETRIES)

    def unregistering(self, registration):
        """
        C{registration} is closing its connection: it is watched no more,
        and its end is logged with the others in progress, once the last of
        them ends.
        """
        self._stopWatching(registration)
        self._unregistrationsInProgress += 1

    def ended(self, registration, lostReason):
        """
        A confirmed registration's connection closed: unregistered (for a
        C{lostReason} of L{None}) or lost.  Its end is logged with the
        others of the same turn (a registry that goes away closes every
        registration at once), or, for an unregistration, with the others
        in progress, once the last of them ends.
        """
        self._stopWatching(registration)
        if lostReason is None:
            self._serviceLog.add(
                LogLevel.info,
                "service {name} unregistered",
                "{count} services unregistered",
                registration.name,
            )
            self._unregistrationsInProgress -= 1
            if not self._unregistrationsInProgress:
                self._serviceLog.flush()
        else:
            self._serviceLog.add(
                LogLevel.warn,
                "registration of service {name} lost: {reason}",
                "{count} registrations lost: {reason}",
                registration.name,
                lostReason,
            )
            self._serviceLog.flushSoon(LOSS_WINDOW)

    def _stopWatching(self, registration):
        if self._watched.get(registration.name) is registration:
            del self._watched[registration.name]

    # Verdicts.

    def _decide(self, answers, started):
        """
        Decide what a round of finds started at C{started} means for each
        registration it looked for; the confirmed ones are logged together,
        then told.
        """
        now = self.clock.seconds()
        # Registrations written later than this wait for the next round
        # (see CONFIRM_AFTER).
        writtenBy = started - CONFIRM_AFTER
        confirmed = []
        for registration, listed, failure, sinceClose in answers:
            if failure is not None:
                registration.fail(self._whyNotListed(registration, failure))
            elif self._resolved(registration, listed, sinceClose, writtenBy, now) is _CONFIRMED:
                self._listing.forget(registration)
                confirmed.append(registration)
        for registration in confirmed:
            self._watched[registration.name] = registration
            self._stale.pop(registration.name, None)
            self._serviceLog.add(
                LogLevel.info,
                "service {name} registered",
                "{count} services registered",
                registration.name,
            )
        self._serviceLog.flush()
        for registration in confirmed:
            registration.confirm(started)

    def _resolved(self, registration, listed, sinceClose, writtenBy, now):
        """
        Decide what the attributes C{listed} under C{registration}'s name
        (or L{None}) mean for it, and tell it, unless it is to be
        confirmed: ended (rejected, orphaned or timed out), made again, or
        still waiting.

        @param sinceClose: whether the find started after its connection
            closed.
        @return: L{_WAITING}, L{_CONFIRMED} (to be confirmed) or L{_ENDED}.
        """
        if registration.closeReason is not None:
            if not sinceClose:
                return _WAITING
            if listed == registration.attrs and persists(listed.get("persist")):
                registration.confirmOrphan()
            elif self._heldByStaleAttempt(registration, listed):
                self._log.info(
                    "service {name} is held by an attempt of ours given up "
                    "unanswered: registering it again",
                    name=registration.name,
                )
                registration.again()
            else:
                registration.fail(self._whyClosed(registration, listed))
            return _ENDED
        if listed is not None and registration.writtenAt <= writtenBy:
            if listed == registration.attrs:
                return _CONFIRMED
            registration.fail(
                Failure(RegistrationRejected(registration.name, "duplicate service name"))
            )
            self._log.debug(
                "service {name} is held with other attributes ({attrs}): duplicate service name",
                name=registration.name,
                attrs=_describe(listed),
            )
            return _ENDED
        if now - registration.writtenAt >= self.timeout:
            registration.fail(
                Failure(
                    RegistryTimeout(
                        "the registration was not listed by the registry within %g s"
                        % (self.timeout,)
                    )
                )
            )
            return _ENDED
        return _WAITING

    def _heldByStaleAttempt(self, registration, listed):
        """
        @return: whether C{listed}, the entry holding the name of the
            closed C{registration}, may be a stale attempt of ours; if so,
            one of its retries is used up.
        """
        attrs, retries = self._stale.get(registration.name, (None, 0))
        if listed != registration.attrs or attrs != listed or not retries:
            return False
        self._stale[registration.name] = (attrs, retries - 1)
        return True

    def _whyClosed(self, registration, listed):
        """
        @return: why the registry closed an unconfirmed registration, given
            what a find made after the close listed under its name.
        @rtype: L{Failure} of L{RegistrationRejected}
        """
        if listed is not None and persists(listed.get("persist")):
            reason = (
                "duplicate service name (held by a persistent entry; if an earlier "
                "connection of this service left it, it cannot be updated over TCP)"
            )
        elif listed is not None:
            reason = "duplicate service name"
        else:
            reason = "the registry closed the connection (%s)" % (
                registration.closeReason.getErrorMessage(),
            )
        return Failure(RegistrationRejected(registration.name, reason))

    def _whyNotListed(self, registration, reason):
        """
        @return: how a registration whose find failed with C{reason} fails:
            with that reason, or for one the registry closed, rejected,
            saying both.
        @rtype: L{Failure}
        """
        if registration.closeReason is None:
            return reason
        return Failure(
            RegistrationRejected(
                registration.name,
                "the registry closed the connection (%s), and listing the "
                "services to find out why failed: %s"
                % (registration.closeReason.getErrorMessage(), reason.getErrorMessage()),
            )
        )


def _whyLost(reason):
    """
    @return: why a registration's connection closed, in words: the same
        words for every registration a dying registry closes the same way.
    """
    if reason.check(ConnectionDone):
        return "the registry closed the connection"
    if reason.check(ConnectionLost):
        return "the connection to the registry was lost"
    return reason.getErrorMessage()


def _describe(attrs):
    """
    @return: attributes in words, as the registry prints them.
    """
    return (
        formatLine([word for pair in attrs.items() for word in pair]).decode("utf-8").rstrip("\n")
    )
