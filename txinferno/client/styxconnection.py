"""
The Styx connection plugin: a registry reached over its own protocol,
Styx (9P2000), as Inferno programs reach it, on one connection.

The registry is a file server (registry(4)).  A registration is a fid
walked to C{new}, opened for writing and written: the server answers the
write, with the registry's own error text when it refuses it, so a
registration is known accepted or rejected at once.  Updates are further
writes on that fid; clunking it removes the service (unless it persists);
a Tremove removes even a persistent one.  A query writes its pairs on a
fid of C{find} and reads the answer from offset 0 until a read of 0 bytes.
The change stream keeps one read outstanding on C{event}.

Everything shares one connection, opened when first needed and closed once
nothing uses it.  When it is lost it is reopened with backoff, and every
registration and change stream is restored on the new one.
"""

import re

from twisted.internet import defer, task
from twisted.internet.endpoints import clientFromString
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno.client._burstlog import BurstLog
from txinferno.client.event import DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY
from txinferno.client.find import DEFAULT_FIND_TIMEOUT, DEFAULT_MAX_ANSWER_SIZE, parseAnswer
from txinferno.client.styx import DEFAULT_MAX_MESSAGE_SIZE, StyxClientFactory
from txinferno.errors import (
    AnswerTooLarge,
    RegistrationLost,
    RegistrationRejected,
    RegistryError,
    RegistryTimeout,
    RegistryUnavailable,
)
from txinferno.interfaces import IChangeStream, IRegistration, IRegistryConnection
from txinferno.wire.description import parseStyxDescription
from txinferno.wire.persist import persists
from txinferno.wire.rules import checkPositiveOptions, queryLine, registrationLine, updateLine
from txinferno.wire.styx import IOHDRSZ, ORDWR, OREAD, OWRITE, Topen, Tstat, Twalk, Twrite

__all__ = [
    "StyxRegistryConnection",
    "StyxRegistration",
    "StyxChangeStream",
    "styxConnectionFromString",
]

_VERSION = re.compile(rb"[0-9]{8,}\n?")

RESTORE_RETRY_DELAY = 0.1
"""
Seconds before a registration refused as a C{duplicate service name} while
being restored is tried again: the registry may not have removed the
service its lost connection held yet (Inferno takes 0.16 s for 500).
"""

_DUPLICATE = "duplicate service name"

_NEW = ("new",)

_GONE = "buggy program!"
"""
The registry's answer to a write on the fid of a service that was removed.
"""


def _ignore(reason):
    return None


def _text(data):
    """
    @return: C{data}, a line of the wire, without its newline.
    """
    return data[:-1]


