"""
The find port (6702): one query line out, one answer in, read to the end
of the connection.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure

from txinferno._filelimit import explainOpenFileLimit
from txinferno._keepalive import enableKeepAlive
from txinferno.errors import AnswerTooLarge, MalformedAnswer, RegistryTimeout
from txinferno.wire.rules import Services
from txinferno.wire.words import decode, quote, splitLines, splitWords

__all__ = [
    "DEFAULT_FIND_TIMEOUT",
    "DEFAULT_MAX_ANSWER_SIZE",
    "parseAnswer",
    "FindClientProtocol",
    "FindClientFactory",
    "runQuery",
]

DEFAULT_FIND_TIMEOUT = 10.0
"""
Seconds a query may take, connection included.
"""

DEFAULT_MAX_ANSWER_SIZE = 16 * 1024 * 1024
"""
The largest answer, in bytes, that a query accepts.
"""


def _linesAndSplitter(data):
    """
    Cut an answer into lines, and choose how to split a line into words.

    An answer in plain ASCII without quotes (the usual one) is cut with
    L{str.split}, and its lines at single spaces when nothing else
    separates words there; any other answer goes through the quote-aware
    L{splitLines} and L{splitWords}.  Both give the same words.

    @type data: L{bytes}
    @return: the lines, the bytes after the last complete line, and a
        callable splitting one line into words.
    """
    if b"'" in data or not data.isascii():
        lines, rest = splitLines(data)
        return lines, rest, splitWords
    text = data.decode("ascii")
    lines = text.split("\n")
    rest = lines.pop().encode("ascii")
    if (
        "\t" in text
        or "  " in text
        or "\n\n" in text
        or "\n " in text
        or " \n" in text
        or text.startswith((" ", "\n"))
    ):
        return lines, rest, splitWords
    return lines, rest, _splitAtSpaces


def _splitAtSpaces(line):
    return line.split(" ")


def parseAnswer(data: bytes) -> Services:
    """
    Parse a whole answer of the find port: one line per service,
    C{NAME ATTR VALUE...}, lines cut by newlines outside quotes.

    @type data: L{bytes}

    @raise MalformedAnswer: for bytes after the last newline, an empty
        line, a line with an even number of words, or a service listed
        twice.

    @return: each service's attributes by name.
    @rtype: L{dict} of L{str} to L{dict} of L{str} to L{str}
    """
    lines, rest, split = _linesAndSplitter(data)
    if rest:
        raise MalformedAnswer(
            "answer ends with %d bytes that are not a complete line: %r" % (len(rest), rest[:80])
        )
    services = {}
    for number, line in enumerate(lines, 1):
        words = split(line)
        if len(words) % 2 == 0:
            raise MalformedAnswer(
                "line %d of the answer has %d words, not a name and "
                "(attr, value) pairs: %r" % (number, len(words), _asBytes(line)[:80])
            )
        name = words[0]
        if name in services:
            raise MalformedAnswer(
                "line %d of the answer lists service %r a second time" % (number, name)
            )
        services[name] = dict(zip(words[1::2], words[2::2]))
    return services


def _asBytes(line):
    return line.encode("ascii") if isinstance(line, str) else line


class FindClientProtocol(Protocol):
    """
    Send one query, gather the answer until the registry closes, and fire
    L{answer}.

    @ivar answer: fires with the parsed answer (see L{parseAnswer}) or
        fails with L{MalformedAnswer}, L{AnswerTooLarge} or the connection
        error; cancelling it aborts the connection.
    @type answer: L{Deferred}
    """

    def __init__(self, query: bytes, maxAnswerSize: int) -> None:
        """
        @param query: the query line, newline included.
        @type query: L{bytes}
        @param maxAnswerSize: the largest answer accepted, in bytes.
        """
        self._query = query
        self._maxAnswerSize = maxAnswerSize
        self._received: list[bytes] = []
        self._size = 0
        self._error: Exception | None = None
        self.answer: defer.Deferred[Services] = defer.Deferred(lambda d: self._abort())

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        enableKeepAlive(transport)
        transport.write(self._query)

    def _abort(self):
        if self.transport is not None:
            self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._error is not None:
            return
        self._size += len(data)
        if self._size > self._maxAnswerSize:
            self._error = AnswerTooLarge(
                "answer over the limit of %d bytes" % (self._maxAnswerSize,)
            )
            self._received = []
            self._abort()
            return
        self._received.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.answer.called:
            return
        result: Services | Failure = reason
        if self._error is not None:
            result = Failure(self._error)
        elif reason.check(ConnectionDone):
            try:
                result = parseAnswer(b"".join(self._received))
            except MalformedAnswer:
                result = Failure()
        self._received = []
        if isinstance(result, Failure):
            self.answer.errback(result)
        else:
            self.answer.callback(result)


class FindClientFactory(ClientFactory):
    """
    Builds the single L{FindClientProtocol} of one query.

    """

    noisy = False

    def __init__(self, query: bytes, maxAnswerSize: int = DEFAULT_MAX_ANSWER_SIZE) -> None:
        """
        @param query: the query line, newline included.
        @type query: L{bytes}
        @param maxAnswerSize: the largest answer accepted, in bytes.
        """
        self._query = query
        self._maxAnswerSize = maxAnswerSize

    def buildProtocol(self, addr: IAddress | None) -> FindClientProtocol:
        return FindClientProtocol(self._query, self._maxAnswerSize)


def runQuery(
    endpoint: IStreamClientEndpoint,
    query: bytes,
    clock: IReactorTime,
    timeout: float = DEFAULT_FIND_TIMEOUT,
    maxAnswerSize: int = DEFAULT_MAX_ANSWER_SIZE,
) -> defer.Deferred[Services]:
    """
    Run one query through C{endpoint}.

    @param endpoint: the find port.
    @type endpoint: L{IStreamClientEndpoint}
    @param query: the query line, newline included (already checked).
    @type query: L{bytes}
    @param clock: times the query.
    @type clock: L{IReactorTime}
    @param timeout: seconds the whole query, connection included, may
        take; then the connection is aborted.
    @param maxAnswerSize: the largest answer accepted, in bytes.

    @return: a L{Deferred} that fires with each matching service's
        attributes by name, or fails with L{RegistryTimeout},
        L{MalformedAnswer}, L{AnswerTooLarge} or the connection error.
        Cancelling it aborts the query.
    """

    def timedOut(result, timeout):
        return Failure(
            RegistryTimeout(
                "the registry did not answer the query %s within %g s"
                % (quote(decode(query).rstrip("\n")), timeout)
            )
        )

    d: defer.Deferred[Any] = endpoint.connect(FindClientFactory(query, maxAnswerSize))
    d.addErrback(explainOpenFileLimit)
    d.addCallback(lambda protocol: protocol.answer)
    d.addTimeout(timeout, clock, onTimeoutCancel=timedOut)
    return d
