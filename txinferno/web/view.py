"""
L{RegistryView}: what the web side knows of one registry server beyond its
current services: recent changes with their times, counts of changes and
rejections, a sampled history, and the open event streams it feeds.
"""

import json
import math
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from txinferno.server.change import ChangeKind, IRegistryObserver, RegistryChange
from txinferno.server.protocols import RegistryServer
from txinferno.server.registry import RegisteredService, queryMatches
from txinferno.web.query import jsonBytes, jsonText
from txinferno.wire.persist import persists
from txinferno.wire.rules import PORT_NAMES
from txinferno.wire.words import formatLine

if TYPE_CHECKING:
    from txinferno.web.events import EventStream

__all__ = ["RegistryView", "reasonLabel", "serviceJSON", "FLUSH_INTERVAL"]

MAX_CHANGES = 200
"""
Default of L{RegistryView.maxChanges}.
"""
SAMPLE_INTERVAL = 10.0
"""
Default of L{RegistryView.sampleInterval}, in seconds.
"""
MAX_SAMPLES = 360
"""
Default of the C{maxSamples} argument of L{RegistryView} (an hour at the
default interval).
"""
FLUSH_INTERVAL = 0.05
"""
Default of L{RegistryView.flushInterval}, in seconds: a change waits at most
this long for its event (well inside the 100 ms in which a change must reach
every open view).
"""

_REASONS = {
    "bad character in service name": "bad character in service name",
    "bad service name": "bad service name",
    "duplicate service name": "duplicate service name",
    "odd number of attribute words after the service name": "odd number of attribute words",
    "odd number of attribute words": "odd number of attribute words",
    "empty attribute write": "empty attribute write",
}


_KIND_NAMES = {kind: kind.name for kind in ChangeKind}
"""
The label of each kind of change (an enum member's C{name} is a property,
slower to read once per change).
"""


def reasonLabel(reason: str) -> str:
    """
    Name a rejection's reason with one of a fixed set of labels (a metric
    label must not take a value per service or per limit setting).

    @param reason: the error text of the rejection.
    @type reason: L{str}
    @rtype: L{str}
    """
    label = _REASONS.get(reason)
    if label is not None:
        return label
    if reason.startswith("line longer than"):
        return "line too long"
    if reason.startswith("no line within"):
        return "idle"
    if reason.endswith("is not registered"):
        return "not registered"
    return "other"


def _line(name, attributes):
    words = [name]
    for pair in attributes:
        words.extend(pair)
    return formatLine(words).decode("utf-8")[:-1]


def serviceJSON(
    name: str, attributes: Sequence[tuple[str, str]], line: bytes | None = None
) -> dict:
    """
    @param name: a service's name.
    @param attributes: its C{(attr, value)} pairs, newest-first.
    @param line: its line as the C{find} port prints it
        (L{txinferno.server.registry.RegisteredService.line}), when known.
    @return: the service as the API and the page show it: C{name}, C{attrs}
        (an object, newest-first) and C{line} (the service as the C{find}
        port prints it, in the registry's quoting, without the newline).
    @rtype: L{dict}
    """
    text = _line(name, attributes) if line is None else line.decode("utf-8")[:-1]
    return {"name": name, "attrs": dict(attributes), "line": text}


def _encodeEvent(kind, data):
    return b"event: %s\ndata: %s\n\n" % (kind, jsonBytes(data))


_NOW = frozenset([ChangeKind.registered, ChangeKind.updated])
"""
The kinds of change after which the service is in the registry.
"""
_CHANGE = '{"time":%.3f,"kind":"%s","version":%d,"name":%s,"line":%s}'
"""
The JSON of a change entry of a service, made by formatting rather than
through a L{dict}: the entries are the view's work per change.
"""
_REJECTION = '{"time":%.3f,"kind":"rejected","version":%d,"name":%s,"reason":%s}'
"""
The JSON of a change entry of a rejected write.
"""


