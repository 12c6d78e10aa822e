"""
Health checks of services, and the L{HealthMonitor} that runs one and
decides, with rise and fall counts, whether its service is passing or
failing.

Three checks are built in, each an L{IHealthCheck}:

    - L{TCPConnectCheck}: a TCP connection can be made (and is closed at
      once);
    - L{HTTPGetCheck}: a C{GET} of a URL answers with a 2xx or 3xx status;
    - L{CommandCheck}: a command exits with status 0 (run through
      C{spawnProcess}, its standard input closed, its output kept up to
      L{MAX_OUTPUT} bytes for the failure message, killed at the timeout).

L{checkFromString} reads one from a description such as
C{tcp:127.0.0.1:22 interval=5}, C{http://127.0.0.1:8080/health rise=3} or
C{exec:/usr/bin/pg_isready -q timeout=2}.
"""

import math
import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from constantly import NamedConstant, Names
from twisted.internet import error
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS
from zope.interface import implementer

from txinferno._processgroup import inOwnGroup, killGroup
from txinferno.errors import HealthCheckFailed, HealthCheckTimedOut
from txinferno.interfaces import IHealthCheck
from txinferno.wire.words import splitWords

__all__ = [
    "HealthState",
    "HealthMonitor",
    "TCPConnectCheck",
    "HTTPGetCheck",
    "CommandCheck",
    "checkFromString",
    "MAX_OUTPUT",
]

INTERVAL = 10.0
"""
Default seconds between the end of one run of a check and the next.
"""

TIMEOUT = 5.0
"""
Default seconds a run of a check may take.
"""

RISE = 2
"""
Default number of consecutive passes that turn a failing check passing.
"""

FALL = 3
"""
Default number of consecutive failures that turn a passing check failing.
"""

MAX_OUTPUT = 4096
"""
Bytes of a command's output (standard output and error together) kept for
its failure message; the rest is read and dropped.
"""


class _CheckOptions:
    """
    The timing every built-in check has: C{interval}, C{timeout}, C{rise}
    and C{fall} (see L{IHealthCheck}).
    """

    def __init__(self, interval: float, timeout: float, rise: int, fall: int) -> None:
        """
        @raise ValueError: for a C{interval} or C{timeout} that is not a
            positive number, or a C{rise} or C{fall} that is not a positive
            whole number.
        """
        for option, value in (("interval", interval), ("timeout", timeout)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(
                    "%s must be a positive number of seconds, not %r" % (option, value)
                )
        for option, value in (("rise", rise), ("fall", fall)):
            if not isinstance(value, int) or value < 1:
                raise ValueError("%s must be a positive whole number, not %r" % (option, value))
        self.interval = float(interval)
        self.timeout = float(timeout)
        self.rise = rise
        self.fall = fall

    description: str

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self.description)


class _Close(Protocol):
    """
    Closes its connection as soon as it is made.
    """

    def connectionMade(self):
        self.transport.loseConnection()


