"""
L{WebService}: the web port of C{twistd regmgr}, one twisted.web site with
the live view and the API of a registry server, the agent's health, and
the metrics of both.

Routes::

    /                    the live view (a registry server only)
    /static/...          its script and style sheet
    /v1/services         GET ?ATTR=VALUE...: the services a query finds
    /v1/services/NAME    GET: one service
    /v1/status           GET: version, counts, uptime, ports, connections
    /v1/events           GET ?ATTR=VALUE...: Server-Sent Events of changes
    /metrics             Prometheus metrics
    /health              the agent's health (an agent only)

Nothing is written through the web port: every route answers C{GET} (and
C{HEAD}) only.
"""

import os
from typing import cast

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File

from txinferno.agent import Agent
from txinferno.client.find import DEFAULT_MAX_ANSWER_SIZE
from txinferno.server.protocols import RegistryServer, addressText
from txinferno.web import DEFAULT_WEB
from txinferno.web.api import ServicesResource, StatusResource
from txinferno.web.events import MAX_BUFFER, MAX_STREAMS, EventsResource
from txinferno.web.health import AgentCollector, HealthResource
from txinferno.web.metrics import MetricsResource, RegistryCollector
from txinferno.web.page import ViewResource
from txinferno.web.view import FLUSH_INTERVAL, SAMPLE_INTERVAL, RegistryView

__all__ = ["WebService", "DEFAULT_WEB", "STATIC", "HTTP_TIMEOUT"]

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
"""
The directory of the page's script and style sheet.
"""
HTTP_TIMEOUT = 60
"""
Seconds an HTTP connection may stay idle between requests.
"""


class WebService(MultiService):
    """
    The web port: a L{Site} served on an endpoint while running.

    @ivar site: the site.
    @ivar view: the L{RegistryView} of the server, or L{None}.
    @ivar metrics: the L{MetricsResource}, whose C{collectors} registry
        holds this port's collectors.
    @ivar port: the L{StreamServerEndpointService} of the endpoint.
    """

    _log = Logger()

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        server: RegistryServer | None = None,
        agent: Agent | None = None,
        reactor: IReactorTime | None = None,
        maxStreams: int = MAX_STREAMS,
        maxBuffer: int = MAX_BUFFER,
        maxAnswerSize: int = DEFAULT_MAX_ANSWER_SIZE,
        sampleInterval: float = SAMPLE_INTERVAL,
        flushInterval: float = FLUSH_INTERVAL,
    ) -> None:
        """
        @param endpoint: where to listen.
        @type endpoint: L{IStreamServerEndpoint}
        @param server: the registry server to show, or L{None}.
        @type server: L{txinferno.server.protocols.RegistryServer}
        @param agent: the agent whose health and metrics to serve, or
            L{None}.
        @type agent: L{txinferno.agent.Agent}
        @param reactor: the clock of the view; the global reactor when
            L{None}.
        @param maxStreams: the most event streams open at once.
        @param maxBuffer: the most bytes an event stream may keep waiting.
        @param maxAnswerSize: the largest answer of C{/v1/services}.
        @param sampleInterval: seconds between samples of the history.
        @param flushInterval: the least seconds between two events of
            changes on a stream.
        """
        MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = cast(IReactorTime, globalReactor)
        root = Resource()
        self.metrics = MetricsResource()
        root.putChild(b"metrics", self.metrics)
        self.view = None
        if server is not None:
            self.view = RegistryView(
                server, reactor, sampleInterval=sampleInterval, flushInterval=flushInterval
            )
            services = ServicesResource(self.view, maxAnswerSize)
            v1 = Resource()
            v1.putChild(b"services", services)
            v1.putChild(b"status", StatusResource(self.view))
            v1.putChild(b"events", EventsResource(self.view, maxStreams, maxBuffer))
            root.putChild(b"v1", v1)
            root.putChild(b"", ViewResource(self.view))
            root.putChild(b"static", File(STATIC))
            self.metrics.collectors.register(RegistryCollector(self.view, services))
        if agent is not None:
            root.putChild(b"health", HealthResource(agent))
            self.metrics.collectors.register(AgentCollector(agent))
        self.site = Site(root, timeout=HTTP_TIMEOUT, reactor=reactor)
        self.site.displayTracebacks = False
        self._connections = WrappingFactory(self.site)
        self._connections.noisy = False
        self.port = StreamServerEndpointService(endpoint, self._connections)
        self.port._raiseSynchronously = True
        self.port.setServiceParent(self)

    def startService(self):
        if self.view is not None:
            self.view.start()
        MultiService.startService(self)
        self.port._waitingForPort.addCallback(self._listening)

    def _listening(self, port):
        self._log.info("web port serving on {address}", address=addressText(port.getHost()))
        return port

    def stopService(self):
        """
        Stop listening and abort every open connection (event streams and
        idle keep-alive connections alike, so that no browser goes on
        talking to a stopped view).

        @return: a L{Deferred} that fires once the port is closed.
        """
        d = MultiService.stopService(self)
        if self.view is not None:
            self.view.stop()
        for connection in list(self._connections.protocols):
            connection.transport.abortConnection()
        return d
