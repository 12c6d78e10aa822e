"""
A test of code that uses a registry, written for trial:

    python -m twisted.trial test_with_trial

The embedded registry runs in the test process, on free loopback ports.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from txinferno import RegistryManager, ServiceTask
from txinferno.testing.embedded import EmbeddedRegistry


class ServiceTests(TestCase):
    def setUp(self):
        self.registry = EmbeddedRegistry()
        self.addCleanup(self.registry.stop)
        return self.registry.start()

    async def test_registered(self):
        manager = RegistryManager.fromDescription(reactor, self.registry.description)
        self.addCleanup(manager.stopService)
        web = manager.attach(ServiceTask("web", {"proto": "http"}))
        manager.startService()
        await web.whenRegistered()
        self.assertEqual(dict(self.registry.registry["web"].attributes()), {"proto": "http"})
