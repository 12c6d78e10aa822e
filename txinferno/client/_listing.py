"""
When to list the find port for registrations waiting to be confirmed or
explained, and which finds to run: registrations written in a burst share
one round of finds, registrations that share attributes share one find,
and the answers stay small however large the registry grows (see
L{txinferno.client.new}).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from txinferno.client._states import StateMachine
from txinferno.errors import AnswerTooLarge
from txinferno.wire.rules import Services

if TYPE_CHECKING:
    from txinferno.client.new import Registration

__all__ = [
    "BURST_LISTING_DELAY",
    "CHECK_RETRY_DELAY",
    "CONFIRM_AFTER",
    "EXPLAIN_INTERVAL",
    "MAX_QUERIES",
    "Answer",
    "ListingScheduler",
]

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

_Query = tuple[Sequence[tuple[str, str]], list["Registration"]]
"""
One find of a round: its pairs, and the registrations it looks for.
"""

FindServices = Callable[[Sequence[tuple[str, str]]], "Deferred[Services]"]


class Answer(NamedTuple):
    """
    What a round of finds said of one waiting registration.
    """

    registration: Registration
    listed: dict[str, str] | None
    """
    The attributes listed under its name, or L{None}.
    """
    failure: Failure | None
    """
    Why its find failed (C{listed} is then L{None}), or L{None}.
    """
    sinceClose: bool
    """
    Whether the round started after its connection closed, so that its
    answer can explain the close.
    """


class _ListingState(Enum):
    """
    The states of a L{ListingScheduler}.
    """

    idle = "no registration waits for a listing"
    due = "a round is due, now or when its timer fires"
    listing = "a round of finds is running"
    listingMore = "a round is running, and another must follow at once"


class ListingScheduler(StateMachine):
    """
    Runs rounds of finds for the registrations waiting to be confirmed (their
    line written) or explained (their connection closed first), and hands
    each round's answers to C{decide}, which says by L{forget} which ones
    stop waiting.  One round runs at a time; after it, another follows at
    once for registrations that came or closed meanwhile, or after
    L{CHECK_RETRY_DELAY} for the ones still unseen.  While C{busy()} says
    more registrations are on their way, a round waits for them, at most
    L{BURST_LISTING_DELAY}; otherwise it waits until the last line written
    is L{CONFIRM_AFTER} old.
    """

    def __init__(
        self,
        clock: IReactorTime,
        findServices: FindServices,
        busy: Callable[[], bool],
        decide: Callable[[list[Answer], float], object],
    ) -> None:
        """
        @param clock: times the rounds.
        @param findServices: takes C{(attr, value)} pairs and returns a
            L{Deferred} firing with the attributes by name of every service
            matching them (every service for no pairs), or failing.
        @param busy: says whether registrations are still connecting or
            waiting their turn.
        @param decide: takes a round's answers and the time it started.
        """
        self._clock = clock
        self._findServices = findServices
        self._busy = busy
        self._decide = decide
        self._state = _ListingState.idle
        # The waiting registrations with when their line was written; those
        # whose connection closed with the round it closed in; those whose
        # shared find was too large.
        self._waiting: dict[Registration, float] = {}
        self._closedIn: dict[Registration, int] = {}
        self._alone: set[Registration] = set()
        self._rounds = 0
        self._timer: IDelayedCall | None = None
        self._lastWrittenAt = float("-inf")
        self._lastFullListingAt = float("-inf")

    def written(self, registration: Registration) -> None:
        """
        C{registration}'s line has just been written: it waits for a round
        to confirm it.
        """
        self._lastWrittenAt = now = self._clock.seconds()
        self._waiting[registration] = now
        self._handle("work")

    def closed(self, registration: Registration) -> None:
        """
        The connection of C{registration}, waiting, closed: it waits for a
        round started after the close to explain why.
        """
        self._closedIn[registration] = self._rounds
        self._handle("work")

    def forget(self, registration: Registration) -> None:
        """
        C{registration} waits no more.
        """
        if self._waiting.pop(registration, None) is not None:
            self._closedIn.pop(registration, None)
            self._alone.discard(registration)
            if not self._waiting:
                self._handle("empty")

    def registryChanged(self) -> None:
        """
        The registry reported a change: a round waiting for its delay
        starts now, unless registrations are still connecting.
        """
        self._handle("changed")

    # Actions.

    def _schedule(self) -> None:
        if self._busy():
            self._listLater(BURST_LISTING_DELAY)
            return
        wait = self._lastWrittenAt + CONFIRM_AFTER - self._clock.seconds()
        if wait > 0:
            self._listLater(wait)
        else:
            self._handle("due")

    def _retryLater(self) -> None:
        if self._waiting:
            self._listLater(CHECK_RETRY_DELAY)
        else:
            self._handle("empty")

    def _scheduleNext(self) -> None:
        if self._waiting:
            self._schedule()
        else:
            self._handle("empty")

    def _listLater(self, delay: float) -> None:
        """
        Start a round after C{delay} seconds, or when the one already due
        is, if sooner.
        """
        if self._timer is None:
            self._timer = self._clock.callLater(delay, self._timerFired)
        elif self._timer.getTime() > self._clock.seconds() + delay:
            self._timer.reset(delay)

    def _timerFired(self) -> None:
        self._timer = None
        self._handle("due")

    def _cancelTimer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _list(self) -> None:
        """
        Start a round: the finds of L{_queries}, run at once.
        """
        self._cancelTimer()
        self._rounds += 1
        started = self._clock.seconds()
        queries, full = self._queries(started)
        finds = [self._findServices(pairs) for pairs, group in queries]
        if full or (queries and not queries[0][0]):
            self._lastFullListingAt = started
        if full:
            finds.append(self._findServices(()))
        DeferredList(finds, consumeErrors=True).addCallback(
            self._answered, queries, full, self._rounds, started
        )

    def _queries(self, now: float) -> tuple[list[_Query], bool]:
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
        waiting = self._waiting
        bare = [r for r in waiting if not r.attrs]
        full = bool(self._closedIn)
        if not full and now - self._lastFullListingAt >= EXPLAIN_INTERVAL:
            full = any(now - writtenAt >= EXPLAIN_INTERVAL for writtenAt in waiting.values())
        full = full and not bare
        queries: list[_Query] = [((), bare)] if bare else []
        lone = self._alone
        alone = [r for r in waiting if r in lone] if lone else []
        rest = [r for r in waiting if r.attrs and r not in lone]
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
                self._handle("work")
                break
            queries.append((list(r.attrs.items()), [r]))
        return queries, full

    def _answered(
        self,
        results: list[tuple[bool, Any]],
        queries: list[_Query],
        full: bool,
        number: int,
        started: float,
    ) -> None:
        """
        A round's finds have all answered: hand what they said of each
        registration still waiting to C{decide}, then end the round.
        """
        everything = None
        if full:
            succeeded, everything = results.pop()
        elif queries and not queries[0][0]:
            succeeded, everything = results[0]
        if everything is not None and not succeeded:
            everything = None
        answers = []
        for (_pairs, group), (succeeded, answer) in zip(queries, results):
            for registration in group:
                if registration not in self._waiting:
                    continue
                failure = None
                if succeeded:
                    listed = answer.get(registration.name)
                    if listed is None and everything is not None:
                        listed = everything.get(registration.name)
                elif everything is not None:
                    listed = everything.get(registration.name)
                elif answer.check(AnswerTooLarge) and len(group) > 1:
                    # The shared find was too large: find it alone next time.
                    self._alone.add(registration)
                    self._handle("work")
                    continue
                else:
                    listed, failure = None, answer
                closedIn = self._closedIn.get(registration)
                answers.append(
                    Answer(
                        registration, listed, failure, closedIn is not None and closedIn < number
                    )
                )
        self._decide(answers, started)
        self._handle("roundOver")


_S = _ListingState
_L = ListingScheduler
ListingScheduler._transitions = {
    _S.idle: {
        "work": (_S.due, _L._schedule),
    },
    _S.due: {
        "work": (_S.due, _L._schedule),
        "changed": (_S.due, _L._schedule),
        "due": (_S.listing, _L._list),
        "empty": (_S.idle, _L._cancelTimer),
    },
    _S.listing: {
        "work": (_S.listingMore, None),
        "roundOver": (_S.due, _L._retryLater),
    },
    _S.listingMore: {
        "roundOver": (_S.due, _L._scheduleNext),
    },
}
# For each state, the events it takes: {event: (next state, action)}; an
# event not listed is ignored.  The table is drawn in docs/connection.md.


def _shared(registrations: list[Registration]) -> tuple[list[Registration], list[Registration]]:
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
