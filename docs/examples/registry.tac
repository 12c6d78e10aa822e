"""
A complete .tac file: a web site registered in the registry while it
listens, one more service kept registered, and a monitor that logs every
HTTP service that comes, changes or goes, all through one manager.

    twistd -ny registry.tac

The registry is $TXINFERNO_REGISTRY (tcp:127.0.0.1:6701 by default); the
site listens on $EXAMPLE_WEB (tcp:8080:interface=127.0.0.1 by default).
"""

import os

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Application
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from txinferno import Monitor, MonitorObserver, RegistryManager, ServiceTask
from txinferno.endpoints import RegisteredServerEndpoint
from txinferno.wire.description import defaultRegistry


class HTTPServices(MonitorObserver):
    log = Logger()

    def added(self, name, attrs):
        self.log.info("HTTP service {name} is here", name=name)

    def removed(self, name, attrs):
        self.log.info("HTTP service {name} is gone", name=name)


application = Application("registry example")

manager = RegistryManager.fromDescription(reactor, defaultRegistry())
manager.setServiceParent(application)
manager.attach(ServiceTask("example-notes", {"proto": "notes", "descr": "an example"}))
manager.attach(Monitor({"proto": "http"}, HTTPServices()))

root = Resource()
root.putChild(b"", Data(b"hello from the example\n", "text/plain"))
site = Site(root)
web = RegisteredServerEndpoint(
    reactor,
    serverFromString(reactor, os.environ.get("EXAMPLE_WEB", "tcp:8080:interface=127.0.0.1")),
    manager=manager,
    name="example-web",
    attrs={"proto": "http"},
)
StreamServerEndpointService(web, site).setServiceParent(application)