@implementer(IRegistryConnection)
class StyxRegistryConnection:
    """
    A registry reached over Styx, on one connection.

    @ivar description: the registry description string.
    @ivar user: the attach name: the owner of the services registered.
    @ivar findTimeout: seconds a registration or a query may take, the
        wait for the connection included, and seconds the server has to
        answer each request.
    """

    _log = Logger()

    def __init__(
        self,
        reactor,
        endpoint,
        user,
        description=None,
        findTimeout=DEFAULT_FIND_TIMEOUT,
        maxAnswerSize=DEFAULT_MAX_ANSWER_SIZE,
        initialDelay=DEFAULT_INITIAL_DELAY,
        maxDelay=DEFAULT_MAX_DELAY,
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        probeInterval=None,
        probeTimeout=None,
        clock=None,
    ):
        """
        @param reactor: connects the endpoint given as a string.
        @param endpoint: the registry's Styx port.
        @type endpoint: L{IStreamClientEndpoint}, or a client endpoint
            string for L{clientFromString} (C{tcp:host=H:port=6675},
            C{tls:...}, C{unix:path=...}).
        @param user: the attach name.
        @type user: L{str}
        @param description: what L{description} says; by default the
            endpoint.
        @param findTimeout: see L{findTimeout}.
        @param maxAnswerSize: the largest answer, in bytes, a query accepts
            (L{AnswerTooLarge} beyond).
        @param initialDelay: seconds before the first reconnection attempt.
        @param maxDelay: the longest wait between reconnection attempts.
        @param maxMessageSize: the message size proposed to the server (it
            may answer with a smaller one); a registration, update or
            query must fit in one write of it.
        @param probeInterval: seconds between liveness probes (a Tstat of
            the root) of a ready change stream, or L{None} for none.
        @param probeTimeout: seconds a probe may take; by default
            C{findTimeout}.
        @param clock: times everything; by default C{reactor}.
        @type clock: L{IReactorTime}
        @raise ValueError: for a timeout, delay, size or interval that is
            not positive, an empty user or a bad endpoint string.
        """
        checkPositiveOptions(
            findTimeout=findTimeout,
            maxAnswerSize=maxAnswerSize,
            initialDelay=initialDelay,
            maxDelay=maxDelay,
            maxMessageSize=maxMessageSize,
            probeInterval=probeInterval,
            probeTimeout=probeTimeout,
        )
        if not user:
            raise ValueError("the attach user name must not be empty")
        if description is None:
            description = "styx:endpoint=%s:user=%s" % (endpoint, user)
        if isinstance(endpoint, str):
            endpoint = clientFromString(reactor, endpoint)
        self.description = description
        self.user = user
        self.findTimeout = findTimeout
        self._endpoint = endpoint
        self._maxAnswerSize = maxAnswerSize
        self._initialDelay = initialDelay
        self._maxDelay = maxDelay
        self._maxMessageSize = maxMessageSize
        self._probeInterval = probeInterval
        self._probeTimeout = probeTimeout or findTimeout
        self.clock = clock or reactor
        self._factory = None
        self._registrations = {}
        self._streams = {}
        self._waiters = []
        self._inProgress = 0
        self._idleCall = None
        self._serviceLog = BurstLog(self._log, self.clock)

    def __repr__(self):
        return "<StyxRegistryConnection %s>" % (self.description,)

    @property
    def maxWrite(self):
        """
        The longest registration, update or query, in bytes: one write of
        the message size proposed.
        """
        return self._maxMessageSize - IOHDRSZ

    # The one connection.

    def _readyProtocol(self):
        """
        @return: the ready L{txinferno.client.styx.StyxClientProtocol},
            connecting if need be, or L{None} until there is one: none
            while the current one is being lost (its requests would fail
            with its loss; what waits is sent on the next one).
        """
        self._connect()
        protocol = self._factory.protocol
        if protocol is not None and protocol.usable:
            return protocol
        return None

    def _protocol(self):
        """
        @return: a L{Deferred} that fires with the ready
            L{txinferno.client.styx.StyxClientProtocol}, connecting if
            need be, or fails with why the next attempt failed.
        """
        protocol = self._readyProtocol()
        if protocol is not None:
            return defer.succeed(protocol)
        d = defer.Deferred(self._waiters.remove)
        self._waiters.append(d)
        return d

    def _connect(self):
        if self._idleCall is not None:
            self._idleCall.cancel()
            self._idleCall = None
        if self._factory is None:
            self._factory = StyxClientFactory(
                self._endpoint,
                self.user,
                self,
                self.clock,
                self._initialDelay,
                self._maxDelay,
                self._maxMessageSize,
                self.findTimeout,
            )
            self._factory.start()

    def _track(self, d):
        """
        Keep the connection open while C{d} runs.
        """
        self._inProgress += 1

        def done(result):
            self._inProgress -= 1
            self._idleMaybe()
            return result

        return d.addBoth(done)

    def _idleMaybe(self):
        """
        Close the connection, on the next turn, if nothing uses it then.
        """
        if self._factory is not None and self._idleCall is None and self._idle():
            self._idleCall = self.clock.callLater(0, self._closeIfIdle)

    def _idle(self):
        return not (self._registrations or self._streams or self._waiters or self._inProgress)

    def _closeIfIdle(self):
        self._idleCall = None
        if self._idle():
            factory, self._factory = self._factory, None
            self._log.debug(
                "closing the unused Styx connection to {registry}", registry=self.description
            )
            factory.stop()

    # What the factory tells.

    def connectionReady(self, protocol):
        self._log.info("Styx connection to {registry} ready", registry=self.description)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(protocol)
        for registration in list(self._registrations):
            registration._restore(protocol)
        for stream in list(self._streams):
            stream._open(protocol)

    def connectionFailed(self, reason):
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(reason)
        self._idleMaybe()

    def connectionLost(self, reason):
        for registration in list(self._registrations):
            registration._connectionLost(reason)
        for stream in list(self._streams):
            stream._connectionLost(reason)
        self._idleMaybe()

    # IRegistryConnection

    def _timed(self, coroutine, what):
        """
        Run C{coroutine} (or wait for a L{Deferred}) within L{findTimeout},
        keeping the connection open meanwhile.
        """

        def timedOut(result, timeout):
            return Failure(RegistryTimeout("%s did not complete within %g s" % (what, timeout)))

        d = (
            coroutine
            if isinstance(coroutine, defer.Deferred)
            else defer.Deferred.fromCoroutine(coroutine)
        )
        d.addTimeout(self.findTimeout, self.clock, onTimeoutCancel=timedOut)
        return self._track(d)

    def register(self, name, attrs):
        """
        Register a service: walk a fid to C{new}, open it for writing and
        write the registration.

        @param name: the service name.
        @type name: L{str}
        @param attrs: its attributes: a mapping, or a sequence of C{(attr,
            value)} pairs.
        @raise ValueError: before anything is sent, for a name or
            attributes the registry would reject, or a registration longer
            than L{maxWrite}.
        @return: a L{Deferred} that fires with a L{StyxRegistration} once
            the registry has accepted the write, or fails with
            L{RegistrationRejected} carrying the registry's own reason
            (such as C{duplicate service name}),
            L{txinferno.errors.RegistryTimeout} after L{findTimeout}, or the
            connection error.  Cancelling it gives up the registration.
        """
        line, pairs = registrationLine(name, attrs)
        self._checkSize(line, "registration")
        return StyxRegistration(self, name, pairs)._establish(_text(line))

    def _checkSize(self, line, what):
        if len(line) - 1 > self.maxWrite:
            raise ValueError(
                "a %s of %d bytes is over the %d one Styx write of %d-byte "
                "messages carries" % (what, len(line) - 1, self.maxWrite, self._maxMessageSize)
            )

    def find(self, attrs):
        """
        Run one query: write it on a fid of C{find} of its own and read the
        answer from offset 0 until a read of 0 bytes.

        @param attrs: the pairs every service found must match (a value of
            C{*} matches any value of an attribute that exists); none lists
            every service.
        @raise ValueError: before anything is sent, for an invalid query.
        @return: a L{Deferred} that fires with each matching service's
            attributes by name, or fails with
            L{txinferno.errors.RegistryTimeout} after L{findTimeout},
            L{txinferno.errors.MalformedAnswer}, L{AnswerTooLarge}, a
            L{RegistryError} with the registry's text, or the connection
            error.  Cancelling it gives the query up.
        """
        line = queryLine(attrs)[0]
        self._checkSize(line, "query")
        return self._timed(self._find(_text(line)), "the query %r" % (line,))

    async def _find(self, query):
        protocol = await self._protocol()
        fid = protocol.allocateFid()
        await protocol.walk(protocol.rootFid, fid, ["find"])
        try:
            await protocol.open(fid, ORDWR if query else OREAD)
            if query:
                await protocol.write(fid, 0, query)
            chunks = []
            offset = 0
            while True:
                data = await protocol.read(fid, offset, protocol.maxIO)
                if not data:
                    break
                offset += len(data)
                if offset > self._maxAnswerSize:
                    raise AnswerTooLarge(
                        "answer over the limit of %d bytes" % (self._maxAnswerSize,)
                    )
                chunks.append(data)
        finally:
            protocol.clunk(fid).addErrback(_ignore)
        return parseAnswer(b"".join(chunks))

    def watch(self, observer):
        """
        Open the change stream: one read kept outstanding on C{event},
        reopened whenever the connection comes back, until it is stopped.

        @type observer: L{txinferno.interfaces.IChangeObserver}
        @return: the stream, already opening.
        @rtype: L{StyxChangeStream}
        """
        stream = StyxChangeStream(self, observer)
        self._streams[stream] = None
        protocol = self._readyProtocol()
        if protocol is not None:
            stream._open(protocol)
        return stream

    def _probe(self, protocol):
        """
        @return: a L{Deferred} that fires once the server answers a Tstat
            of the root within the probe timeout.
        """
        return protocol.request(Tstat, protocol.rootFid, timeout=self._probeTimeout)


