"""
Unit tests for L{txinferno.client._throttle}: connection attempts a few at
a time, in order, each with a deadline, on a L{Clock}.
"""

from twisted.internet.task import Clock

from txinferno.client._throttle import ConnectionThrottle


class Attempts:
    """
    Turns asked of a throttle, with what happened to each: started,
    expired.
    """

    def __init__(self, limit=2, timeout=10):
        self.clock = Clock()
        self.throttle = ConnectionThrottle(self.clock, limit, timeout)
        self.started = []
        self.expired = []

    def ask(self, name):
        turn = self.throttle.ask(lambda: self.expired.append(name))
        turn.whenStarted(lambda _: self.started.append(name))
        return turn


def test_limitAndOrder():
    """
    At most C{limit} turns run at once; the others start in the order
    asked, each when a running one ends.
    """
    a = Attempts(limit=2)
    turns = [a.ask(name) for name in "abcd"]
    assert a.started == ["a", "b"]
    turns[1].end()
    assert a.started == ["a", "b", "c"]
    turns[0].end()
    assert a.started == ["a", "b", "c", "d"]
    assert a.throttle.busy()
    for turn in turns[2:]:
        turn.end()
    assert not a.throttle.busy()


def test_endTwice():
    """
    Ending a turn twice gives up one place, not two.
    """
    a = Attempts(limit=1)
    first = a.ask("a")
    a.ask("b")
    a.ask("c")
    first.end()
    first.end()
    assert a.started == ["a", "b"]


def test_endWhileWaiting():
    """
    A turn ended while it waits never starts, and takes no place.
    """
    a = Attempts(limit=1)
    first = a.ask("a")
    a.ask("b").end()
    a.ask("c")
    first.end()
    assert a.started == ["a", "c"]
    assert a.expired == []


def test_deadlines():
    """
    A turn not ended within the timeout of being asked for, its wait
    included, is ended and told; one timer serves every deadline.
    """
    a = Attempts(limit=1, timeout=10)
    a.ask("a")
    a.ask("b")
    a.clock.advance(5)
    a.ask("c")
    assert len(a.clock.getDelayedCalls()) == 1
    a.clock.advance(5)
    assert a.expired == ["b", "a"]
    # The waiting turn expired with the running one does not take its
    # place: the next that has time left does.
    assert a.started == ["a", "c"]
    a.clock.advance(5)
    assert a.expired == ["b", "a", "c"]
    assert a.clock.getDelayedCalls() == []
    assert not a.throttle.busy()


def test_endedBeforeDeadline():
    """
    A turn ended in time is never told it expired, and the timer goes
    with the last deadline.
    """
    a = Attempts(limit=2, timeout=10)
    turn = a.ask("a")
    a.clock.advance(9)
    turn.end()
    assert a.clock.getDelayedCalls() == []
    a.clock.advance(10)
    assert a.expired == []
    turn.end()
    assert a.started == ["a"]


def test_manyWaiting():
    """
    Ten thousand turns through a limit of 32 start in order, with one
    timer.
    """
    a = Attempts(limit=32, timeout=10)
    turns = [a.ask(i) for i in range(10_000)]
    assert len(a.clock.getDelayedCalls()) == 1
    for turn in turns:
        turn.end()
    assert a.started == list(range(10_000))
    assert a.clock.getDelayedCalls() == []
