"""
Unit tests for L{txinferno.client.find}: the find port's protocol, answers,
limits and timeout, with Twisted's in-memory transports.
"""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support import MemoryNetwork, NeverAnswers, assertNoResult, failureResultOf, successResultOf
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from txinferno.client.find import FindClientFactory, FindClientProtocol, parseAnswer, runQuery
from txinferno.errors import AnswerTooLarge, MalformedAnswer, RegistryTimeout
from txinferno.wire.words import splitLines, splitWords


@pytest.mark.parametrize(
    "answer, services",
    [
        (b"", {}),
        (
            b"myservice descr 'an example' proto ssh\n",
            {"myservice": {"descr": "an example", "proto": "ssh"}},
        ),
        (
            b"q1 nl 'x\ny' tab 'a\tb' uni \xc3\xbc eq a=b empty '' descr 'it''s a test'\n",
            {
                "q1": {
                    "nl": "x\ny",
                    "tab": "a\tb",
                    "uni": "\u00fc",
                    "eq": "a=b",
                    "empty": "",
                    "descr": "it's a test",
                }
            },
        ),
        (b"fa z 'two words' k 1\nfc k 1\n", {"fa": {"z": "two words", "k": "1"}, "fc": {"k": "1"}}),
        (b"bare\n", {"bare": {}}),
        (b"qb k 'v\r'\n", {"qb": {"k": "v\r"}}),
    ],
)
def test_parseAnswer(answer, services):
    assert parseAnswer(answer) == services


@pytest.mark.parametrize(
    "answer, message",
    [
        (b"svc a 1", "ends with 7 bytes that are not a complete line"),
        (b"svc a 1\nother", "ends with 5 bytes"),
        (b"svc a 'open\n", "not a complete line"),
        (b"svc a\n", "line 1 of the answer has 2 words"),
        (b"ok a 1\n\n", "line 2 of the answer has 0 words"),
        (b"svc a 1\nsvc b 2\n", "lists service 'svc' a second time"),
    ],
)
def test_malformed(answer, message):
    with pytest.raises(MalformedAnswer, match=message):
        parseAnswer(answer)


def connected(query=b"proto ssh\n", maxAnswerSize=1000):
    protocol = FindClientFactory(query, maxAnswerSize).buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_queryInOneWrite():
    """
    The query goes out in one write as soon as the connection is made.
    """
    protocol, transport = connected()
    assert transport.value() == b"proto ssh\n"


def test_answerInPieces():
    """
    The answer may come in pieces of any size; it is parsed at the end.
    """
    protocol, transport = connected()
    for byte in b"fa z 'two\nwords' k 1\nfc k 1\n":
        protocol.dataReceived(bytes([byte]))
    assertNoResult(protocol.answer)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert successResultOf(protocol.answer) == {
        "fa": {"z": "two\nwords", "k": "1"},
        "fc": {"k": "1"},
    }


def test_malformedAnswer():
    protocol, transport = connected()
    protocol.dataReceived(b"svc a 1\ngarbage with no newline")
    protocol.connectionLost(Failure(ConnectionDone()))
    failure = failureResultOf(protocol.answer, MalformedAnswer)
    assert "not a complete line" in str(failure.value)


def test_reset():
    """
    A connection lost uncleanly fails the query with that error, even if
    the bytes so far parse.
    """
    protocol, transport = connected()
    protocol.dataReceived(b"svc a 1\n")
    protocol.connectionLost(Failure(ConnectionLost("reset")))
    failureResultOf(protocol.answer, ConnectionLost)


def test_tooLarge():
    """
    An answer over the limit aborts the connection and fails with
    L{AnswerTooLarge}; what follows is ignored.
    """
    protocol, transport = connected(maxAnswerSize=10)
    protocol.dataReceived(b"svc a 1\n")
    assert not transport.disconnecting
    protocol.dataReceived(b"xyz")
    assert transport.disconnected
    protocol.dataReceived(b"more\n")
    protocol.connectionLost(Failure(ConnectionDone()))
    failure = failureResultOf(protocol.answer, AnswerTooLarge)
    assert "limit of 10 bytes" in str(failure.value)


def test_limitInclusive():
    protocol, transport = connected(maxAnswerSize=8)
    protocol.dataReceived(b"svc a 1\n")
    protocol.connectionLost(Failure(ConnectionDone()))
    assert successResultOf(protocol.answer) == {"svc": {"a": "1"}}


