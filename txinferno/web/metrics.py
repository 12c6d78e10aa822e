"""
Prometheus metrics, C{GET /metrics}, made with C{prometheus_client} from
the figures the server, the web view and the agent keep, read when scraped
(nothing is added to the registry's own work but plain counters).

Each web site has its own L{CollectorRegistry}, never the global one, so
that several servers in one process (and tests) do not collide.
"""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from twisted.web.resource import Resource

from txinferno.server.statistics import FIND_BUCKETS
from txinferno.wire.rules import PORT_NAMES

__all__ = ["RegistryCollector", "MetricsResource", "LIMITS"]

LIMITS = ("line", "idle", "answer", "streams", "stream buffer")
"""
The limits counted by C{txinferno_registry_limits_hit_total}, always
exported (at 0 until hit): C{line} and C{idle} on the registry's ports,
C{answer}, C{streams} and C{stream buffer} on the web port.
"""


def _family(kind, name, documentation, value, label=None):
    """
    @param kind: L{CounterMetricFamily} or L{GaugeMetricFamily}.
    @param value: the figure, or, with C{label}, a mapping of label values
        to figures.
    """
    family = kind(name, documentation, labels=label and [label])
    if label is None:
        family.add_metric([], value)
    else:
        for key, figure in sorted(value.items()):
            family.add_metric([key], figure)
    return family


def _counter(name, documentation, value, label=None):
    return _family(CounterMetricFamily, name, documentation, value, label)


def _gauge(name, documentation, value, label=None):
    return _family(GaugeMetricFamily, name, documentation, value, label)


class RegistryCollector:
    """
    The registry server's metrics (see docs/operator.md for each one).
    """

    def __init__(self, view, api):
        """
        @type view: L{txinferno.web.view.RegistryView}
        @param api: the L{txinferno.web.api.ServicesResource}, whose refused
            answers count as limits hit.
        """
        self.view = view
        self.api = api

    def collect(self):
        view = self.view
        status = view.status()
        stats = view.server.statistics
        yield _gauge("txinferno_registry_services", "Services in the registry.", status["services"])
        yield _gauge(
            "txinferno_registry_services_persistent",
            "Services that stay after their connection closes (persist attribute).",
            status["persistent"],
        )
        yield _gauge(
            "txinferno_registry_services_static",
            "Services loaded from the static file.",
            status["static"],
        )
        yield _gauge(
            "txinferno_registry_version", "The registry's version counter.", status["version"]
        )
        yield _gauge(
            "txinferno_registry_start_time_seconds",
            "When the registry started, in seconds since the epoch.",
            view.startedAt,
        )
        yield _counter(
            "txinferno_registry_registrations", "Services registered.", view.counts["registered"]
        )
        yield _counter(
            "txinferno_registry_updates", "Updates of services' attributes.", view.counts["updated"]
        )
        yield _counter("txinferno_registry_removals", "Services removed.", view.counts["removed"])
        yield _counter(
            "txinferno_registry_rejections",
            "Writes of the new port rejected, by reason.",
            view.rejections,
            label="reason",
        )
        buckets = []
        cumulative = 0
        for bound, count in zip(FIND_BUCKETS + (float("inf"),), stats.findBuckets):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        finds = HistogramMetricFamily(
            "txinferno_registry_find_seconds",
            "Queries answered on the find port, by the time taken.",
        )
        finds.add_metric([], buckets, stats.findSeconds)
        yield finds
        yield _counter(
            "txinferno_registry_event_reports",
            "Version reports sent to watchers of the event port.",
            stats.reportsSent,
        )
        yield _gauge(
            "txinferno_registry_watchers", "Open connections of the event port.", status["watchers"]
        )
        yield _counter(
            "txinferno_registry_watchers_dropped",
            "Watchers closed by the server.",
            stats.watchersDropped,
        )
        yield _gauge(
            "txinferno_registry_connections",
            "Open connections, by port.",
            status["connections"],
            label="port",
        )
        yield _counter(
            "txinferno_registry_received_bytes",
            "Bytes received, by port.",
            _allPorts(stats.bytesIn),
            label="port",
        )
        yield _counter(
            "txinferno_registry_sent_bytes",
            "Bytes sent, by port.",
            _allPorts(stats.bytesOut),
            label="port",
        )
        limits = dict.fromkeys(LIMITS, 0)
        limits.update(stats.limitsHit)
        limits["answer"] = self.api.answersRefused
        limits["streams"] = view.streamsRefused
        limits["stream buffer"] = view.streamsDropped
        yield _counter(
            "txinferno_registry_limits_hit",
            "Connections or requests refused or closed for a limit, by limit.",
            limits,
            label="limit",
        )
        yield _gauge(
            "txinferno_web_streams", "Open event streams of the web port.", status["views"]
        )
        yield _counter(
            "txinferno_web_streams_resynced",
            "Event streams started again from a snapshot, their client "
            "reading slower than the changes came.",
            view.streamsResynced,
        )


def _allPorts(counts):
    return {port: counts[port] for port in PORT_NAMES}


class MetricsResource(Resource):
    """
    C{/metrics}: the collectors of one L{CollectorRegistry} in Prometheus'
    text format.

    @ivar collectors: the registry.
    @type collectors: L{CollectorRegistry}
    """

    isLeaf = True

    def __init__(self, collectors=None):
        Resource.__init__(self)
        self.collectors = (
            CollectorRegistry(auto_describe=True) if collectors is None else collectors
        )

    def render_GET(self, request):
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.collectors)
