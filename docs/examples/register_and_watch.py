"""
Register a service, watch the registry, change the service, look it up and
leave; against a registry with the default ports (start one with
C{twistd -n regmgr}).

    python docs/examples/register_and_watch.py [DESCRIPTION]

DESCRIPTION is a registry description string, C{tcp:127.0.0.1} by default.
"""

import sys

from twisted.internet import defer, task

from txinferno.client.manager import RegistryManager
from txinferno.client.monitor import Monitor
from txinferno.client.observers import MonitorObserver
from txinferno.client.service import ServiceTask


class Printer(MonitorObserver):
    def __init__(self):
        self.gone = defer.Deferred()

    def added(self, name, attrs):
        print("added", name, attrs)

    def updated(self, name, attrs, previous):
        print("updated", name, attrs, "was", previous)

    def removed(self, name, attrs):
        print("removed", name, attrs)
        if not self.gone.called:
            self.gone.callback(name)

    def resynced(self):
        print("in step with the registry")


async def main(reactor, description="tcp:127.0.0.1"):
    manager = RegistryManager.fromDescription(reactor, description)
    manager.startService()
    try:
        await manager.whenConnected().addTimeout(10, reactor)
        printer = Printer()
        manager.attach(Monitor({"proto": "*"}, printer))
        service = manager.attach(
            ServiceTask("tcp!example!22", {"proto": "ssh", "descr": "an example"})
        )
        await service.whenRegistered()
        service.update({"descr": "it's updated\nover two lines"})
        print("lookup:", await manager.lookup({"proto": "ssh"}, timeout=5))
        await manager.detach(service)
        await printer.gone.addTimeout(10, reactor)
    finally:
        await manager.stopService()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:])))