@implementer(IRegistryObserver)
class RegistryView:
    """
    Watches one L{txinferno.server.protocols.RegistryServer}'s registry.

    As a change observer it counts a change and, while streams are open,
    makes its entry (its JSON) and whether each distinct query of the
    streams finds its service; without streams it only keeps the change
    with its time, and the entries of L{changes} are made when they are
    read.  The rest is done once per flush, at most every L{flushInterval}
    seconds (at the end of the reactor's turn when the last flush is older
    than that): the changes of the flush go to every open stream as one
    C{changes} event, made once for every stream of a query.  The cost of a
    change is so independent of the number of open views, and a burst of
    changes is a few events rather than one per change.

    @ivar server: the server.
    @ivar clock: the clock of the times, the flushes and the sampling.
    @ivar startedAt: when the view was made (the uptime counts from it).
    @ivar flushInterval: the least time between two flushes, in seconds.
    @ivar history: the samples, oldest first: C{time}, C{services} and
        C{changes} (changes since the sample before).
    @ivar rejections: rejections by L{reasonLabel}.
    @ivar streams: the open event streams
        (L{txinferno.web.events.EventStream}).
    @ivar streamsResynced: event streams started again from a snapshot,
        their client reading slower than the changes came.
    @ivar streamsDropped: event streams closed for not reading.
    @ivar streamsRefused: event streams refused for the limit on their
        number.
    """

    def __init__(
        self,
        server: RegistryServer,
        clock: IReactorTime,
        maxChanges: int = MAX_CHANGES,
        sampleInterval: float = SAMPLE_INTERVAL,
        maxSamples: int = MAX_SAMPLES,
        flushInterval: float = FLUSH_INTERVAL,
    ) -> None:
        """
        @type server: L{txinferno.server.protocols.RegistryServer}
        @param clock: an L{IReactorTime}.
        @param maxChanges: the most changes kept in L{changes}.
        @param sampleInterval: seconds between samples of the history.
        @param maxSamples: the most samples kept in L{history}.
        @param flushInterval: the least seconds between two flushes of the
            changes to the streams.
        """
        self.server = server
        self.registry = server.registry
        self.clock = clock
        self.startedAt = clock.seconds()
        self.maxChanges = maxChanges
        self.sampleInterval = sampleInterval
        self.flushInterval = flushInterval
        self.history: deque[dict[str, Any]] = deque(maxlen=maxSamples)
        self._kinds = dict.fromkeys(ChangeKind, 0)
        self._sampledChanges = 0
        self.rejections: Counter[str] = Counter()
        self.streams: set[EventStream] = set()
        self.streamsResynced = 0
        self.streamsDropped = 0
        self.streamsRefused = 0
        self._recent: deque[str] = deque(maxlen=maxChanges)
        self._pending: list[tuple[float, RegistryChange]] = []
        self._unsent: list[str] = []
        self._shown: dict[tuple[str, ...], list[str]] = {}
        self._flushCall: IDelayedCall | None = None
        self._lastFlush = -math.inf
        self._encoded: dict[str, tuple[bytes, RegisteredService, bytes]] = {}
        self._status: tuple[tuple[int, int], dict[str, Any]] | None = None
        self._snapshots: dict[tuple[str, ...], bytes] | None = None
        self._sampling = LoopingCall(self._sample)
        self._sampling.clock = clock

    def start(self) -> None:
        """
        Observe the registry and start sampling.
        """
        self.registry.addChangeObserver(self)
        self._sample()
        self._sampling.start(self.sampleInterval, now=False)

    def stop(self) -> None:
        """
        Stop observing and sampling.
        """
        self.registry.removeChangeObserver(self)
        if self._sampling.running:
            self._sampling.stop()
        if self._flushCall is not None:
            self._flushCall.cancel()
            self._flushCall = None
        self._make()
        self._unsent = []
        self._shown = {}

    def addStream(self, stream: "EventStream") -> None:
        """
        Send C{stream} the changes from now on: those told before go to the
        streams open before it at once (they are in its snapshot).

        @type stream: L{txinferno.web.events.EventStream}
        """
        if self._flushCall is not None:
            self._flushCall.cancel()
        self._flush()
        self.streams.add(stream)
        self._shown.setdefault(tuple(stream.words), [])

    @property
    def counts(self) -> Counter[str]:
        """
        The changes told so far by kind name (C{registered}, C{updated},
        C{removed}, C{rejected}), only the kinds told.
        """
        return Counter({_KIND_NAMES[kind]: count for kind, count in self._kinds.items() if count})

    @property
    def changes(self) -> list[dict[str, Any]]:
        """
        The recent changes, oldest first, as the page gets them (at most
        L{maxChanges}): C{time} (to the millisecond), C{kind}, C{version},
        C{name}, and C{line} (the service after the change, before it for a
        removal, as the C{find} port prints it, without the newline) or for
        a rejection C{reason}.
        """
        self._make()
        return [json.loads(entry) for entry in self._recent]

    def registryChanged(self, change: RegistryChange) -> None:
        kind = change.kind
        self._kinds[kind] += 1
        if kind is ChangeKind.rejected:
            self.rejections[reasonLabel(change.reason or "")] += 1
        elif kind is ChangeKind.removed:
            self._encoded.pop(change.name or "", None)
        now = self.clock.seconds()
        if not self.streams:
            # Nothing to send: the entries are made when L{changes} is read,
            # of the last L{maxChanges} changes only.
            self._pending.append((now, change))
            if len(self._pending) > 2 * self.maxChanges:
                del self._pending[: -self.maxChanges]
            return
        # Made at once, the change is kept as text only: objects held until
        # the flush would outlive collections of the youngest generation and
        # bring on full collections of a busy registry.  The line of the
        # service is the one of the find port, computed once for both.
        line = self.registry[change.name].line() if kind in _NOW else None
        entry = self._entry(now, change, line)
        self._recent.append(entry)
        self._unsent.append(entry)
        if self._shown:
            values = dict(change.attributes) if kind in _NOW else None
            for query, shown in self._shown.items():
                shown.append("1" if values is not None and queryMatches(query, values) else "0")
        if self._flushCall is None:
            wait = self._lastFlush + self.flushInterval - now
            self._flushCall = self.clock.callLater(max(0.0, wait), self._flush)

    def _entry(self, when: float, change: RegistryChange, line: bytes | None) -> str:
        """
        @param when: the time of the change.
        @param line: the service's line after the change (not for a
            removal or a rejection), or L{None} to make it of the change's
            attributes.
        @return: the JSON of the change's entry in L{changes}.
        """
        if change.kind is ChangeKind.rejected:
            return _REJECTION % (
                when,
                change.version,
                jsonText(change.name),
                jsonText(change.reason),
            )
        assert change.name is not None
        text = _line(change.name, change.attributes) if line is None else line.decode("utf-8")[:-1]
        return _CHANGE % (
            when,
            _KIND_NAMES[change.kind],
            change.version,
            jsonText(change.name),
            jsonText(text),
        )

    def _make(self) -> None:
        """
        Make the entries of the changes told while no stream was open into
        L{changes}, of the last L{maxChanges} only.
        """
        pending, self._pending = self._pending, []
        for when, change in pending[-self.maxChanges :]:
            self._recent.append(self._entry(when, change, None))

    def _flush(self) -> None:
        """
        Send the changes since the last flush to every stream in one
        C{changes} event: C{changes}, their entries, encoded once, and
        C{shown}, a string of C{1} and C{0}, whether the stream's query
        finds each service after its change, kept as the changes come for
        each distinct query of the open streams.
        """
        self._flushCall = None
        self._make()
        unsent, self._unsent = self._unsent, []
        byQuery, self._shown = self._shown, {tuple(stream.words): [] for stream in self.streams}
        if not (unsent and self.streams):
            return
        self._lastFlush = self.clock.seconds()
        encoded = ",".join(unsent).encode("ascii")
        events: dict[tuple[str, ...], bytes] = {}

        def eventFor(query):
            data = events.get(query)
            if data is None:
                shown = "".join(byQuery[query]).encode("ascii")
                data = events[query] = (
                    b'event: changes\ndata: {"changes":[%s],"shown":"%s"}\n\n' % (encoded, shown)
                )
            return data

        self._sendAll(eventFor)

    def status(self) -> dict:
        """
        @return: the registry's status as C{/v1/status} answers it; the
            counts that take a walk through every service or connection are
            made at most once per version and second.
        @rtype: L{dict}
        """
        now = self.clock.seconds()
        key = (self.registry.version, int(now))
        if self._status is None or self._status[0] != key:
            self._status = (key, self._counts())
        return dict(
            self._status[1],
            uptime=now - self.startedAt,
            time=now,
            views=len(self.streams),
            changes=dict(self.counts),
        )

    def _counts(self):
        persistent = static = 0
        for service in self.registry:
            if service.static:
                static += 1
            elif persists(service.get("persist")):
                persistent += 1
        ports = {}
        for name, port in zip(PORT_NAMES, self.server.ports):
            address = port.getHost()
            ports[name] = "tcp!%s!%d" % (address.host, address.port)
        return {
            "version": self.registry.version,
            "services": len(self.registry),
            "persistent": persistent,
            "static": static,
            "started": self.startedAt,
            "ports": ports,
            "connections": self.server.connectionCounts(),
            "watchers": self.server.watcherCount(),
        }

    def snapshotEvent(self, words: Sequence[str]) -> bytes:
        """
        @param words: the query of the stream.
        @return: the first event of an event stream: the status, the recent
            changes and the history (the services follow in L{servicesEvents});
            made once for all the streams of a query that start again while
            an event is sent to every stream (L{_sendAll}).
        @rtype: L{bytes}
        """
        query = tuple(words)
        if self._snapshots is not None and query in self._snapshots:
            return self._snapshots[query]
        self._make()
        data = (
            b'event: snapshot\ndata: {"status":%s,"query":%s,"changes":[%s],"history":%s}\n\n'
            % (
                jsonBytes(self.status()),
                jsonBytes(list(words)),
                ",".join(self._recent).encode("ascii"),
                jsonBytes(list(self.history)),
            )
        )
        if self._snapshots is not None:
            self._snapshots[query] = data
        return data

    def servicesEvents(self, words: Sequence[str], chunk: int = 500) -> Iterator[bytes]:
        """
        Generate the services matching C{words}, as they are when each
        event is made, in C{services} events of up to C{chunk} services,
        then a C{ready} event.  Services removed meanwhile are left out
        (their removal follows on the stream anyway).

        @rtype: iterator of L{bytes}
        """
        services = self.registry.find(words)
        for start in range(0, len(services), chunk):
            batch = [s for s in services[start : start + chunk] if s.registered]
            yield b"event: services\ndata: %s\n\n" % (self.encodeServices(batch),)
        yield _encodeEvent(b"ready", {"version": self.registry.version})

    def encodeServices(self, services: Sequence[RegisteredService]) -> bytes:
        """
        @param services: services in the registry.
        @type services: L{list} of L{txinferno.server.registry.RegisteredService}
        @return: the JSON array of their L{serviceJSON}, each encoded once
            per change of the service and kept until the next.
        @rtype: L{bytes}
        """
        parts = []
        encoded = self._encoded
        for service in services:
            line = service.line()
            known = encoded.get(service.name)
            if known is None or known[0] is not line or known[1] is not service:
                data = jsonBytes(serviceJSON(service.name, service.attributes(), line))
                known = encoded[service.name] = (line, service, data)
            parts.append(known[2])
        return b"[" + b",".join(parts) + b"]"

    def _sample(self):
        told = sum(self._kinds.values())
        sample = {
            "time": self.clock.seconds(),
            "services": len(self.registry),
            "changes": told - self._sampledChanges,
        }
        self._sampledChanges = told
        self.history.append(sample)
        if self.streams:
            data = _encodeEvent(b"sample", dict(sample, status=self.status()))
            self._sendAll(lambda query: data)

    def _sendAll(self, eventFor: Callable[[tuple[str, ...]], bytes]) -> None:
        """
        Send every open stream the event of its query; the streams that
        start again from a snapshot meanwhile (too much waiting for their
        client, L{txinferno.web.events.EventStream.send}), as the streams
        of a burst do together, share the snapshot of their query
        (L{snapshotEvent}).

        @param eventFor: gives the event (L{bytes}) of a query's words (a
            L{tuple}).
        """
        self._snapshots = {}
        try:
            for stream in list(self.streams):
                stream.send(eventFor(tuple(stream.words)))
        finally:
            self._snapshots = None