@implementer(IRegistration)
class StyxRegistration:
    """
    One service held registered through a fid of the registry's C{new}.

    @ivar name: the service name.
    @ivar attrs: the service's attributes as last sent.
    @type attrs: L{dict}
    @ivar state: C{"registering"}, C{"registered"}, C{"disconnected"}
        (waiting for the connection to come back), C{"restoring"},
        C{"unregistering"} or C{"ended"}.
    """

    __slots__ = (
        "_connection",
        "name",
        "attrs",
        "state",
        "_protocol",
        "_fid",
        "_end",
        "_endWaiters",
        "_lostAt",
        "_attempt",
        "_step",
        "_via",
        "_newFid",
        "_line",
        "_claiming",
    )

    _log = Logger()

    def __init__(self, connection, name, pairs):
        self._connection = connection
        self.name = name
        self.attrs = dict(pairs)
        self.state = "registering"
        self._protocol = None
        self._fid = None
        self._end = None
        self._endWaiters = []
        self._lostAt = None
        self._attempt = None
        self._step = None
        self._via = None
        self._newFid = None
        self._line = None
        self._claiming = False

    def __repr__(self):
        return "<StyxRegistration %r %s>" % (self.name, self.state)

    def _establish(self, line=None):
        """
        Walk a fid to C{new}, open it and write the registration, each
        request answered within the connection's timeout.

        @param line: the registration, checked; by default made from the
            current attributes.
        @return: a L{Deferred} that fires with this registration once the
            registry has accepted the write, or fails with
            L{RegistrationRejected} (the fid is clunked) with the
            registry's text when it refuses the open or the write,
            L{RegistryTimeout} or the connection error; cancelling it gives
            the attempt up.
        """
        if line is None:
            line = _text(registrationLine(self.name, self.attrs)[0])
        self._claiming = False
        attempt = self._attempt = defer.Deferred(self._giveUp)
        connection = self._connection
        # The connection stays open while the attempt runs.
        connection._inProgress += 1
        protocol = connection._readyProtocol()
        if protocol is not None:
            self._walk(protocol, line)
        else:
            self._step = connection._timed(connection._protocol(), "connecting to the registry")
            self._step.addCallbacks(self._walk, self._attemptFailed, callbackArgs=(line,))
        return attempt

    def _walk(self, protocol, line, names=_NEW):
        """
        Walk a new fid to C{names} (C{new}, or the service's own name to
        claim it), then open it for writing and write C{line}: each step
        sent once the one before is answered, since the registry's
        exporter answers the requests of a connection concurrently (spec
        9.14); the registrations of a connection run side by side.
        """
        self._step = None
        if len(line) > protocol.maxIO:
            self._attemptFailed(
                Failure(
                    RegistrationRejected(
                        self.name,
                        "%d bytes do not fit in one write of the server's %d-byte messages"
                        % (len(line), protocol.msize),
                    )
                )
            )
            return
        self._via, self._line = protocol, line
        self._newFid = fid = protocol.allocateFid()
        self._step = protocol.call(Twalk, (protocol.rootFid, fid, names), self._walked)

    def _walked(self, result):
        if isinstance(result, Failure):
            # The protocol freed the fid.
            self._newFid = None
            self._attemptFailed(result)
        else:
            self._step = self._via.call(Topen, (self._newFid, OWRITE), self._opened)

    def _opened(self, result):
        if isinstance(result, Failure):
            self._attemptFailed(result)
        else:
            self._step = self._via.call(Twrite, (self._newFid, 0, self._line), self._written)

    def _written(self, result):
        if isinstance(result, Failure):
            self._attemptFailed(result)
            return
        self._protocol, self._fid = self._via, self._newFid
        self._step = self._via = self._newFid = self._line = None
        if self.state == "registering":
            self._registered()
        self._attemptEnded(self)

    def _attemptEnded(self, result):
        """
        The attempt ended with C{result} (this registration or a
        L{Failure}), unless it was given up.
        """
        attempt, self._attempt = self._attempt, None
        if attempt is None:
            return
        connection = self._connection
        connection._inProgress -= 1
        connection._idleMaybe()
        attempt.callback(result)

    def _attemptFailed(self, reason):
        self._step = None
        protocol, fid = self._via, self._newFid
        self._via = self._newFid = self._line = None
        if fid is not None:
            protocol.clunk(fid).addErrback(_ignore)
        if self._attempt is None:
            return
        if (
            reason.check(RegistryError)
            and reason.value.text == _DUPLICATE
            and not self._claiming
            and persists(self.attrs.get("persist"))
        ):
            # Take over the persistent service of our name that an earlier
            # connection left: walk a fid to it by name, open it for
            # writing (which only its owner may) and write every attribute
            # as an update.
            self._claiming = True
            self._walk(protocol, _text(updateLine(self.attrs)[0]), (self.name,))
            return
        if self._claiming and reason.check(RegistryError):
            reason = Failure(
                RegistrationRejected(
                    self.name,
                    "%s (a persistent service that cannot be taken over: %s)"
                    % (_DUPLICATE, reason.value.text),
                )
            )
        elif reason.check(RegistryError):
            reason = Failure(RegistrationRejected(self.name, reason.value.text))
        self._attemptEnded(reason)

    def _giveUp(self, attempt):
        self._attempt = None
        connection = self._connection
        connection._inProgress -= 1
        connection._idleMaybe()
        step, self._step = self._step, None
        if isinstance(step, defer.Deferred):
            # Still connecting.
            step.cancel()
        elif step is not None:
            protocol, fid = self._via, self._newFid
            self._via = self._newFid = self._line = None
            # A walk given up is clunked by the protocol.
            protocol.giveUp(step)
            if step.cls is not Twalk:
                protocol.clunk(fid).addErrback(_ignore)

    def _registered(self):
        self.state = "registered"
        self._connection._registrations[self] = None
        self._connection._serviceLog.add(
            LogLevel.info, "service {name} registered", "{count} services registered", self.name
        )
        self._connection._serviceLog.flushSoon()

    # The connection's life.

    def _connectionLost(self, reason):
        self._protocol = self._fid = None
        if self.state == "registered":
            self.state = "disconnected"
            self._lostAt = self._connection.clock.seconds()
        elif self.state == "unregistering":
            self._ended(None)

    def _restore(self, protocol):
        if self.state != "disconnected" or protocol.state != "ready":
            return
        self.state = "restoring"
        self._establish().addCallbacks(self._restored, self._restoreFailed, errbackArgs=(protocol,))

    def _restored(self, _):
        if self.state == "restoring":
            self.state = "registered"
            self._connection._serviceLog.add(
                LogLevel.info,
                "service {name} registered again",
                "{count} services registered again",
                self.name,
            )
            self._connection._serviceLog.flushSoon()
        else:
            # Unregistered meanwhile.
            self._protocol.clunk(self._fid).addErrback(_ignore)
            self._protocol = self._fid = None

    def _restoreFailed(self, reason, protocol):
        if self.state != "restoring":
            return
        if protocol.state == "closed" and not reason.check(RegistrationRejected):
            # Lost again: restored on the next connection.
            self.state = "disconnected"
            return
        clock = self._connection.clock
        if (
            reason.check(RegistrationRejected)
            and reason.value.reason == _DUPLICATE
            and clock.seconds() + RESTORE_RETRY_DELAY < self._lostAt + self._connection.findTimeout
        ):
            # Perhaps still held for the lost connection.
            self.state = "disconnected"
            clock.callLater(RESTORE_RETRY_DELAY, self._restore, protocol)
            return
        self._lose("not restored after a reconnection: %s" % (reason.getErrorMessage(),))

    def _lose(self, why):
        self._connection._serviceLog.add(
            LogLevel.warn,
            "registration of service {name} lost: {reason}",
            "{count} registrations lost: {reason}",
            self.name,
            why,
        )
        self._connection._serviceLog.flushSoon()
        self._ended(Failure(RegistrationLost("registration of %r lost: %s" % (self.name, why))))

    def _ended(self, end):
        if self.state == "ended":
            return
        self.state = "ended"
        self._end = end
        self._connection._registrations.pop(self, None)
        self._connection._idleMaybe()
        waiters, self._endWaiters = self._endWaiters, []
        for d in waiters:
            d.callback(None) if end is None else d.errback(end)

    # IRegistration

    def update(self, attrs):
        """
        Add attributes or change their values, in one write.

        @raise ValueError: for invalid attributes, or an update longer than
            one write carries, before anything is sent.
        @raise RegistrationLost: when the registration is gone, being
            removed, or waiting for the connection to come back.
        """
        line, pairs = updateLine(attrs)
        data = _text(line)
        if self.state != "registered":
            raise RegistrationLost("registration of %r is %s" % (self.name, self.state))
        if len(data) > self._protocol.maxIO:
            raise ValueError(
                "an update of %d bytes is over the %d one write carries"
                % (len(data), self._protocol.maxIO)
            )
        self.attrs.update(pairs)
        self._protocol.write(self._fid, 0, data).addErrback(self._updateFailed, self._protocol)

    def _updateFailed(self, reason, protocol):
        if (
            reason.check(RegistryError)
            and reason.value.text == _GONE
            and self.state == "registered"
        ):
            self._protocol.clunk(self._fid).addErrback(_ignore)
            self._protocol = self._fid = None
            self._lose("the service was removed from the registry")
        elif protocol.state != "closed":
            self._log.warn(
                "the registry refused an update of service {name}: {reason}",
                name=self.name,
                reason=reason.getErrorMessage(),
            )

    def unregister(self):
        """
        Clunk the registration's fid, removing the service unless it
        persists.

        @return: a L{Deferred} that fires with L{None} once the registry
            has answered the clunk (at once when the connection is down).
        """
        if self.state == "registered":
            self.state = "unregistering"
            d = self._waitForEnd()
            self._protocol.clunk(self._fid).addBoth(lambda _: self._ended(None))
            self._connection._serviceLog.add(
                LogLevel.info,
                "service {name} unregistered",
                "{count} services unregistered",
                self.name,
            )
            self._connection._serviceLog.flushSoon()
            return d
        if self.state == "unregistering":
            return self._waitForEnd()
        self._ended(None)
        return self.whenLost()

    def remove(self):
        """
        Remove the service from the registry, even a persistent one: a
        Tremove of its fid, which only its owner (the attach name) may do.

        @return: a L{Deferred} that fires with L{None} once removed, or
            fails with L{RegistryError} (C{permission denied}) or
            L{RegistrationLost} when the registration is not held now.  The
            registration ends either way.
        """
        if self.state != "registered":
            return defer.fail(
                RegistrationLost("registration of %r is %s" % (self.name, self.state))
            )
        self.state = "unregistering"
        removing = self._protocol.remove(self._fid)
        removing.addBoth(self._removed)
        return removing.addCallback(lambda _: None)

    def _removed(self, result):
        self._ended(None)
        return result

    def _waitForEnd(self):
        d = defer.Deferred()
        self._endWaiters.append(d)
        return d

    def whenLost(self):
        """
        @return: a L{Deferred} that fires with L{None} when the registration
            ends through L{unregister} or L{remove}, or fails with
            L{RegistrationLost} when it could not be restored after a
            reconnection, or the service was removed by someone else (found
            on the next update).
        """
        if self.state == "ended":
            return defer.succeed(None) if self._end is None else defer.fail(self._end)
        return self._waitForEnd()


