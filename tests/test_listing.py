"""
Unit tests for L{txinferno.client._listing}: when rounds of finds run for
waiting registrations, and which finds, on a L{Clock}.
"""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from txinferno.client._listing import (
    BURST_LISTING_DELAY,
    CHECK_RETRY_DELAY,
    CONFIRM_AFTER,
    MAX_QUERIES,
    ListingScheduler,
)
from txinferno.errors import AnswerTooLarge


class Unconfirmed:
    """
    What the scheduler sees of a registration: a name and attributes.
    """

    def __init__(self, name, **attrs):
        self.name = name
        self.attrs = attrs

    def __repr__(self):
        return "<Unconfirmed %s>" % (self.name,)


class Rounds:
    """
    A scheduler whose finds the test answers, and whose decisions it
    records; registrations stay waiting unless the test forgets them.
    """

    def __init__(self):
        self.clock = Clock()
        self.connecting = False
        self.finds = []
        self.decided = []
        self.scheduler = ListingScheduler(
            self.clock, self.find, lambda: self.connecting, self.decide
        )

    def find(self, pairs):
        d = Deferred()
        self.finds.append((list(pairs), d))
        return d

    def decide(self, answers, started):
        self.decided.append((answers, started))

    def roundFor(self, name, **attrs):
        """
        Write one registration and let its round start.

        @return: the registration.
        """
        registration = Unconfirmed(name, **attrs)
        self.scheduler.written(registration)
        self.clock.advance(CONFIRM_AFTER)
        return registration

    def queries(self):
        return [pairs for pairs, d in self.finds if not d.called]

    def answer(self, services):
        """
        Answer the finds running now (not those of the round that may
        follow at once).
        """
        for _pairs, d in list(self.finds):
            if not d.called:
                d.callback(services)


def test_waitsForConfirmAfter():
    """
    A round starts L{CONFIRM_AFTER} after a line is written, not before;
    lines written meanwhile do not put it off (the registrar lets those
    wait for the next round).
    """
    r = Rounds()
    r.scheduler.written(Unconfirmed("a", proto="ssh"))
    r.clock.advance(CONFIRM_AFTER / 2)
    r.scheduler.written(Unconfirmed("b", proto="ssh"))
    r.clock.advance(CONFIRM_AFTER / 4)
    assert r.finds == []
    r.clock.advance(CONFIRM_AFTER / 4)
    assert r.queries() == [[("proto", "ssh")]]


def test_waitsForBurst():
    """
    While registrations are still connecting, a round waits
    L{BURST_LISTING_DELAY}, and a change reported by the registry does not
    hurry it.
    """
    r = Rounds()
    r.connecting = True
    r.scheduler.written(Unconfirmed("a", proto="ssh"))
    r.clock.advance(CONFIRM_AFTER)
    r.scheduler.registryChanged()
    assert r.finds == []
    r.clock.advance(BURST_LISTING_DELAY - CONFIRM_AFTER)
    assert r.queries() == [[("proto", "ssh")]]


def test_registryChangeHurries():
    """
    A round waiting to retry starts when the registry reports a change.
    """
    r = Rounds()
    r.roundFor("a", proto="ssh")
    r.answer({})
    assert len(r.decided) == 1 and len(r.finds) == 1
    r.scheduler.registryChanged()
    assert len(r.finds) == 2


def test_oneRoundAtATime():
    """
    Registrations written during a round wait for it to end; the next
    round follows at once.  Without newcomers it follows after
    L{CHECK_RETRY_DELAY}.
    """
    r = Rounds()
    a, b = Unconfirmed("a", x="1"), Unconfirmed("b", y="2")
    r.scheduler.written(a)
    r.clock.advance(CONFIRM_AFTER)
    r.scheduler.written(b)
    r.clock.advance(CONFIRM_AFTER)
    assert len(r.finds) == 1
    r.answer({})
    assert [len(answers) for answers, started in r.decided] == [1]
    assert sorted(map(tuple, r.queries())) == [(("x", "1"),), (("y", "2"),)]
    r.answer({})
    assert len(r.finds) == 3
    r.clock.advance(CHECK_RETRY_DELAY * 0.9)
    assert len(r.finds) == 3
    r.clock.advance(CHECK_RETRY_DELAY * 0.1)
    assert len(r.finds) == 5


def test_answers():
    """
    C{decide} gets what each find listed under each registration's name,
    or why the find failed, and the time the round started.
    """
    r = Rounds()
    a, b = Unconfirmed("a", x="1"), Unconfirmed("b", y="2")
    r.scheduler.written(a)
    r.scheduler.written(b)
    r.clock.advance(CONFIRM_AFTER)
    [(_, first), (_, second)] = r.finds
    first.callback({"a": {"x": "1"}})
    failure = Failure(ConnectionError("gone"))
    second.errback(failure)
    [(answers, started)] = r.decided
    assert started == CONFIRM_AFTER
    assert {(ans.registration.name, str(ans.listed), ans.failure) for ans in answers} == {
        ("a", "{'x': '1'}", None),
        ("b", "None", failure),
    }


def test_forgottenGoIdle():
    """
    Once every registration is forgotten, no round and no timer is left.
    """
    r = Rounds()
    a = r.roundFor("a", x="1")
    r.scheduler.forget(a)
    r.answer({})
    assert r.decided == [([], CONFIRM_AFTER)]
    assert r.clock.getDelayedCalls() == []
    r.scheduler.written(a)
    r.scheduler.forget(a)
    assert r.clock.getDelayedCalls() == []


def test_closeExplainedByLaterRound():
    """
    A close is explained only by a round started after it, which also
    lists every service.
    """
    r = Rounds()
    a = r.roundFor("a", x="1")
    r.scheduler.closed(a)
    r.answer({})
    [(answers, _)] = r.decided
    assert [ans.sinceClose for ans in answers] == [False]
    assert r.queries() == [[("x", "1")], []]
    r.answer({"a": {"x": "2"}})
    answers, _ = r.decided[1]
    assert [(ans.listed, ans.sinceClose) for ans in answers] == [({"x": "2"}, True)]


def test_sharedFindTooLarge():
    """
    Registrations that share attributes share one find; when its answer
    is too large, each is found alone next time.
    """
    r = Rounds()
    a, b = Unconfirmed("a", proto="ssh", n="1"), Unconfirmed("b", proto="ssh", n="2")
    r.scheduler.written(a)
    r.scheduler.written(b)
    r.clock.advance(CONFIRM_AFTER)
    assert r.queries() == [[("proto", "ssh"), ("n", "*")]]
    r.finds[0][1].errback(Failure(AnswerTooLarge("too large")))
    assert r.decided == [([], CONFIRM_AFTER)]
    assert sorted(map(sorted, r.queries())) == [
        [("n", "1"), ("proto", "ssh")],
        [("n", "2"), ("proto", "ssh")],
    ]


def test_maxQueries():
    """
    A round runs at most L{MAX_QUERIES} finds; the rest wait for the next
    round, which follows at once.
    """
    r = Rounds()
    for i in range(MAX_QUERIES + 4):
        r.scheduler.written(Unconfirmed("s%d" % i, **{"a%d" % i: "v"}))
    r.clock.advance(CONFIRM_AFTER)
    assert len(r.queries()) == MAX_QUERIES
    r.answer({})
    assert len(r.queries()) == MAX_QUERIES
