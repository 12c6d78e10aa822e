"""
Tests for the web port's JSON API, event stream and page (L{txinferno.web}),
against a registry served on loopback, over real sockets.
"""

import pytest_twisted
from support import bounded, turn
from twisted.internet import reactor
from websupport import ServedWeb, get, getJSON, openEvents, served

from txinferno.testing.embedded import connectRaw, exchange

__all__ = ["served"]


async def register(served, line):
    """
    Register a service over the registry's C{new} port.

    @return: the open connection; the service is in the registry.
    """
    conn = await bounded(connectRaw(reactor, "127.0.0.1", served.registry.newPort))
    before = served.registry.registry.version
    conn.send(line)
    while served.registry.registry.version == before:
        await bounded(turn())
    return conn


@pytest_twisted.ensureDeferred
async def test_services(served):
    """
    C{/v1/services} lists every service with its attributes and its line in
    the registry's quoting; a query string is a registry query.
    """
    a = await register(served, b"web proto http descr 'my site'\n")
    b = await register(served, b"ssh proto tcp\n")
    code, services = await getJSON(served.url("/v1/services"))
    assert code == 200
    assert services == [
        {
            "name": "web",
            "attrs": {"descr": "my site", "proto": "http"},
            "line": "web descr 'my site' proto http",
        },
        {"name": "ssh", "attrs": {"proto": "tcp"}, "line": "ssh proto tcp"},
    ]
    code, services = await getJSON(served.url("/v1/services?proto=http"))
    assert [s["name"] for s in services] == ["web"]
    code, services = await getJSON(served.url("/v1/services?descr=*"))
    assert [s["name"] for s in services] == ["web"]
    code, services = await getJSON(served.url("/v1/services?descr=my%20site&proto=http"))
    assert [s["name"] for s in services] == ["web"]
    code, services = await getJSON(served.url("/v1/services?proto=ftp"))
    assert (code, services) == (200, [])
    # The answer follows a change of a service listed before.
    before = served.registry.registry.version
    b.send(b"proto ftp\n")
    while served.registry.registry.version == before:
        await bounded(turn())
    code, services = await getJSON(served.url("/v1/services?proto=ftp"))
    assert [s["line"] for s in services] == ["ssh proto ftp"]
    a.close()
    b.close()


@pytest_twisted.ensureDeferred
async def test_oneService(served):
    """
    C{/v1/services/NAME} answers one service, 404 for a name not held.
    """
    conn = await register(served, b"web proto http\n")
    code, service = await getJSON(served.url("/v1/services/web"))
    assert (code, service["attrs"]) == (200, {"proto": "http"})
    code, error = await getJSON(served.url("/v1/services/nothing"))
    assert code == 404
    assert error == {"error": "no service nothing"}
    code, error = await getJSON(served.url("/v1/services/web/more"))
    assert code == 404
    conn.close()


@pytest_twisted.ensureDeferred
async def test_answerSizeLimit():
    """
    An answer larger than the limit is refused with 413, and counted.
    """
    s = await ServedWeb(maxAnswerSize=100).start()
    try:
        conns = [await register(s, b"svc%d proto http pad %s\n" % (i, b"x" * 20)) for i in range(5)]
        code, error = await getJSON(s.url("/v1/services"))
        assert code == 413
        assert "larger than the limit of 100 bytes" in error["error"]
        code, services = await getJSON(s.url("/v1/services/svc1"))
        assert code == 200
        code, _, body = await get(s.url("/metrics"))
        assert b'txinferno_registry_limits_hit_total{limit="answer"} 1.0' in body
        for c in conns:
            c.close()
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_status(served):
    """
    C{/v1/status} gives the version, counts, uptime, ports and connections.
    """
    conn = await register(served, b"web proto http persist 1\n")
    code, status = await getJSON(served.url("/v1/status"))
    assert code == 200
    assert status["version"] == 1
    assert (status["services"], status["persistent"], status["static"]) == (1, 1, 0)
    assert status["ports"]["new"] == "tcp!127.0.0.1!%d" % (served.registry.newPort,)
    assert status["connections"]["new"] == 1
    assert status["uptime"] >= 0
    assert status["changes"] == {"registered": 1}
    conn.close()


@pytest_twisted.ensureDeferred
async def test_readOnly(served):
    """
    Nothing is written through the web port: other methods than GET are
    refused.
    """
    from twisted.web.client import Agent

    for path in (b"/v1/services", b"/v1/services/x", b"/v1/status", b"/"):
        response = await bounded(Agent(reactor).request(b"POST", served.url().encode()[:-1] + path))
        assert response.code == 405, path
    assert len(served.registry.registry) == 0


