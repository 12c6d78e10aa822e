"""
The event port (6703): the registry's change stream, kept open with
L{ReconnectingClientFactory}'s backoff, and optionally checked by a
liveness probe.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import ReconnectingClientFactory, connectionDone
from twisted.logger import Logger, LogLevel
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno._keepalive import enableKeepAlive
from txinferno.client._reconnect import EndpointConnector
from txinferno.errors import MalformedAnswer, RegistryTimeout, RegistryUnavailable
from txinferno.interfaces import IChangeObserver, IChangeStream
from txinferno.wire.rules import READY

__all__ = [
    "DEFAULT_INITIAL_DELAY",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_READY_TIMEOUT",
    "EventClientProtocol",
    "EventClientFactory",
    "sentence",
]

DEFAULT_INITIAL_DELAY = 0.5
"""
Seconds before the first reconnection attempt.
"""

DEFAULT_MAX_DELAY = 5.0
"""
The longest wait, in seconds, between reconnection attempts, before
jitter: a registry back from a restart is found again within about this
long.  Each wait is drawn from a normal distribution of standard deviation
C{jitter} (about 12%) times the delay, so that thousands of clients do not
reconnect in step.
"""

DEFAULT_READY_TIMEOUT = 10.0
"""
Seconds the registry has, once connected, to send C{READY}.
"""

_VERSION = re.compile(rb"[0-9]{8,}")


def sentence(reason: Failure) -> str:
    """
    @return: the message of C{reason} without its final full stop, to be
        followed by more of a sentence.
    """
    return reason.getErrorMessage().rstrip(". ")


class EventClientProtocol(LineOnlyReceiver):
    """
    Read the event port: C{READY}, then one version number per line.

    Before C{READY}, any other line is a protocol error (this is not a
    registry's event port) and the connection is dropped; after it, a line
    that is not a version number is logged and ignored.  A line longer
    than L{MAX_LENGTH} drops the connection.  Nothing is read after our own
    close.

    @ivar ready: whether C{READY} has arrived.
    """

    _log = Logger()
    delimiter = b"\n"
    MAX_LENGTH = 1024

    ready = False

    def __init__(self, stream: EventClientFactory) -> None:
        """
        @param stream: the stream this connection serves.
        @type stream: L{EventClientFactory}
        """
        self._stream = stream
        self._error = None
        self._readyTimer: IDelayedCall | None = None
        self._probeLoop = None
        self._probing = None

    def connectionMade(self) -> None:
        enableKeepAlive(self.transport)
        self._readyTimer = self._stream.clock.callLater(
            self._stream.readyTimeout, self._readyTimedOut
        )

    def _readyTimedOut(self):
        self._readyTimer = None
        self._drop(
            RegistryTimeout(
                "no READY from the event port within %g s" % (self._stream.readyTimeout,)
            )
        )

    def _drop(self, error, level=LogLevel.error):
        """
        Abort the connection; C{error} is the reason the stream reports,
        logged at C{level}.
        """
        self._log.emit(level, "dropping the event connection: {error}", error=error)
        self._error = error
        self.transport.abortConnection()

    def lineReceived(self, line: bytes) -> None:
        if self._error is not None:
            return
        if not self.ready:
            if line != READY:
                self._drop(MalformedAnswer("event port sent %r instead of READY" % (line[:80],)))
                return
            self.ready = True
            if self._readyTimer is not None:
                self._readyTimer.cancel()
                self._readyTimer = None
            self._startProbing()
            self._stream._streamReady(self)
        elif _VERSION.fullmatch(line):
            self._stream.observer.registryChanged(int(line))
        else:
            self._log.warn("ignoring a line from the event port: {line!r}", line=line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._drop(
            MalformedAnswer(
                "event port sent a line over %d bytes: %r..." % (self.MAX_LENGTH, line[:80])
            )
        )

    def _startProbing(self):
        interval = self._stream.probeInterval
        if interval is None:
            return
        self._probeLoop = task.LoopingCall(self._probe)
        self._probeLoop.clock = self._stream.clock
        self._probeLoop.start(interval, now=False)

    def _probe(self):
        probing = self._probing = self._stream.probe()

        def failed(reason):
            if reason.check(defer.CancelledError) or self._error is not None:
                return
            # Not an error of ours: the manager warns that the registry is lost.
            self._drop(
                RegistryUnavailable("liveness probe failed: %s" % (reason.value,)),
                LogLevel.info,
            )

        def done(result):
            self._probing = None
            return result

        return probing.addErrback(failed).addBoth(done)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._readyTimer is not None:
            self._readyTimer.cancel()
            self._readyTimer = None
        if self._probeLoop is not None and self._probeLoop.running:
            self._probeLoop.stop()
        if self._probing is not None:
            self._probing.cancel()
        if self._error is not None:
            reason = Failure(self._error)
        self._stream._connectionLost(self, reason)


@implementer(IChangeStream)
class EventClientFactory(ReconnectingClientFactory):
    """
    The registry's change stream: keeps a connection to the event port
    open, reconnecting with exponential backoff and jitter until
    L{stop}ped, and tells its observer.

    Every C{streamReady} is followed by at most one C{streamLost}; failed
    connection attempts, and connections lost before C{READY}, are logged
    and retried without troubling the observer.

    @ivar observer: told what happens.
    @type observer: L{IChangeObserver}
    @ivar connected: L{True} from C{READY} until the connection is lost.
    @ivar lastFailure: why the last attempt failed or the last connection
        was lost, or L{None}.
    @type lastFailure: L{Failure}
    """

    _log = Logger()
    noisy = False

    connected = False
    lastFailure = None

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        observer: IChangeObserver,
        clock: IReactorTime,
        initialDelay: float = DEFAULT_INITIAL_DELAY,
        maxDelay: float = DEFAULT_MAX_DELAY,
        readyTimeout: float = DEFAULT_READY_TIMEOUT,
        probe: Callable[[], defer.Deferred[Any]] | None = None,
        probeInterval: float | None = None,
    ) -> None:
        """
        @param endpoint: the event port.
        @type endpoint: L{IStreamClientEndpoint}
        @param observer: told when the stream is ready, of each change and
            of each loss.
        @type observer: L{IChangeObserver}
        @param clock: times reconnections, the wait for C{READY} and the
            probe.
        @type clock: L{IReactorTime}
        @param initialDelay: seconds before the first reconnection.
        @param maxDelay: the longest wait between attempts.
        @param readyTimeout: seconds the registry has to send C{READY}.
        @param probe: a callable returning a L{Deferred} (a cheap query,
            with its own timeout); when it fails, the registry is declared
            lost and the connection dropped.
        @param probeInterval: seconds between probes while the stream is
            ready, or L{None} for no probe.
        """
        if probeInterval is not None and probe is None:
            raise ValueError("a probe interval needs a probe")
        self.observer = observer
        # ReconnectingClientFactory has no type for its clock, and an int
        # for its longest delay.
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self.initialDelay = self.delay = initialDelay
        self.maxDelay = maxDelay  # type: ignore[assignment]
        self.readyTimeout = readyTimeout
        self.probe = probe
        self.probeInterval = probeInterval
        self._protocol: EventClientProtocol | None = None
        self._stopped: list[defer.Deferred[None]] = []
        self._connector = EndpointConnector(endpoint, self)

    def start(self) -> None:
        """
        Open the stream.
        """
        self._connector.connect()

    def buildProtocol(self, addr: IAddress | None) -> EventClientProtocol:
        protocol = self._protocol = EventClientProtocol(self)
        protocol.factory = self
        return protocol

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.lastFailure = reason
        ReconnectingClientFactory.clientConnectionFailed(self, connector, reason)
        self._logRetry("cannot reach the event port", reason)

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        ReconnectingClientFactory.clientConnectionLost(self, connector, reason)
        self._logRetry("the event connection was lost", reason)

    def _logRetry(self, what, reason):
        """
        Log what happened, and when the next attempt is due.
        """
        delay = None
        if self.continueTrying and self._callID is not None:
            delay = self._callID.getTime() - self.clock.seconds()
        self._log.info(
            "{what}: {reason}{next}",
            what=what,
            reason=sentence(reason),
            next="" if delay is None else "; next try in %.1f s" % (delay,),
            delay=delay,
        )

    def _streamReady(self, protocol):
        if not self.continueTrying:
            return
        self.resetDelay()
        self.connected = True
        self._log.info("change stream ready")
        self.observer.streamReady()

    def _connectionLost(self, protocol, reason):
        self._protocol = None
        self.lastFailure = reason
        if self.connected:
            self.connected = False
            self.observer.streamLost(reason)
        stopped, self._stopped = self._stopped, []
        for d in stopped:
            d.callback(None)

    def stop(self) -> defer.Deferred[None]:
        """
        Close the stream and stop reopening it.

        @return: a L{Deferred} that fires with L{None} once the connection
            is closed (at once if there is none).
        """
        self.stopTrying()
        if self._connector.state == "connecting":
            self._connector.stopConnecting()
        if self._protocol is None or self._protocol.transport is None:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._stopped.append(d)
        self._protocol.transport.loseConnection()
        return d