@implementer(IHealthCheck)
class TCPConnectCheck(_CheckOptions):
    """
    Passes when a TCP connection to a host and port can be made; the
    connection is closed at once, nothing is sent.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        *,
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
        rise: int = RISE,
        fall: int = FALL,
    ) -> None:
        """
        @param reactor: an L{IReactorTCP} (and L{IReactorTime} for host
            names, resolved at each run).
        @param host: a host name or an IPv4 or IPv6 address.
        @param port: the TCP port.
        @raise ValueError: for an empty host, a port outside 1-65535, or bad
            timing (see L{_CheckOptions}).
        """
        _CheckOptions.__init__(self, interval, timeout, rise, fall)
        if not host:
            raise ValueError("tcp check: empty host")
        if not 0 < port < 65536:
            raise ValueError("tcp check: port %r is outside 1-65535" % (port,))
        self.host = host
        self.port = port
        self.description = "tcp:%s:%d" % ("[%s]" % host if ":" in host else host, port)
        self._endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)

    def check(self) -> Deferred[None]:
        """
        Connect once.

        @return: a L{Deferred} that fires with L{None} once connected, or
            fails with the connection error (such as
            L{twisted.internet.error.ConnectionRefusedError}).
        """
        return self._endpoint.connect(Factory.forProtocol(_Close)).addCallback(lambda _: None)


class _DiscardBody(Protocol):
    """
    Closes a response body's connection as soon as it is delivered: the
    status is all a check needs.
    """

    def connectionMade(self):
        self.transport.stopProducing()


@implementer(IHealthCheck)
class HTTPGetCheck(_CheckOptions):
    """
    Passes when a C{GET} of a URL answers with a 2xx or 3xx status
    (redirects are not followed); the body is not read.
    """

    def __init__(
        self,
        reactor: Any,
        url: str,
        *,
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
        rise: int = RISE,
        fall: int = FALL,
    ) -> None:
        """
        @param reactor: the reactor the request is made with.
        @param url: an C{http://} or C{https://} URL.
        @raise ValueError: for another scheme, a URL without a host, an
            C{https} URL where Twisted has no TLS (no C{pyOpenSSL} and
            C{service_identity}), or bad timing.
        """
        _CheckOptions.__init__(self, interval, timeout, rise, fall)
        _checkURL(url)
        if url.startswith("https:"):
            try:
                BrowserLikePolicyForHTTPS().creatorForNetloc(b"localhost", 443)
            except NotImplementedError:
                raise ValueError(
                    "http check: %r needs TLS, which needs pyOpenSSL and "
                    "service_identity (pip install 'twisted[tls]')" % (url,)
                ) from None
        self.url = url
        self.description = url
        self._agent = Agent(reactor, connectTimeout=timeout)

    def check(self) -> Deferred[None]:
        """
        Make one request.

        @return: a L{Deferred} that fires with L{None} for a 2xx or 3xx
            status, or fails with L{HealthCheckFailed} naming the status, or
            with the connection error.
        """
        return self._agent.request(b"GET", self.url.encode("ascii")).addCallback(self._answered)

    def _answered(self, response):
        response.deliverBody(_DiscardBody())
        if not 200 <= response.code < 400:
            raise HealthCheckFailed(
                "HTTP %d %s" % (response.code, response.phrase.decode("latin-1"))
            )


def _checkURL(url):
    """
    @raise ValueError: unless C{url} is an C{http} or C{https} URL, with a
        host, in ASCII.
    """
    try:
        url.encode("ascii")
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks the port number
    except (UnicodeError, ValueError) as e:
        raise ValueError("http check: bad URL %r: %s" % (url, e)) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("http check: %r is not an http:// or https:// URL with a host" % (url,))


class _CheckProcess(ProcessProtocol):
    """
    One run of a command: its standard input closed at once, its output
    kept up to L{MAX_OUTPUT} bytes.

    @ivar ended: fires with the reason the process ended.
    """

    def __init__(self):
        self.ended = Deferred()
        self._output = []
        self._kept = 0

    def connectionMade(self):
        self.transport.closeStdin()

    def childDataReceived(self, childFD, data):
        room = MAX_OUTPUT - self._kept
        if room > 0:
            self._output.append(data[:room])
            self._kept += min(room, len(data))

    def processEnded(self, reason):
        self.ended.callback(reason)

    def output(self):
        """
        @return: the output kept, decoded, without trailing blanks.
        """
        return b"".join(self._output).decode("utf-8", "replace").rstrip()


@implementer(IHealthCheck)
class CommandCheck(_CheckOptions):
    """
    Passes when a command exits with status 0.  It runs through
    C{spawnProcess} with the agent's environment and its standard input
    closed, as the leader of a process group of its own where the system
    has C{setsid}; a run cancelled (at the timeout) kills the group with
    C{SIGKILL}, the command and what it started.  A failure's message has
    the exit status and the command's first L{MAX_OUTPUT} bytes of output.
    """

    def __init__(
        self,
        reactor: Any,
        argv: Sequence[str],
        *,
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
        rise: int = RISE,
        fall: int = FALL,
    ) -> None:
        """
        @param reactor: an L{IReactorProcess}.
        @param argv: the command and its arguments; a command without a
            C{/} is looked up on C{PATH} now.
        @raise ValueError: for an empty C{argv}, a command that is not found
            or not executable, or bad timing.
        """
        _CheckOptions.__init__(self, interval, timeout, rise, fall)
        argv = list(argv)
        if not argv or not argv[0]:
            raise ValueError("exec check: no command given")
        executable = shutil.which(argv[0])
        if executable is None:
            raise ValueError(
                "exec check: %r is not an executable file (or not on PATH)" % (argv[0],)
            )
        self.argv = argv
        self.executable = executable
        self.description = "exec:" + " ".join(argv)
        self._reactor = reactor

    def check(self) -> Deferred[None]:
        """
        Run the command once.

        @return: a L{Deferred} that fires with L{None} when it exits with
            status 0, or fails with L{HealthCheckFailed} giving its status
            (or signal) and output.  Cancelling it kills the process.
        """
        process = _CheckProcess()
        argv = inOwnGroup([self.executable, *self.argv[1:]])
        transport = self._reactor.spawnProcess(process, argv[0], argv, env=dict(os.environ))

        def kill(d):
            killGroup(transport)

        done: Deferred[None] = Deferred(kill)

        def deliver(result):
            # A cancelled run has already failed with CancelledError; the
            # killed process's end then has nobody to tell.
            if done.called:
                return None
            if isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(result)

        process.ended.addBoth(self._ended, process).addBoth(deliver)
        return done

    def _ended(self, reason, process):
        if reason.check(error.ProcessDone):
            return None
        status = reason.value
        if status.signal is not None:
            why = "killed by signal %d" % (status.signal,)
        else:
            why = "exit status %d" % (status.exitCode,)
        output = process.output()
        raise HealthCheckFailed("%s: %s" % (why, output) if output else why)


class HealthState(Names):
    """
    The states of a L{HealthMonitor}.
    """

    unknown = NamedConstant()
    """
    No run has ended yet.
    """

    passing = NamedConstant()
    """
    The first run passed, or C{rise} consecutive runs passed since the
    check was failing.
    """

    failing = NamedConstant()
    """
    The first run failed, or C{fall} consecutive runs failed since the
    check was passing.
    """


class HealthMonitor:
    """
    Runs one check every C{interval} seconds while started, each run
    cancelled (and counted as failed, with L{HealthCheckTimedOut}) after
    C{timeout} seconds, and tells its observer when the state changes.

    The first verdict comes from the first run: C{unknown} turns C{passing}
    or C{failing} at once.  From then on C{rise} consecutive passes are
    needed to turn C{failing} into C{passing}, and C{fall} consecutive
    failures to turn C{passing} into C{failing}: a flapping check does not
    change the state at every run.  Stopping keeps the state (the service
    did not change because its monitor paused); starting again runs the
    check at once.

    @ivar state: the current L{HealthState}.
    @ivar reason: the L{Failure} of the last failed run, or L{None} when the
        last run passed (or none ended yet).
    """

    def __init__(
        self,
        check: IHealthCheck,
        clock: IReactorTime,
        stateChanged: Callable[[NamedConstant, Failure | None], None],
    ) -> None:
        """
        @param check: the check to run.
        @param clock: an L{IReactorTime} for the interval and the timeout.
        @param stateChanged: called with the new L{HealthState} and the
            failure of the run that made it C{failing} (L{None} for
            C{passing}) at each change of state.
        """
        self.check = check
        self.state = HealthState.unknown
        self.reason: Failure | None = None
        self._clock = clock
        self._stateChanged = stateChanged
        self._passes = 0
        self._failures = 0
        self._running = False
        self._run: Deferred[None] | None = None
        self._next: IDelayedCall | None = None

    def __repr__(self) -> str:
        return "<HealthMonitor %s %s>" % (self.check.description, self.state.name)

    def start(self) -> None:
        """
        Run the check now and every C{interval} seconds after each run ends.
        """
        if not self._running:
            self._running = True
            self._runOnce()

    def stop(self) -> None:
        """
        Stop running the check: the run in progress is cancelled (it does
        not count) and no other starts.  The state is kept.
        """
        self._running = False
        if self._next is not None:
            self._next.cancel()
            self._next = None
        run, self._run = self._run, None
        if run is not None:
            run.cancel()

    def _runOnce(self):
        self._next = None
        run = self._run = maybeDeferred(self.check.check)
        run.addTimeout(self.check.timeout, self._clock, onTimeoutCancel=self._timedOut)
        run.addBoth(self._ended, run)

    def _timedOut(self, result, timeout):
        raise HealthCheckTimedOut("no answer within %g seconds" % (timeout,))

    def _ended(self, result, run):
        """
        A run ended: count it, and change state when the count says so.
        """
        if run is not self._run:
            return
        self._schedule()
        if isinstance(result, Failure):
            self.reason = result
            self._failures += 1
            self._passes = 0
            verdict, opposite, streak, needed = (
                HealthState.failing,
                HealthState.passing,
                self._failures,
                self.check.fall,
            )
        else:
            self.reason = None
            self._passes += 1
            self._failures = 0
            verdict, opposite, streak, needed = (
                HealthState.passing,
                HealthState.failing,
                self._passes,
                self.check.rise,
            )
        if self.state is HealthState.unknown or (self.state is opposite and streak >= needed):
            self._change(verdict)

    def _change(self, state):
        self.state = state
        self._stateChanged(state, self.reason)

    def _schedule(self):
        self._run = None
        if self._running and self._next is None:
            self._next = self._clock.callLater(self.check.interval, self._runOnce)


_OPTIONS = {"interval": float, "timeout": float, "rise": int, "fall": int}


def checkFromString(reactor: Any, description: str) -> IHealthCheck:
    """
    Make a check from its description: words quoted as on the registry's
    wire, the first saying what to check, and trailing C{OPTION=VALUE}
    words setting C{interval}, C{timeout}, C{rise} and C{fall}:

        - C{tcp:HOST:PORT} (an IPv6 address in brackets: C{tcp:[::1]:22}):
          a L{TCPConnectCheck};
        - C{http://...} or C{https://...}: an L{HTTPGetCheck};
        - C{exec:COMMAND ARG...} (or C{exec: COMMAND ARG...}): a
          L{CommandCheck}; its arguments are the words up to the options.

    For example C{http://127.0.0.1:8080/health interval=5 fall=2}.

    @param reactor: the reactor the check runs with.
    @raise ValueError: for an unknown kind, a malformed address or URL, an
        unknown option, an option value that is not a positive number,
        words a TCP or HTTP check does not take, or a command not found.
    """
    words = splitWords(description)
    options: dict[str, Any] = {}
    while len(words) > 1 and "=" in words[-1]:
        option, value = words[-1].split("=", 1)
        if option not in _OPTIONS:
            break
        if option in options:
            raise ValueError("check %r: %s given twice" % (description, option))
        try:
            options[option] = _OPTIONS[option](value)
        except ValueError:
            raise ValueError(
                "check %r: %s=%s is not a %s"
                % (
                    description,
                    option,
                    value,
                    "number" if _OPTIONS[option] is float else "whole number",
                )
            ) from None
        words.pop()
    if not words:
        raise ValueError("empty check: give tcp:HOST:PORT, http://URL or exec:COMMAND")
    what, rest = words[0], words[1:]
    if what.startswith("exec:"):
        argv = ([what[5:]] if what[5:] else []) + rest
        return CommandCheck(reactor, argv, **options)
    if rest:
        raise ValueError(
            "check %r: unexpected words %r (options are %s)"
            % (description, rest, ", ".join(o + "=" for o in _OPTIONS))
        )
    if what.startswith("tcp:"):
        host, port = _hostPort(what[4:], description)
        return TCPConnectCheck(reactor, host, port, **options)
    if what.startswith(("http://", "https://")):
        return HTTPGetCheck(reactor, what, **options)
    raise ValueError(
        "check %r: unknown kind: give tcp:HOST:PORT, http://URL or exec:COMMAND" % (description,)
    )


def _hostPort(address, description):
    """
    Read C{HOST:PORT} or C{[IPV6]:PORT}.

    @raise ValueError: when it is not that, or the port is not a number.
    """
    host, colon, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit():
        raise ValueError("check %r: give tcp:HOST:PORT" % (description,))
    return host, int(port)
