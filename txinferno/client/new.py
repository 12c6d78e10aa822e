"""
The new port (6701): a registration is an open connection.

The registry never writes on this port; it tells of a rejected
registration only by closing the connection.  So a registration counts as
made only once a listing of the find port, started after its line was
written, shows the service with its attributes while its connection is
still open.  One listing confirms every registration written before it
started, so a burst of registrations costs a handful of listings.  When a
connection closes first, a listing started after the close tells why: the
name held by another service means C{duplicate service name}.
"""

from collections import deque

from twisted.internet import defer
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno._filelimit import explainOpenFileLimit
from txinferno._keepalive import enableKeepAlive
from txinferno.client._burstlog import BurstLog
from txinferno.errors import (
    MalformedAnswer,
    RegistrationLost,
    RegistrationRejected,
    RegistryTimeout,
)
from txinferno.interfaces import IRegistration
from txinferno.wire.persist import persists
from txinferno.wire.rules import registrationLine, updateLine

__all__ = [
    "DEFAULT_REGISTRATION_TIMEOUT",
    "DEFAULT_MAX_CONNECTING",
    "CHECK_RETRY_DELAY",
    "BURST_LISTING_DELAY",
    "CONFIRM_AFTER",
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
        if self._error is None:
            self._error = MalformedAnswer(
                "the registry wrote %d bytes on the registration connection "
                "of %r, which a registry never does: %r"
                % (len(data), self._registration.name, data[:80])
            )
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
        if self._protocol is not None:
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

    def _listed(self, services):
        """
        @return: whether C{services} show this service with its attributes.
        """
        listed = services.get(self.name)
        return listed is not None and (
            listed == self.attrs
            or all(listed.get(attr) == value for attr, value in self.attrs.items())
        )

    def _confirm(self):
        self._confirmed = True
        self.registered.callback(self)

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
        if self._protocol is not None:
            self._protocol.transport.abortConnection()
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
            self._lostReason = reason.getErrorMessage()
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
                "connection, which cannot be updated over TCP" % (self.name,))
            self._endOrphan(Failure(lost))
            raise lost
        if self._protocol is None or self._unregistering:
            raise RegistrationLost("registration of %r is gone" % (self.name,))
        self._protocol.transport.write(line)
        self.attrs.update(pairs)

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
        listServices,
        clock,
        timeout=DEFAULT_REGISTRATION_TIMEOUT,
        maxConnecting=DEFAULT_MAX_CONNECTING,
    ):
        """
        @param startConnection: connects a L{ClientFactory} to the new port
            and returns its L{IConnector}; see
            L{txinferno.client._reconnect.connectionStarter}.
        @param listServices: a callable returning a L{Deferred} that fires
            with every service's attributes by name (a find of C{\\n}).
        @param clock: times connections and confirmations.
        @type clock: L{IReactorTime}
        @param timeout: seconds a registration may wait for its connection
            (its turn included), and seconds it may stay unlisted while its
            connection is open.
        @param maxConnecting: the most connection attempts in progress at
            once; more registrations wait their turn in order.
        """
        self._startConnection = startConnection
        self._listServices = listServices
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
        self._connectDeadlines[registration] = self.clock.seconds() + self._timeout
        if self._connectTimer is None:
            self._connectTimer = self.clock.callLater(self._timeout, self._connectTimeouts)
        self._waitingToConnect.append(registration)
        self._startConnections()
        return registration.registered

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
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._rounds += 1
        self._fresh = False
        batch = list(self._pending)
        self._listing = self._listServices()
        self._listing.addCallbacks(
            self._listed,
            self._listingFailed,
            callbackArgs=(batch, self._rounds, self.clock.seconds()),
            errbackArgs=(batch,),
        )

    def _listed(self, services, batch, number, started):
        self._listing = None
        now = self.clock.seconds()
        confirmed = []
        # Listed registrations written later than this wait for the next
        # listing (see CONFIRM_AFTER).
        writtenBy = started - CONFIRM_AFTER
        for registration in batch:
            if registration not in self._pending:
                continue
            if registration._closeReason is not None:
                if registration._closedInRound < number:
                    del self._pending[registration]
                    if registration._orphanIn(services):
                        registration._confirmOrphan()
                    else:
                        registration._fail(self._whyClosed(registration, services))
            elif registration._listed(services):
                if registration._writtenAt <= writtenBy:
                    del self._pending[registration]
                    confirmed.append(registration)
            elif now - registration._writtenAt >= self._timeout:
                del self._pending[registration]
                registration._fail(
                    Failure(
                        RegistryTimeout(
                            "the registration was not listed by the registry within %g s"
                            % (self._timeout,)
                        )
                    )
                )
        for registration in confirmed:
            self._serviceLog.add(
                LogLevel.info,
                "service {name} registered",
                "{count} services registered",
                registration.name,
            )
        self._serviceLog.flush()
        for registration in confirmed:
            registration._confirm()
        self._next()

    def _ended(self, registration):
        """
        A confirmed registration's connection closed.  Its end is logged
        with the others of the same turn (a registry that goes away closes
        every registration at once), or, for an unregistration, with the
        others in progress, once the last of them ends.
        """
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
            self._serviceLog.flushSoon()

    def _whyClosed(self, registration, services):
        """
        @return: why the registry closed an unconfirmed registration, given
            a listing made after the close.
        @rtype: L{Failure} of L{RegistrationRejected}
        """
        listed = services.get(registration.name)
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

    def _listingFailed(self, reason, batch):
        self._listing = None
        for registration in batch:
            if registration not in self._pending:
                continue
            del self._pending[registration]
            if registration._closeReason is None:
                registration._fail(reason)
            else:
                registration._fail(
                    Failure(
                        RegistrationRejected(
                            registration.name,
                            "the registry closed the connection (%s), and "
                            "listing the services to find out why failed: %s"
                            % (
                                registration._closeReason.getErrorMessage(),
                                reason.getErrorMessage(),
                            ),
                        )
                    )
                )
        self._next()

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
