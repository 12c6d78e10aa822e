"""
Tests for L{txinferno.client._backoff.Backoff}, the backoff every retrying
task uses, on a L{Clock}.
"""

import random

import pytest
from twisted.internet.task import Clock

from txinferno.client._backoff import Backoff


def delays(backoff, clock, count):
    """
    Schedule C{count} calls in a row and return the delays they waited.
    """
    calls = []
    waited = []
    for _ in range(count):
        start = clock.seconds()
        backoff.schedule(lambda: calls.append(clock.seconds()))
        [pending] = clock.getDelayedCalls()
        clock.advance(pending.getTime() - start)
        waited.append(calls[-1] - start)
    assert len(calls) == count
    return waited


def test_growsByFactorUpToMaxDelay():
    """
    The first call waits C{initialDelay}, each next one C{factor} times
    longer, up to C{maxDelay}.
    """
    clock = Clock()
    backoff = Backoff(clock, 0.5, 2, 0, 5)
    assert delays(backoff, clock, 6) == pytest.approx([0.5, 1, 2, 4, 5, 5])
    assert backoff.attempts == 6


def test_reset():
    """
    After L{Backoff.reset} the next call waits C{initialDelay} again, and
    L{Backoff.nextDelay} says so.
    """
    clock = Clock()
    backoff = Backoff(clock, 0.5, 3, 0, 30)
    delays(backoff, clock, 3)
    assert backoff.nextDelay == pytest.approx(13.5)
    backoff.reset()
    assert backoff.nextDelay == 0.5
    assert delays(backoff, clock, 2) == pytest.approx([0.5, 1.5])


def test_cancelAndReschedule():
    """
    L{Backoff.cancel} cancels the pending call; L{Backoff.schedule} replaces
    the pending call: at most one is ever pending.
    """
    clock = Clock()
    backoff = Backoff(clock, 1, 2, 0, 30)
    calls = []
    backoff.schedule(lambda: calls.append("first"))
    backoff.schedule(lambda: calls.append("second"))
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(2)
    assert calls == ["second"]
    backoff.schedule(lambda: calls.append("third"))
    backoff.cancel()
    backoff.cancel()
    assert clock.getDelayedCalls() == []
    clock.advance(100)
    assert calls == ["second"]


def test_jitter(monkeypatch):
    """
    Jitter moves each delay by a normal deviate of C{jitter} times the
    delay, never below zero.
    """
    monkeypatch.setattr(random, "normalvariate", lambda mu, sigma: mu + 2 * sigma)
    clock = Clock()
    assert delays(Backoff(clock, 1, 2, 0.1, 30), clock, 3) == pytest.approx([1.2, 2.4, 4.8])
    monkeypatch.setattr(random, "normalvariate", lambda mu, sigma: mu - 20 * sigma)
    assert delays(Backoff(clock, 1, 2, 0.1, 30), clock, 1) == [0]
