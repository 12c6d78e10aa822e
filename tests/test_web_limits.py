"""
The web port under bad input and load: malformed HTTP, huge query strings,
many idle event streams and streams that do not read.  The memory it holds
stays bounded and the registry's own ports are not affected.
"""

import pytest_twisted
from support import bounded, turn
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from websupport import EventsClient, ServedWeb, get, getJSON, openEvents, served

from txinferno.testing.embedded import connectRaw, exchange

__all__ = ["served"]


async def registryStillServes(served):
    """
    The registry's ports answer as usual.
    """
    conn = await bounded(connectRaw(reactor, "127.0.0.1", served.registry.newPort))
    conn.send(b"probe proto check\n")
    answer = b""
    while answer != b"probe proto check\n":
        answer = await bounded(
            exchange(reactor, "127.0.0.1", served.registry.findPort, b"proto check\n")
        )
    await bounded(conn.close())


async def rawHTTP(served, data):
    """
    Send C{data} to the web port.

    @return: everything it answered, once it closed the connection.
    """
    conn = await bounded(connectRaw(reactor, "127.0.0.1", served.webPort))
    conn.send(data)
    return await bounded(conn.whenClosed())


@pytest_twisted.ensureDeferred
async def test_malformedHTTP(served):
    """
    Malformed requests get 400 and a closed connection; the registry serves
    on.
    """
    for junk in [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"\x00\xff\xfe binary \x01\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    ]:
        answer = await rawHTTP(served, junk)
        assert answer.startswith(b"HTTP/1.1 400 "), (junk, answer)
    await registryStillServes(served)


@pytest_twisted.ensureDeferred
async def test_hugeQueryString(served):
    """
    A request line longer than twisted.web's limit (16 KiB) closes the
    connection at once; a long query within it is answered.
    """
    answer = await rawHTTP(served, b"GET /v1/services?" + b"a=b&" * 50000 + b" HTTP/1.1\r\n\r\n")
    assert answer == b""
    code, services = await getJSON(
        served.url("/v1/services?" + "&".join("a%d=*" % i for i in range(1000)))
    )
    assert (code, services) == (200, [])
    await registryStillServes(served)


@pytest_twisted.ensureDeferred
async def test_hugeHeaders(served):
    """
    Too many header bytes are refused.
    """
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(400))
    answer = await rawHTTP(served, b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    await registryStillServes(served)


@pytest_twisted.ensureDeferred
async def test_streamLimit():
    """
    Past the limit on open event streams, more are refused with 503 (and
    counted); one closing makes room again.
    """
    s = await ServedWeb(maxStreams=2).start()
    try:
        streams = [await openEvents(s), await openEvents(s)]
        for stream in streams:
            await stream.ready()
        refused = EventsClient("/v1/events")
        conn = await bounded(connectRaw(reactor, "127.0.0.1", s.webPort))
        conn.send(b"GET /v1/events HTTP/1.0\r\n\r\n")
        answer = await bounded(conn.whenClosed())
        assert answer.startswith(b"HTTP/1.0 503 ")
        assert b"too many event streams open (limit 2)" in answer
        del refused
        _, _, body = await get(s.url("/metrics"))
        assert b'txinferno_registry_limits_hit_total{limit="streams"} 1.0' in body
        streams[0].transport.loseConnection()
        await bounded(streams[0].closed)
        while len(s.view.streams) > 1:
            await bounded(turn())
        again = await openEvents(s)
        await again.ready()
        for stream in (streams[1], again):
            stream.transport.loseConnection()
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_thousandsOfIdleStreams():
    """
    2,000 clients asking for event streams and then reading nothing: no more
    than the limit are served, the others are refused, and the registry
    answers meanwhile.
    """
    s = await ServedWeb(maxStreams=50).start()
    try:
        clients = [EventsClient("/v1/events") for _ in range(2000)]
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", s.webPort)
        await bounded(gatherResults([connectProtocol(endpoint, c) for c in clients]), 60)
        await registryStillServes(s)
        statuses = await bounded(gatherResults([c.responded for c in clients]), 60)
        assert statuses.count(b"HTTP/1.0 200 OK") == 50
        assert statuses.count(b"HTTP/1.0 503 Service Unavailable") == 1950
        refused = [c for c in clients if c.status.endswith(b"Unavailable")]
        await bounded(gatherResults([c.closed for c in refused]), 60)
        assert len(s.view.streams) == 50
        for c in clients:
            c.transport.abortConnection()
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_slowStreamDropped():
    """
    A stream whose client does not read starts again from a snapshot once
    more than its buffer's bound of changes wait, and is closed when that
    happens again before it has read the snapshot; the registry and the
    other streams go on.
    """
    s = await ServedWeb(maxBuffer=64 * 1024).start()
    try:
        slow = await openEvents(s)
        await slow.ready()
        slow.transport.pauseProducing()
        fast = await openEvents(s)
        await fast.ready()
        conn = await bounded(connectRaw(reactor, "127.0.0.1", s.registry.newPort))
        conn.send(b"big proto http\n")
        value = b"v" * 4000
        updates = 0
        while s.view.streamsDropped == 0:
            assert updates < 10000, "the slow stream was never dropped"
            conn.send(b"pad %s%d\n" % (value, updates))
            updates += 1
            kind, change = await fast.next("change")
            for stream in s.view.streams:
                assert stream._pendingBytes <= stream.maxBuffer
        assert len(s.view.streams) == 1
        slow.transport.resumeProducing()
        await bounded(slow.closed)
        assert s.view.streamsResynced == 1
        _, _, body = await get(s.url("/metrics"))
        assert b'txinferno_registry_limits_hit_total{limit="stream buffer"} 1.0' in body
        assert b"txinferno_web_streams_resynced_total 1.0" in body
        await registryStillServes(s)
        fast.transport.loseConnection()
        conn.close()
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_laggingStreamResynced():
    """
    A stream whose client falls behind a burst of changes, then reads
    again, gets a fresh snapshot of the registry as it is, then the changes
    after it, and stays open.
    """
    s = await ServedWeb(maxBuffer=16 * 1024).start()
    try:
        lagging = await openEvents(s)
        await lagging.ready()
        lagging.transport.pauseProducing()
        conn = await bounded(connectRaw(reactor, "127.0.0.1", s.registry.newPort))
        conn.send(b"big proto http\n")
        updates = 0
        while s.view.streamsResynced == 0:
            assert updates < 10000, "the lagging stream was never resynced"
            conn.send(b"pad %s%d\n" % (b"v" * 4000, updates))
            updates += 1
            await bounded(turn())
        lagging.transport.resumeProducing()
        # The changes sent before the stream fell behind come first.
        while True:
            kind, data = await lagging.next()
            if kind == "snapshot":
                break
            assert kind == "change"
        lagging.events.insert(0, (kind, data))
        snapshot, services = await lagging.ready()
        assert [x["name"] for x in services] == ["big"]
        assert services[0]["attrs"]["pad"] == "v" * 4000 + str(updates - 1)
        conn.send(b"after 1\n")
        # Changes made while the snapshot waited to be read come after it
        # (each with the whole service, so the view ends as the registry).
        change = {"line": ""}
        while not change["line"].startswith("big after 1 "):
            _, change = await lagging.next("change")
        assert s.view.streamsDropped == 0
        lagging.transport.loseConnection()
        conn.close()
    finally:
        await s.stop()
