"""
L{RegistryView}: what the web side knows of one registry server beyond its
current services: recent changes with their times, counts of changes and
rejections, a sampled history, and the open event streams it feeds.
"""

import json
from collections import Counter, deque
from collections.abc import Iterator, Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from txinferno.server.change import ChangeKind, IRegistryObserver, RegistryChange
from txinferno.server.protocols import RegistryServer
from txinferno.server.registry import RegisteredService, queryMatches
from txinferno.wire.persist import persists
from txinferno.wire.rules import PORT_NAMES
from txinferno.wire.words import formatLine

__all__ = ["RegistryView", "reasonLabel", "serviceJSON"]

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

_REASONS = {
    "bad character in service name": "bad character in service name",
    "bad service name": "bad service name",
    "duplicate service name": "duplicate service name",
    "odd number of attribute words after the service name": "odd number of attribute words",
    "odd number of attribute words": "odd number of attribute words",
    "empty attribute write": "empty attribute write",
}


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


def serviceJSON(name: str, attributes: Sequence[tuple[str, str]]) -> dict:
    """
    @param name: a service's name.
    @param attributes: its C{(attr, value)} pairs, newest-first.
    @return: the service as the API and the page show it: C{name}, C{attrs}
        (an object, newest-first) and C{line} (the service as the C{find}
        port prints it, in the registry's quoting, without the newline).
    @rtype: L{dict}
    """
    return {"name": name, "attrs": dict(attributes), "line": _line(name, attributes)}


def _encodeEvent(kind, data):
    return b"event: %s\ndata: %s\n\n" % (
        kind,
        json.dumps(data, separators=(",", ":")).encode("utf-8"),
    )


@implementer(IRegistryObserver)
class RegistryView:
    """
    Watches one L{txinferno.server.protocols.RegistryServer}'s registry.

    @ivar server: the server.
    @ivar clock: the clock of the times and of the sampling.
    @ivar startedAt: when the view was made (the uptime counts from it).
    @ivar changes: the recent changes, oldest first, as the page shows them
        (at most L{maxChanges}).
    @ivar history: the samples, oldest first: C{time}, C{services} and
        C{changes} (changes since the sample before).
    @ivar counts: changes by kind name (C{registered}, C{updated},
        C{removed}, C{rejected}).
    @type counts: L{Counter}
    @ivar rejections: rejections by L{reasonLabel}.
    @type rejections: L{Counter}
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
    ) -> None:
        """
        @type server: L{txinferno.server.protocols.RegistryServer}
        @param clock: an L{IReactorTime}.
        @type maxChanges: L{int}
        @param sampleInterval: seconds between samples of the history.
        @type maxSamples: L{int}
        """
        self.server = server
        self.registry = server.registry
        self.clock = clock
        self.startedAt = clock.seconds()
        self.maxChanges = maxChanges
        self.sampleInterval = sampleInterval
        self.changes = deque(maxlen=maxChanges)
        self.history = deque(maxlen=maxSamples)
        self.counts = Counter()
        self.rejections = Counter()
        self.streams = set()
        self.streamsResynced = 0
        self.streamsDropped = 0
        self.streamsRefused = 0
        self._sinceSample = 0
        self._turnChanges = []
        self._sendCall = None
        self._encoded = {}
        self._status = None
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
        if self._sendCall is not None:
            self._sendCall.cancel()
            self._sendCall = None
            self._turnChanges = []

    def registryChanged(self, change: RegistryChange) -> None:
        kind = change.kind.name
        self.counts[kind] += 1
        self._sinceSample += 1
        entry = {"time": self.clock.seconds(), "kind": kind, "version": change.version}
        if change.kind is ChangeKind.rejected:
            self.rejections[reasonLabel(change.reason)] += 1
            entry["name"] = change.name
            entry["reason"] = change.reason
        else:
            entry.update(serviceJSON(change.name, change.attributes))
        self.changes.append(entry)
        if change.kind is ChangeKind.removed:
            self._encoded.pop(change.name, None)
        if not self.streams:
            return
        values = None
        if change.kind in (ChangeKind.registered, ChangeKind.updated):
            values = dict(change.attributes)
        self._turnChanges.append((entry, values))
        if self._sendCall is None:
            self._sendCall = self.clock.callLater(0, self._sendChanges)

    def _sendChanges(self):
        """
        Send the changes of a reactor turn to every stream, in one write
        per stream: each change with C{shown}, whether the stream's query
        finds the service after it.
        """
        self._sendCall = None
        changes, self._turnChanges = self._turnChanges, []
        encoded = {}
        byQuery = {}
        for stream in list(self.streams):
            query = tuple(stream.words)
            data = byQuery.get(query)
            if data is None:
                parts = []
                for i, (entry, values) in enumerate(changes):
                    shown = values is not None and queryMatches(query, values)
                    part = encoded.get((i, shown))
                    if part is None:
                        part = encoded[i, shown] = _encodeEvent(b"change", dict(entry, shown=shown))
                    parts.append(part)
                data = byQuery[query] = b"".join(parts)
            stream.send(data)

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
            changes and the history (the services follow in L{servicesEvents}).
        @rtype: L{bytes}
        """
        return _encodeEvent(
            b"snapshot",
            {
                "status": self.status(),
                "query": words,
                "changes": list(self.changes),
                "history": list(self.history),
            },
        )

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
                data = json.dumps(
                    serviceJSON(service.name, service.attributes()), separators=(",", ":")
                ).encode("utf-8")
                known = encoded[service.name] = (line, service, data)
            parts.append(known[2])
        return b"[" + b",".join(parts) + b"]"

    def _sample(self):
        sample = {
            "time": self.clock.seconds(),
            "services": len(self.registry),
            "changes": self._sinceSample,
        }
        self._sinceSample = 0
        self.history.append(sample)
        if self.streams:
            data = _encodeEvent(b"sample", dict(sample, status=self.status()))
            for stream in list(self.streams):
                stream.send(data)