def test_cancelAborts():
    """
    Cancelling the answer aborts the connection; the loss that follows
    fires nothing more.
    """
    protocol, transport = connected()
    protocol.answer.cancel()
    assert transport.disconnected
    protocol.connectionLost(Failure(ConnectionDone()))
    failureResultOf(protocol.answer, CancelledError)


class Network(MemoryNetwork):
    """
    A memory network whose find port (6702) is served by C{serverProtocol}.
    """

    def __init__(self, serverProtocol=NeverAnswers):
        MemoryNetwork.__init__(self)
        self.listen(6702, serverProtocol)
        self.endpoint = self.clientEndpoint(6702)


def test_timeoutWhileConnecting():
    """
    A query whose connection does not complete fails with
    L{RegistryTimeout} after the timeout, and the attempt is stopped.
    """
    network = Network()
    answer = runQuery(network.endpoint, b"\n", network.reactor, timeout=10)
    network.reactor.advance(9.9)
    assertNoResult(answer)
    network.reactor.advance(0.1)
    failure = failureResultOf(answer, RegistryTimeout)
    assert "did not answer the query '' within 10 s" in str(failure.value)
    assert network.reactor.connectors[0].stoppedConnecting


def test_timeoutWithoutAnswer():
    """
    A registry that accepts the query and never answers: the query fails
    with L{RegistryTimeout} after the timeout, and the connection is
    aborted.
    """
    network = Network()
    answer = runQuery(network.endpoint, b"k 1\n", network.reactor, timeout=3)
    pump = network.completer.succeedOnce()
    pump.flush()
    network.reactor.advance(3)
    failureResultOf(answer, RegistryTimeout)
    assert pump.clientIO.disconnecting
    pump.flush()
    assert network.reactor.getDelayedCalls() == []


def test_answerBeforeTimeout():
    class Answering(Protocol):
        def dataReceived(self, data):
            self.transport.write(b"svc " + data)
            self.transport.loseConnection()

    network = Network(Answering)
    answer = runQuery(network.endpoint, b"k 1\n", network.reactor, timeout=3)
    network.completer.succeedOnce().flush()
    assert successResultOf(answer) == {"svc": {"k": "1"}}
    assert network.reactor.getDelayedCalls() == []


def test_protocolIsFindProtocol():
    assert isinstance(FindClientFactory(b"\n").buildProtocol(None), FindClientProtocol)


def _referenceParse(data):
    """
    The answer parsed by the quote-aware rules alone, or the
    L{MalformedAnswer} they lead to (without its message).
    """
    lines, rest = splitLines(data)
    if rest:
        return MalformedAnswer
    services = {}
    for line in lines:
        words = splitWords(line)
        if len(words) % 2 == 0 or words[0] in services:
            return MalformedAnswer
        services[words[0]] = dict(zip(words[1::2], words[2::2]))
    return services


_plain = [b"a", b"b", b"1", b" ", b"  ", b"\r"]
_anything = _plain + [b"\t", b"'", b"\xc3\xa9", b"\xff", b"\n"]


def _answers(alphabet):
    piece = st.sampled_from(alphabet)
    return st.tuples(
        st.lists(st.lists(piece, max_size=8).map(b"".join), max_size=6),
        st.lists(piece, max_size=2).map(b"".join),
    )


@settings(max_examples=500, deadline=None)
@given(st.one_of(_answers(_plain), _answers(_anything)))
@example(([b"a  b 1"], b""))
@example(([b" a b 1"], b""))
@example(([b"a b 1", b" c d 2"], b""))
@example(([b"a b 1 "], b""))
@example(([b"a b 1", b"", b"c d 2"], b""))
@example(([b"a\tb 1"], b""))
@example(([b"a b 1"], b"c"))
def test_parseAnswerAsQuoteAwareRules(answer):
    """
    The fast path for plain answers gives exactly what the quote-aware
    splitter gives, services or L{MalformedAnswer}, for any bytes.
    """
    lines, rest = answer
    data = b"".join(line + b"\n" for line in lines) + rest
    try:
        parsed = parseAnswer(data)
    except MalformedAnswer:
        parsed = MalformedAnswer
    assert parsed == _referenceParse(data)