@pytest_twisted.ensureDeferred
async def test_eventStream(served):
    """
    A stream starts with the snapshot and the services, then tells every
    change as it happens: registered, updated, removed (the connection
    closed) and rejected with the reason.
    """
    held = await register(served, b"old proto http\n")
    stream = await openEvents(served)
    snapshot, services = await stream.ready()
    assert stream.status == b"HTTP/1.0 200 OK"
    assert b"text/event-stream" in stream.headers
    assert snapshot["status"]["version"] == 1
    assert [c["kind"] for c in snapshot["changes"]] == ["registered"]
    assert [s["line"] for s in services] == ["old proto http"]
    conn = await bounded(connectRaw(reactor, "127.0.0.1", served.registry.newPort))
    conn.send(b"web proto http\n")
    kind, change = await stream.next()
    assert (kind, change["kind"], change["name"], change["shown"]) == (
        "change",
        "registered",
        "web",
        True,
    )
    assert change["version"] == 2
    conn.send(b"descr 'a b'\n")
    kind, change = await stream.next()
    assert (change["kind"], change["line"]) == ("updated", "web descr 'a b' proto http")
    conn.close()
    kind, change = await stream.next()
    assert (change["kind"], change["name"], change["shown"]) == ("removed", "web", False)
    dup = await bounded(connectRaw(reactor, "127.0.0.1", served.registry.newPort))
    dup.send(b"old proto x\n")
    kind, change = await stream.next()
    assert (change["kind"], change["name"], change["reason"]) == (
        "rejected",
        "old",
        "duplicate service name",
    )
    held.close()
    stream.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_filteredStream(served):
    """
    A stream of a query has only the matching services, and marks each
    change as shown or not, so that a service that stops matching leaves
    the view.
    """
    other = await register(served, b"ssh proto tcp\n")
    stream = await openEvents(served, "proto=http")
    snapshot, services = await stream.ready()
    assert snapshot["query"] == ["proto", "http"]
    assert services == []
    conn = await bounded(connectRaw(reactor, "127.0.0.1", served.registry.newPort))
    conn.send(b"web proto http\n")
    _, change = await stream.next("change")
    assert (change["name"], change["shown"]) == ("web", True)
    conn.send(b"proto ftp\n")
    _, change = await stream.next("change")
    assert (change["kind"], change["shown"]) == ("updated", False)
    other.close()
    _, change = await stream.next("change")
    assert (change["name"], change["shown"]) == ("ssh", False)
    conn.close()
    stream.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_samples():
    """
    The view samples the number of services and of changes, and pushes
    each sample with the status to the streams.
    """
    s = await ServedWeb(sampleInterval=0.05).start()
    try:
        stream = await openEvents(s)
        await stream.ready()
        conn = await register(s, b"web proto http\n")
        while True:
            _, sample = await stream.next("sample")
            if sample["changes"]:
                break
        assert sample["services"] == 1
        assert sample["status"]["version"] == 1
        conn.close()
        stream.transport.loseConnection()
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_page(served):
    """
    The page and its script and style sheet are served.
    """
    conn = await register(served, b"web proto http\n")
    code, response, body = await get(served.url("/"))
    assert code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
    assert b'<script src="static/view.js">' in body
    assert b'<dd id="version">1</dd>' in body
    code, response, body = await get(served.url("/static/view.js"))
    assert code == 200
    assert b"EventSource" in body
    code, response, body = await get(served.url("/static/view.css"))
    assert code == 200
    conn.close()


@pytest_twisted.ensureDeferred
async def test_metrics(served):
    """
    C{/metrics} has the registry's figures in Prometheus' text format.
    """
    conn = await register(served, b"web proto http\n")
    answer = await bounded(
        exchange(reactor, "127.0.0.1", served.registry.findPort, b"proto http\n")
    )
    assert answer == b"web proto http\n"
    dup = await bounded(connectRaw(reactor, "127.0.0.1", served.registry.newPort))
    dup.send(b"web x y\n")
    await bounded(dup.whenClosed())
    code, response, body = await get(served.url("/metrics"))
    assert code == 200
    text = body.decode()
    for line in [
        "txinferno_registry_services 1.0",
        "txinferno_registry_registrations_total 1.0",
        'txinferno_registry_rejections_total{reason="duplicate service name"} 1.0',
        "txinferno_registry_find_seconds_count 1.0",
        'txinferno_registry_connections{port="new"} 1.0',
        'txinferno_registry_sent_bytes_total{port="find"} 15.0',
        'txinferno_registry_received_bytes_total{port="find"} 11.0',
        'txinferno_registry_limits_hit_total{limit="line"} 0.0',
        "txinferno_registry_watchers_dropped_total 0.0",
    ]:
        assert line + "\n" in text, line
    conn.close()


@pytest_twisted.ensureDeferred
async def test_twoServersOneProcess():
    """
    Two web ports in one process keep their metrics apart.
    """
    a = await ServedWeb().start()
    b = await ServedWeb().start()
    try:
        conn = await register(a, b"web proto http\n")
        _, _, body = await get(a.url("/metrics"))
        assert b"txinferno_registry_services 1.0\n" in body
        _, _, body = await get(b.url("/metrics"))
        assert b"txinferno_registry_services 0.0\n" in body
        conn.close()
    finally:
        await a.stop()
        await b.stop()
