"""
Take the screenshots of docs/operator.md: python docs/screenshots.py

Serves an embedded registry with its web port on loopback, registers a few
services over TCP (with updates, a removal and a rejection, spread over a
few samples so that the chart has a history), and saves what headless
Chromium shows in docs/images/: view.png (every service) and
view-filtered.png (the query C{proto http}).
"""

import os

from twisted.internet import reactor, task, threads
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint

from txinferno.testing._chromium import startChromium
from txinferno.testing.embedded import EmbeddedRegistry, connectRaw
from txinferno.web.site import WebService

HERE = os.path.dirname(os.path.abspath(__file__))

SERVICES = [
    b"web proto http addr tcp!10.0.0.5!80 descr 'front page'",
    b"api proto http addr tcp!10.0.0.6!8080 version 2",
    b"styx proto styx addr tcp!10.0.0.7!6666",
    b"ssh proto ssh addr tcp!10.0.0.8!22",
    b"metrics proto http addr tcp!10.0.0.9!9100 persist 1",
    b"printer proto ipp addr tcp!10.0.0.10!631 location 'room 2'",
]


class _Listening:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.port = Deferred()

    def listen(self, factory):
        return self.endpoint.listen(factory).addCallback(self._listened)

    def _listened(self, port):
        self.port.callback(port.getHost().port)
        return port


def pause(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


async def main():
    registry = await EmbeddedRegistry(reactor).start()
    listening = _Listening(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"))
    web = WebService(listening, server=registry.server, reactor=reactor, sampleInterval=0.4)
    web.startService()
    port = await listening.port
    conns = []
    for line in SERVICES:
        conn = await connectRaw(reactor, "127.0.0.1", registry.newPort)
        conn.send(line + b"\n")
        conns.append(conn)
        await pause(0.5)
    conns[1].send(b"version 3 load 0.4\n")
    await pause(0.5)
    dup = await connectRaw(reactor, "127.0.0.1", registry.newPort)
    dup.send(b"web proto http\n")
    await pause(0.5)
    gone = await connectRaw(reactor, "127.0.0.1", registry.newPort)
    gone.send(b"batch proto job\n")
    await pause(0.5)
    gone.close()
    await pause(0.5)
    driver = await threads.deferToThread(startChromium, 1280, 760)
    try:
        await threads.deferToThread(driver.get, "http://127.0.0.1:%d/" % (port,))
        await pause(1.5)
        await threads.deferToThread(
            driver.save_screenshot, os.path.join(HERE, "images", "view.png")
        )
        box = await threads.deferToThread(driver.find_element, "id", "filter")
        await threads.deferToThread(box.send_keys, "proto http\n")
        await pause(1.5)
        await threads.deferToThread(
            driver.save_screenshot, os.path.join(HERE, "images", "view-filtered.png")
        )
    finally:
        await threads.deferToThread(driver.quit)
    for conn in conns:
        conn.close()
    await web.stopService()
    await registry.stop()


if __name__ == "__main__":
    task.react(lambda _: ensureDeferred(main()))