@implementer(IChangeStream)
class StyxChangeStream:
    """
    The registry's change stream over Styx: a fid of C{event} with one read
    always outstanding, reopened on each new connection until stopped.

    @ivar state: C{"waiting"} (for a connection), C{"opening"},
        C{"ready"} or C{"stopped"}.
    @ivar connected: L{True} while ready.
    """

    _log = Logger()

    def __init__(self, connection, observer):
        self._connection = connection
        self.observer = observer
        self.state = "waiting"
        self._protocol = None
        self._fid = None
        self._reading = None
        self._probeLoop = None

    def __repr__(self):
        return "<StyxChangeStream %s>" % (self.state,)

    @property
    def connected(self):
        return self.state == "ready"

    def _open(self, protocol):
        if self.state != "waiting":
            return
        self.state = "opening"
        defer.Deferred.fromCoroutine(self._run(protocol)).addErrback(self._failed, protocol)

    async def _run(self, protocol):
        fid = protocol.allocateFid()
        await protocol.walk(protocol.rootFid, fid, ["event"])
        try:
            await protocol.open(fid, OREAD)
        except BaseException:
            protocol.clunk(fid).addErrback(_ignore)
            raise
        if self.state != "opening":
            protocol.clunk(fid).addErrback(_ignore)
            return
        self._protocol, self._fid = protocol, fid
        self.state = "ready"
        self._startProbing(protocol)
        self._log.info("change stream ready")
        self.observer.streamReady()
        offset = 0
        while self.state == "ready":
            self._reading = protocol.read(fid, offset, protocol.maxIO, timeout=None)
            data = await self._reading
            self._reading = None
            offset += len(data)
            if _VERSION.fullmatch(data):
                self.observer.registryChanged(int(data))
            else:
                self._log.warn("ignoring a read of the event file: {data!r}", data=data[:80])

    def _failed(self, reason, protocol):
        if reason.check(defer.CancelledError) or protocol.state == "closed":
            return
        # The registry refused the event file: start again on a new
        # connection, after the backoff.
        protocol.abort(
            RegistryUnavailable(
                "cannot read the registry's event file: %s" % (reason.getErrorMessage(),)
            )
        )

    def _startProbing(self, protocol):
        interval = self._connection._probeInterval
        if interval is None:
            return

        def probe():
            return self._connection._probe(protocol).addErrback(failed)

        def failed(reason):
            if protocol.state != "closed":
                protocol.abort(
                    RegistryUnavailable("liveness probe failed: %s" % (reason.getErrorMessage(),))
                )

        self._probeLoop = task.LoopingCall(probe)
        self._probeLoop.clock = self._connection.clock
        self._probeLoop.start(interval, now=False)

    def _stopProbing(self):
        if self._probeLoop is not None and self._probeLoop.running:
            self._probeLoop.stop()
        self._probeLoop = None

    def _connectionLost(self, reason):
        self._stopProbing()
        self._protocol = self._fid = self._reading = None
        wasReady = self.state == "ready"
        if self.state != "stopped":
            self.state = "waiting"
        if wasReady:
            self._log.info("change stream lost: {reason}", reason=reason.value)
            self.observer.streamLost(reason)

    def stop(self):
        """
        Close the stream: flush its read and clunk its fid.

        @return: a L{Deferred} that fires with L{None} once the fid is
            clunked (at once when the connection is down).
        """
        self.state = "stopped"
        self._stopProbing()
        self._connection._streams.pop(self, None)
        protocol, fid, reading = self._protocol, self._fid, self._reading
        self._protocol = self._fid = self._reading = None
        if protocol is None or protocol.state == "closed":
            self._connection._idleMaybe()
            return defer.succeed(None)
        if reading is not None:
            reading.cancel()
        d = protocol.clunk(fid).addErrback(_ignore)
        return self._connection._track(d)


def styxConnectionFromString(reactor, description, **options):
    """
    Make a Styx connection plugin from a C{styx:} registry description.

    @param description: such as C{styx:192.0.2.1} or
        C{styx:endpoint=tls\\:reg.example\\:6675:user=alice}; see
        L{txinferno.wire.description}.
    @param options: keyword arguments of L{StyxRegistryConnection}.
    @raise ValueError: for a bad description or option.
    @rtype: L{StyxRegistryConnection}
    """
    endpoint, user = parseStyxDescription(description)
    return StyxRegistryConnection(reactor, endpoint, user, description=description, **options)
