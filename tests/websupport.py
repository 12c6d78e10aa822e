"""
Shared pieces of the web tests: a registry served with its web port on
loopback (L{ServedWeb}), a raw Server-Sent Events client (L{EventsClient})
and a plain HTTP GET.
"""

import json

import pytest_twisted
from support import bounded
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, readBody

from txinferno.testing.embedded import EmbeddedRegistry
from txinferno.web.site import WebService


class _ListeningEndpoint:
    """
    A server endpoint that fires L{listening} with its port.
    """

    def __init__(self, endpoint):
        self._endpoint = endpoint
        self.listening = Deferred()

    def listen(self, factory):
        d = self._endpoint.listen(factory)
        d.addCallback(self._listened)
        return d

    def _listened(self, port):
        self.listening.callback(port)
        return port


class ServedWeb:
    """
    An L{EmbeddedRegistry} and its L{WebService}, on loopback ports chosen
    by the system the first time, the same ones after a L{restart}.

    @ivar registry: the embedded registry.
    @ivar web: the current web service.
    @ivar webPort: the web port's number.
    """

    def __init__(self, **webOptions):
        self.registry = EmbeddedRegistry(reactor)
        self.webOptions = webOptions
        self.web = None
        self.webPort = 0

    async def start(self):
        await bounded(self.registry.start())
        endpoint = _ListeningEndpoint(
            TCP4ServerEndpoint(reactor, self.webPort, backlog=1024, interface="127.0.0.1")
        )
        self.web = WebService(
            endpoint, server=self.registry.server, reactor=reactor, **self.webOptions
        )
        self.web.startService()
        port = await bounded(endpoint.listening)
        self.webPort = port.getHost().port
        return self

    async def stop(self):
        if self.web is not None and self.web.running:
            await bounded(self.web.stopService())
        await bounded(self.registry.stop())

    async def restart(self):
        await self.stop()
        await self.start()

    @property
    def view(self):
        return self.web.view

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.webPort, path)


@pytest_twisted.async_yield_fixture
async def served():
    """
    A started L{ServedWeb}, stopped after the test.
    """
    s = await ServedWeb().start()
    try:
        yield s
    finally:
        await s.stop()


async def get(url):
    """
    GET C{url} with Twisted's HTTP client.

    @return: the response code, the response and the body.
    """
    response = await bounded(Agent(reactor).request(b"GET", url.encode("ascii")))
    body = await bounded(readBody(response))
    return response.code, response, body


async def getJSON(url):
    """
    @return: the response code and the JSON body of a GET of C{url}.
    """
    code, _, body = await get(url)
    return code, json.loads(body)


class EventsClient(Protocol):
    """
    A raw HTTP/1.0 client of C{/v1/events}: its response's status line and
    headers, then its events, one by one.

    @ivar status: the status line, once received (and L{responded} fires
        with it).
    @ivar messages: every event received, C{(kind, data)}.
    @ivar events: the events not yet taken, C{(kind, data)}, a C{changes}
        event taken apart into a C{change} event per change, each with its
        C{shown} as a L{bool}.
    """

    def __init__(self, path):
        self.path = path
        self.status = None
        self.headers = b""
        self.messages = []
        self.events = []
        self.received = 0
        self._buffer = b""
        self._waiting = []
        self.responded = Deferred()
        self.closed = Deferred()

    def connectionMade(self):
        self.transport.write(
            b"GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % (self.path.encode("utf-8"),)
        )

    def dataReceived(self, data):
        self.received += len(data)
        self._buffer += data
        if self.status is None:
            if b"\r\n\r\n" not in self._buffer:
                return
            head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            self.status, _, self.headers = head.partition(b"\r\n")
            self.responded.callback(self.status)
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
            if b"event" in fields:
                kind, data = fields[b"event"].decode(), json.loads(fields[b"data"])
                self.messages.append((kind, data))
                if kind == "changes":
                    for change, shown in zip(data["changes"], data["shown"], strict=True):
                        self.events.append(("change", dict(change, shown=shown == "1")))
                else:
                    self.events.append((kind, data))
        self._wake()

    def connectionLost(self, reason):
        self.closed.callback(None)
        self._wake()

    def _wake(self):
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    async def next(self, kind=None):
        """
        @return: the next event (of C{kind}, skipping others).
        """
        while True:
            while self.events:
                event = self.events.pop(0)
                if kind is None or event[0] == kind:
                    return event
            if self.closed.called:
                raise ConnectionError("the stream closed")
            d = Deferred()
            self._waiting.append(d)
            await bounded(d)

    async def ready(self):
        """
        Take the events up to C{ready}.

        @return: the snapshot and the services before it.
        """
        kind, snapshot = await self.next()
        assert kind == "snapshot", kind
        services = []
        while True:
            kind, data = await self.next()
            if kind == "ready":
                return snapshot, services
            assert kind == "services", kind
            services.extend(data)


async def openEvents(served, query=""):
    """
    @return: an L{EventsClient} of C{served}'s stream of C{query}.
    """
    client = EventsClient("/v1/events" + (query and "?" + query))
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", served.webPort)
    await bounded(connectProtocol(endpoint, client))
    return client
