"""
The stream of changes, C{GET /v1/events}: Server-Sent Events, one
L{EventStream} per client.

A stream starts with a C{snapshot} event (status, recent changes, history),
then the services matching its query in C{services} events and a C{ready}
event, then a C{changes} event per flush of the view (the changes since the
last one, in order; see L{txinferno.web.view.RegistryView}) and a C{sample}
event per sample of the history.  The services are made as the client
reads them, so a client that does not read holds the server to little more
than the transport's buffer; changes that wait behind them, or behind a
full buffer, are kept up to L{EventStream.maxBuffer} bytes (or one event),
beyond which the stream starts again from a snapshot, and the second time
is closed (the browser's C{EventSource} reconnects and starts again from a
snapshot).
"""

from collections import deque
from itertools import chain

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from txinferno.web.query import jsonError, queryWords

__all__ = ["EventStream", "EventsResource", "MAX_STREAMS", "MAX_BUFFER"]

MAX_STREAMS = 256
"""
Default of L{EventsResource.maxStreams}.
"""
MAX_BUFFER = 1024 * 1024
"""
Default of L{EventStream.maxBuffer}, in bytes.
"""
RETRY = 1000
"""
The reconnection delay the streams ask browsers for, in milliseconds.
"""


@implementer(IPushProducer)
class EventStream:
    """
    One client's stream of events, a push producer on its HTTP request.

    @ivar words: the query whose services the stream shows.
    @ivar maxBuffer: the most bytes of events kept waiting for the client.
    """

    _log = Logger()
    _paused = False
    _closed = False
    _resyncing = False

    def __init__(self, view, request, words, maxBuffer=MAX_BUFFER):
        """
        @type view: L{txinferno.web.view.RegistryView}
        @type request: L{twisted.web.server.Request}
        @param words: the query's words.
        @type maxBuffer: L{int}
        """
        self.view = view
        self.words = words
        self.maxBuffer = maxBuffer
        self._request = request
        self._pending = deque()
        self._pendingBytes = 0
        self._services = None

    def start(self):
        """
        Send the headers and the snapshot, and join the view's streams.
        """
        request = self._request
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._finished)
        self.view.addStream(self)
        request.write(b"retry: %d\n\n" % (RETRY,) + self.view.snapshotEvent(self.words))
        self._services = self.view.servicesEvents(self.words)
        self._flush()

    def send(self, data):
        """
        Send one event, or keep it until the client reads; start again from
        a snapshot (the second time, close the stream) when more than
        L{maxBuffer} bytes wait in more than one event.  One event is kept
        whatever its size: the changes of a burst come as one event, shared
        by every stream of a query, and a snapshot would be no smaller.

        @type data: L{bytes}
        """
        if self._closed:
            return
        if not (self._paused or self._services is not None or self._pending):
            self._request.write(data)
            return
        self._pending.append(data)
        self._pendingBytes += len(data)
        if self._pendingBytes <= self.maxBuffer or len(self._pending) == 1:
            return
        self._pending.clear()
        self._pendingBytes = 0
        if self._resyncing:
            self._log.warn(
                "event stream to {peer} closed: more than {limit} bytes waiting twice",
                peer=self._request.getClientAddress(),
                limit=self.maxBuffer,
            )
            self.view.streamsDropped += 1
            self.abort()
        else:
            self._resyncing = True
            self.view.streamsResynced += 1
            self._services = chain(
                [self.view.snapshotEvent(self.words)], self.view.servicesEvents(self.words)
            )

    def abort(self):
        """
        Close the stream at once, dropping what waits.
        """
        self._close()
        self._request.transport.abortConnection()

    def _flush(self):
        while not (self._paused or self._closed):
            if self._services is not None:
                data = next(self._services, None)
                if data is None:
                    self._services = None
                    self._resyncing = False
                    continue
            elif self._pending:
                data = self._pending.popleft()
                self._pendingBytes -= len(data)
            else:
                return
            self._request.write(data)

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._flush()

    def stopProducing(self):
        self._close()

    def _close(self):
        self._closed = True
        self._paused = True
        self._pending.clear()
        self._pendingBytes = 0
        self._services = None
        self.view.streams.discard(self)

    def _finished(self, result):
        self._close()


class EventsResource(Resource):
    """
    C{GET /v1/events?ATTR=VALUE...}: an L{EventStream} of the services the
    query finds; 503 once L{maxStreams} streams are open.

    @ivar maxStreams: the most streams open at once.
    @ivar maxBuffer: each stream's L{EventStream.maxBuffer}.
    """

    isLeaf = True

    def __init__(self, view, maxStreams=MAX_STREAMS, maxBuffer=MAX_BUFFER):
        Resource.__init__(self)
        self.view = view
        self.maxStreams = maxStreams
        self.maxBuffer = maxBuffer

    def render_GET(self, request):
        words = queryWords(request)
        if len(self.view.streams) >= self.maxStreams:
            self.view.streamsRefused += 1
            return jsonError(
                request, 503, "too many event streams open (limit %d)" % (self.maxStreams,)
            )
        EventStream(self.view, request, words, self.maxBuffer).start()
        return NOT_DONE_YET
