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

from collections import Counter, deque

from twisted.internet import defer
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno._filelimit import explainOpenFileLimit
from txinferno._keepalive import enableKeepAlive
from txinferno.client._burstlog import BurstLog
from txinferno.errors import (
    AnswerTooLarge,
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

CHECK_RETRY_DELAY = 0.1
"""
Seconds between listings when the last one showed none of the waiting
registrations yet.
"""

BURST_LISTING_DELAY = 0.25
"""
Seconds a written registration waits for its listing while more
registrations are still connecting: the listing that follows the last of a
burst confirms them all, and a long burst is confirmed in steps.
"""

CONFIRM_AFTER = 0.05
"""
Seconds between writing a registration and starting a listing that may
confirm it.  The registry closes a duplicate's connection as soon as it
reads its line, and a listing cannot tell an entry with the same name and
attributes held by someone else (a second agent started with the same
services) from ours: a listing started too soon could show that entry
before the registry has read our line, and before its close reaches us.
"""


MAX_QUERIES = 16
"""
The most finds one confirmation round runs at once; registrations that
need more wait for the next round.
"""

EXPLAIN_INTERVAL = 1.0
"""
Seconds a registration may stay unlisted, its connection open, before a
full listing looks for another holder of its name (one whose attributes
share nothing with ours, which a find of ours cannot show); at most one
such listing per interval.
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

_WAITING, _CONFIRMED, _AGAIN, _ENDED = "waiting", "confirmed", "again", "ended"
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


@implementer(IRegistration)
class Registration:
    """
    One service held registered by its open connection to the new port.

    @ivar name: the service name.
    @ivar attrs: the service's attributes as last sent.
    @type attrs: L{dict}
    """

    _log = Logger()

    def __init__(self, registrar, name, pairs, line):
        self._registrar = registrar
        self.name = name
        self.attrs = dict(pairs)
        self.registered = defer.Deferred(self._cancel)
        self._line = line
        self._connecting = False
        self._connector = None
        self._protocol = None
        self._confirmed = False
        self._orphaned = False
        self._unregistering = False
        self._closeReason = None
        self._closedInRound = None
        self._writtenAt = None
        self._end = None
        self._lostReason = None
        self._endWaiters = None
        self._sent = {attr: {value} for attr, value in self.attrs.items()}
        self._listedSince = None
        self._alone = False

    def __repr__(self):
        return "<Registration %r>" % (self.name,)

    # Life before confirmation, driven by the Registrar.

    def _connect(self, startConnection):
        """
        Start this registration's connection.

        @param startConnection: see L{txinferno.client._reconnect.connectionStarter}.
        """
        self._connecting = True
        connector = startConnection(NewClientFactory(self))
        if self._connecting:
            self._connector = connector

    def _endConnecting(self):
        """
        The connection attempt ended: tell the registrar, once.

        @return: whether the attempt was still in progress.
        """
        if not self._connecting:
            return False
        self._connecting = False
        self._connector = None
        self._registrar._connectEnded(self)
        return True

    def _abandonConnecting(self):
        """
        Stop the connection attempt in progress, if any; its connector's
        failure report is then ignored.
        """
        connector = self._connector
        if self._endConnecting() and connector is not None:
            connector.stopConnecting()

    def _cancel(self, d):
        self._registrar._forget(self)
        self._abandonConnecting()
        self._abort()

    def _abort(self):
        """
        Give up the connection, if open.  Its line, unanswered, may still
        be read by a registry that was not answering: the registrar
        remembers it as a stale attempt.
        """
        if self._protocol is not None:
            self._registrar._abandoned(self)
            self._protocol.transport.abortConnection()

    def _connectTimedOut(self, timeout):
        """
        No connection within C{timeout} seconds of being asked for (waiting
        for a turn included).
        """
        self._abandonConnecting()
        self._fail(
            Failure(RegistryTimeout("could not connect to the new port within %g s" % (timeout,)))
        )

    def _connectFailed(self, reason):
        if self._endConnecting():
            self._fail(explainOpenFileLimit(reason))

    def _connectionMade(self, protocol):
        self._endConnecting()
        if self.registered.called:
            # Given up (cancelled or timed out) while an endpoint connected.
            protocol.transport.abortConnection()
            return
        protocol.transport.write(self._line)
        self._protocol = protocol
        self._writtenAt = self._registrar.clock.seconds()
        self._registrar._written(self)

    def _again(self):
        """
        Make this registration again, on a new connection: the registry
        closed this one while a stale attempt of ours held the name.
        """
        self._closeReason = self._closedInRound = self._writtenAt = None
        self._registrar.clock.callLater(CHECK_RETRY_DELAY, self._registrar._enqueue, self)

    def _confirm(self, listedSince):
        """
        A find started at C{listedSince} showed this service with exactly
        its attributes.
        """
        self._confirmed = True
        self._listedSince = listedSince
        self.registered.callback(self)

    def _sentEverything(self, listed):
        """
        @return: whether every attribute and value of C{listed} is one this
            registration sent, and every attribute it sent is there (the
            registry never removes one).
        """
        if listed == self.attrs:
            return True
        sent = self._sent
        return listed.keys() == sent.keys() and all(
            value in sent[attr] for attr, value in listed.items()
        )

    def _watch(self, listed, started):
        """
        A find started at C{started} listed this confirmed registration's
        name with C{listed}: when it holds attributes this registration
        never sent, someone else holds the name, and the registration is
        lost.
        """
        if (
            self._protocol is None
            or self._unregistering
            or started < self._listedSince
            or self._sentEverything(listed)
        ):
            return
        self._protocol.abortWith(
            RegistrationLost(
                "duplicate service name: the registry lists it with attributes "
                "this registration never sent (%s)" % (_describe(listed),)
            )
        )

    def _orphanIn(self, services):
        """
        @return: whether C{services}, listed after the registry closed this
            registration, hold a persistent entry with exactly this name and
            these attributes: one left by an earlier connection of ours.
        """
        return services.get(self.name) == self.attrs and persists(self.attrs.get("persist"))

    def _confirmOrphan(self):
        """
        Take the persistent entry an earlier connection left as this
        registration: the service is registered, but without a connection
        it cannot be updated (or removed) over TCP.
        """
        self._confirmed = True
        self._orphaned = True
        self._log.warn(
            "service {name} is held by a persistent entry with its attributes, "
            "left by an earlier connection: taken as registered; it cannot be "
            "updated or removed over TCP",
            name=self.name,
        )
        self.registered.callback(self)

    def _endOrphan(self, end):
        self._orphaned = False
        self._end = end
        self._tellEnd()

    def _waitForEnd(self):
        """
        @return: a L{Deferred} that L{_tellEnd} fires.
        """
        if self._endWaiters is None:
            self._endWaiters = []
        d = defer.Deferred()
        self._endWaiters.append(d)
        return d

    def _tellEnd(self):
        """
        Fire the L{Deferred}s waiting for the end: with L{None} for an
        unregistration, else with the failure in C{_end}.
        """
        waiters, self._endWaiters = self._endWaiters, None
        for d in waiters or ():
            d.callback(None) if self._end is None else d.errback(self._end)

    def _fail(self, reason):
        """
        End an unconfirmed registration with C{reason}, closing its
        connection if it is still open.  The caller, who gets C{reason},
        reports it.
        """
        if reason.check(RegistrationRejected, MalformedAnswer):
            if self._protocol is not None:
                self._protocol.transport.abortConnection()
        else:
            self._abort()
        self.registered.errback(reason)

    # The connection's end.

    def _connectionLost(self, reason):
        self._protocol = None
        if not self._confirmed:
            if self.registered.called:
                return
            if reason.check(MalformedAnswer):
                self._registrar._forget(self)
                self._fail(reason)
            else:
                self._closeReason = reason
                self._registrar._closed(self)
            return
        if self._unregistering:
            self._end = None
        else:
            self._lostReason = _whyLost(reason)
            self._end = Failure(
                RegistrationLost("registration of %r lost: %s" % (self.name, self._lostReason))
            )
        self._registrar._ended(self)
        self._tellEnd()

    # IRegistration

    def update(self, attrs):
        """
        Add attributes or change their values, in one line.

        @raise ValueError: for invalid attributes, before anything is sent.
        @raise RegistrationLost: when the registration is gone or being
            removed.
        """
        line, pairs = updateLine(attrs)
        if self._orphaned:
            lost = RegistrationLost(
                "service %r is held by a persistent entry left by an earlier "
                "connection, which cannot be updated over TCP" % (self.name,)
            )
            self._endOrphan(Failure(lost))
            raise lost
        if self._protocol is None or self._unregistering:
            raise RegistrationLost("registration of %r is gone" % (self.name,))
        self._protocol.transport.write(line)
        self.attrs.update(pairs)
        for attr, value in pairs:
            self._sent.setdefault(attr, set()).add(value)

    def unregister(self):
        """
        Close the connection, removing the service unless it persists.

        @return: a L{Deferred} that fires with L{None} once the connection
            is closed.
        """
        if self._orphaned:
            self._endOrphan(None)
        if self._protocol is None:
            return defer.succeed(None)
        if not self._unregistering:
            self._unregistering = True
            self._registrar._unregistrationsInProgress += 1
        d = self._waitForEnd()
        self._protocol.transport.loseConnection()
        return d

    def whenLost(self):
        """
        @return: a L{Deferred} that fires with L{None} when the registration
            ends through L{unregister}, or fails with L{RegistrationLost}
            when its connection closes otherwise.
        """
        if self._protocol is None and not self._orphaned:
            return defer.succeed(None) if self._end is None else defer.fail(self._end)
        return self._waitForEnd()


class Registrar:
    """
    Registers services through the new port and confirms them through
    listings of the find port, coalesced.

    @ivar clock: times connections and confirmations.
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
        @param timeout: seconds a registration may wait for its connection
            (its turn included), and seconds it may stay unlisted while its
            connection is open.
        @param maxConnecting: the most connection attempts in progress at
            once; more registrations wait their turn in order.
        """
        self._startConnection = startConnection
        self._findServices = findServices
        self.clock = clock
        self._timeout = timeout
        self._maxConnecting = maxConnecting
        self._pending = {}
        self._rounds = 0
        self._listing = None
        self._fresh = False
        self._retry = None
        self._waitingToConnect = deque()
        self._connecting = 0
        self._startingConnections = False
        self._connectDeadlines = {}
        self._connectTimer = None
        self._unregistrationsInProgress = 0
        self._lastWrittenAt = None
        self._serviceLog = BurstLog(self._log, clock)
        self._confirmed = {}
        self._stale = {}
        self._lastFullListingAt = float("-inf")

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
        registration = Registration(self, name, pairs, line)
        self._enqueue(registration)
        return registration.registered

    def _enqueue(self, registration):
        """
        Queue C{registration} for a connection, its deadline from now
        (unless it was given up meanwhile).
        """
        if registration.registered.called:
            return
        self._connectDeadlines[registration] = self.clock.seconds() + self._timeout
        if self._connectTimer is None:
            self._connectTimer = self.clock.callLater(self._timeout, self._connectTimeouts)
        self._waitingToConnect.append(registration)
        self._startConnections()

    def _abandoned(self, registration):
        """
        C{registration}'s connection, its line written and unanswered, is
        given up: remember its name and attributes as a stale attempt,
        good for L{STALE_RETRIES} attempts made again.
        """
        if registration._writtenAt is not None:
            self._stale[registration.name] = (dict(registration.attrs), STALE_RETRIES)

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

    def _startConnections(self):
        """
        Start the connections of waiting registrations, in order, while
        fewer than C{maxConnecting} attempts are in progress.
        """
        if self._startingConnections:
            return
        self._startingConnections = True
        try:
            waiting = self._waitingToConnect
            while waiting:
                if waiting[0].registered.called:
                    # Cancelled or timed out while waiting.
                    waiting.popleft()
                elif self._connecting < self._maxConnecting:
                    self._connecting += 1
                    waiting.popleft()._connect(self._startConnection)
                else:
                    break
        finally:
            self._startingConnections = False

    def _connectEnded(self, registration):
        """
        A connection attempt succeeded, failed or was abandoned: stop
        timing it, and start the next.
        """
        self._connecting -= 1
        self._stopTiming(registration)
        self._startConnections()

    def _stopTiming(self, registration):
        """
        Forget C{registration}'s connection deadline, and stop the timer
        with the last one.
        """
        self._connectDeadlines.pop(registration, None)
        if not self._connectDeadlines and self._connectTimer is not None:
            self._connectTimer.cancel()
            self._connectTimer = None

    def _connectTimeouts(self):
        """
        Give up the registrations whose connection is not made within the
        timeout, and wait for the oldest of the others: one timer for
        every registration, as all have the same timeout and come in
        order.
        """
        self._connectTimer = None
        now = self.clock.seconds()
        expired = []
        for registration, deadline in self._connectDeadlines.items():
            if deadline > now:
                self._connectTimer = self.clock.callLater(deadline - now, self._connectTimeouts)
                break
            expired.append(registration)
        for registration in expired:
            del self._connectDeadlines[registration]
        # None of the expired may take the turn another leaves.
        self._startingConnections = True
        try:
            for registration in expired:
                registration._connectTimedOut(self._timeout)
        finally:
            self._startingConnections = False
        self._startConnections()

    def _written(self, registration):
        self._lastWrittenAt = registration._writtenAt
        self._pending[registration] = None
        self._fresh = True
        self._check()

    def _closed(self, registration):
        registration._closedInRound = self._rounds
        self._fresh = True
        self._check()

    def _forget(self, registration):
        self._pending.pop(registration, None)
        self._stopTiming(registration)
        self._startConnections()

    def _check(self):
        """
        Start a listing for every waiting registration, unless one is
        running; while more registrations are connecting or waiting their
        turn, the listing waits for them, or L{BURST_LISTING_DELAY}.
        """
        if self._listing is not None or not self._pending:
            return
        if self._connecting or self._waitingToConnect:
            self._listLater(BURST_LISTING_DELAY)
        else:
            wait = self._lastWrittenAt + CONFIRM_AFTER - self.clock.seconds()
            if wait > 0:
                self._listLater(wait)
            else:
                self._list()

    def _listLater(self, delay):
        """
        List after C{delay} seconds, or when the listing already due is, if
        sooner.
        """
        if self._retry is None:
            self._retry = self.clock.callLater(delay, self._listDue)
        elif self._retry.getTime() > self.clock.seconds() + delay:
            self._retry.reset(delay)

    def registryChanged(self):
        """
        The registry reported a change: a listing waiting for its delay
        starts now, unless registrations are still connecting (see
        L{_check}).
        """
        if self._retry is not None:
            self._check()

    def _listDue(self):
        self._retry = None
        if self._listing is None and self._pending:
            self._list()

    def _list(self):
        """
        Start a confirmation round: the finds of L{_queries}, run at once.
        """
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._rounds += 1
        self._fresh = False
        started = self.clock.seconds()
        queries, full = self._queries(list(self._pending), started)
        finds = [self._findServices(pairs) for pairs, group in queries]
        if full or (queries and not queries[0][0]):
            self._lastFullListingAt = started
        if full:
            finds.append(self._findServices(()))
        self._listing = defer.DeferredList(finds, consumeErrors=True)
        self._listing.addCallback(self._listed, queries, full, self._rounds, started)

    def _queries(self, batch, now):
        """
        Choose the finds of a round: registrations that share attributes
        share one find, of the attributes they all have; the others are
        found by their own attributes (those whose shared find was too
        large, too), up to L{MAX_QUERIES} finds; the rest wait for the next
        round.

        @return: the finds, as C{(pairs, registrations)} (the first lists
            every service when there are registrations without
            attributes), and whether the round also lists every service:
            to explain a close, or for a registration unlisted for
            L{EXPLAIN_INTERVAL} (once an interval).
        """
        bare = [r for r in batch if not r.attrs]
        full = any(r._closeReason is not None for r in batch)
        if not full and now - self._lastFullListingAt >= EXPLAIN_INTERVAL:
            full = any(now - r._writtenAt >= EXPLAIN_INTERVAL for r in batch)
        full = full and not bare
        queries = [((), bare)] if bare else []
        alone = [r for r in batch if r.attrs and r._alone]
        rest = [r for r in batch if r.attrs and not r._alone]
        while len(rest) > 1 and len(queries) < MAX_QUERIES:
            group, rest = _shared(rest)
            if not group:
                break
            shared = set(group[0].attrs.items()).intersection(*(r.attrs.items() for r in group[1:]))
            named = set(group[0].attrs).intersection(*(r.attrs for r in group[1:]))
            named.difference_update(attr for attr, value in shared)
            queries.append((sorted(shared) + [(attr, "*") for attr in sorted(named)], group))
        for r in alone + rest:
            if len(queries) >= MAX_QUERIES:
                self._fresh = True
                break
            queries.append((list(r.attrs.items()), [r]))
        return queries, full

    def _listed(self, results, queries, full, number, started):
        self._listing = None
        now = self.clock.seconds()
        everything = None
        if full:
            succeeded, everything = results.pop()
        elif queries and not queries[0][0]:
            succeeded, everything = results[0]
        if everything is not None and not succeeded:
            everything = None
        confirmed = []
        # Registrations written later than this wait for the next find (see
        # CONFIRM_AFTER).
        writtenBy = started - CONFIRM_AFTER
        for (_pairs, group), (succeeded, answer) in zip(queries, results):
            for registration in group:
                if registration not in self._pending:
                    continue
                if succeeded:
                    listed = answer.get(registration.name)
                    if listed is None and everything is not None:
                        listed = everything.get(registration.name)
                elif everything is not None:
                    listed = everything.get(registration.name)
                elif answer.check(AnswerTooLarge) and len(group) > 1:
                    # The shared find was too large: find it alone next time.
                    registration._alone = True
                    self._fresh = True
                    continue
                else:
                    del self._pending[registration]
                    registration._fail(self._whyNotListed(registration, answer))
                    continue
                outcome = self._resolved(registration, listed, number, writtenBy, now)
                if outcome is not _WAITING:
                    del self._pending[registration]
                if outcome is _CONFIRMED:
                    confirmed.append(registration)
                elif outcome is _AGAIN:
                    registration._again()
        for registration in confirmed:
            self._confirmed[registration.name] = registration
            self._stale.pop(registration.name, None)
            self._serviceLog.add(
                LogLevel.info,
                "service {name} registered",
                "{count} services registered",
                registration.name,
            )
        self._serviceLog.flush()
        for registration in confirmed:
            registration._confirm(started)
        self._next()

    def _resolved(self, registration, listed, number, writtenBy, now):
        """
        Decide what the attributes C{listed} under C{registration}'s name
        (or L{None}) by a find of round C{number} mean for it: ended
        (rejected, orphaned or timed out), confirmed, or still waiting.

        @return: L{_WAITING}, L{_CONFIRMED} (to be confirmed), L{_AGAIN}
            (to be made again, see L{STALE_RETRIES}) or L{_ENDED}.
        """
        if registration._closeReason is not None:
            if registration._closedInRound >= number:
                return _WAITING
            if listed == registration.attrs and persists(listed.get("persist")):
                registration._confirmOrphan()
            elif self._heldByStaleAttempt(registration, listed):
                self._log.info(
                    "service {name} is held by an attempt of ours given up "
                    "unanswered: registering it again",
                    name=registration.name,
                )
                return _AGAIN
            else:
                registration._fail(self._whyClosed(registration, listed))
            return _ENDED
        if listed is not None and registration._writtenAt <= writtenBy:
            if listed == registration.attrs:
                return _CONFIRMED
            registration._fail(
                Failure(
                    RegistrationRejected(
                        registration.name,
                        "duplicate service name",
                    )
                )
            )
            self._log.debug(
                "service {name} is held with other attributes ({attrs}): duplicate service name",
                name=registration.name,
                attrs=_describe(listed),
            )
            return _ENDED
        if now - registration._writtenAt >= self._timeout:
            registration._fail(
                Failure(
                    RegistryTimeout(
                        "the registration was not listed by the registry within %g s"
                        % (self._timeout,)
                    )
                )
            )
            return _ENDED
        return _WAITING

    def sawAnswer(self, services, started):
        """
        Watch the confirmed registrations in an answer of the find port
        (see L{Registration._watch}).

        @param services: the answer.
        @param started: when its find started.
        @return: C{services}.
        """
        confirmed = self._confirmed
        if confirmed:
            if len(confirmed) < len(services):
                pairs = [(r, services.get(name)) for name, r in confirmed.items()]
            else:
                pairs = [(confirmed.get(name), a) for name, a in services.items()]
            for registration, listed in pairs:
                if registration is not None and listed is not None:
                    registration._watch(listed, started)
        return services

    def _ended(self, registration):
        """
        A confirmed registration's connection closed.  Its end is logged
        with the others of the same turn (a registry that goes away closes
        every registration at once), or, for an unregistration, with the
        others in progress, once the last of them ends.
        """
        if self._confirmed.get(registration.name) is registration:
            del self._confirmed[registration.name]
        if registration._unregistering:
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
                registration._lostReason,
            )
            self._serviceLog.flushSoon(LOSS_WINDOW)

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
                registration._closeReason.getErrorMessage(),
            )
        return Failure(RegistrationRejected(registration.name, reason))

    def _whyNotListed(self, registration, reason):
        """
        @return: how a registration whose find failed with C{reason} fails:
            with that reason, or for one the registry closed, rejected,
            saying both.
        @rtype: L{Failure}
        """
        if registration._closeReason is None:
            return reason
        return Failure(
            RegistrationRejected(
                registration.name,
                "the registry closed the connection (%s), and listing the "
                "services to find out why failed: %s"
                % (registration._closeReason.getErrorMessage(), reason.getErrorMessage()),
            )
        )

    def _next(self):
        """
        After a listing: list again at once for registrations that came or
        closed meanwhile, after L{CHECK_RETRY_DELAY} for ones still unseen.
        """
        if not self._pending:
            return
        if self._fresh:
            self._check()
        else:
            self._listLater(CHECK_RETRY_DELAY)


def _shared(registrations):
    """
    Pick the largest group of C{registrations} that share an attribute
    with its value, or else an attribute name.

    @return: the group (empty when they share nothing) and the others.
    """
    for key in (dict.items, dict.keys):
        ((shared, count),) = Counter(
            item for r in registrations for item in key(r.attrs)
        ).most_common(1)
        if count > 1:
            has = (
                (lambda attrs, shared=shared: shared in attrs.items())
                if key is dict.items
                else (lambda attrs, shared=shared: shared in attrs)
            )
            group = [r for r in registrations if has(r.attrs)]
            return group, [r for r in registrations if not has(r.attrs)]
    return [], registrations


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
