"""
Tests for the no-op observer base classes in L{txinferno.client.observers}.
"""

from twisted.python.failure import Failure
from zope.interface.verify import verifyClass, verifyObject

from txinferno.client.observers import ConnectionStateObserver, MonitorObserver
from txinferno.interfaces import IConnectionStateObserver, IMonitorObserver


def test_connectionStateObserver():
    """
    L{ConnectionStateObserver} provides L{IConnectionStateObserver} and
    ignores both notifications.
    """
    verifyClass(IConnectionStateObserver, ConnectionStateObserver)
    observer = ConnectionStateObserver()
    verifyObject(IConnectionStateObserver, observer)
    assert observer.registryConnected() is None
    assert observer.registryLost(Failure(RuntimeError("gone"))) is None


def test_monitorObserver():
    """
    L{MonitorObserver} provides L{IMonitorObserver} and ignores every
    notification.
    """
    verifyClass(IMonitorObserver, MonitorObserver)
    observer = MonitorObserver()
    verifyObject(IMonitorObserver, observer)
    assert observer.added("svc", {"a": "1"}) is None
    assert observer.updated("svc", {"a": "2"}, {"a": "1"}) is None
    assert observer.removed("svc", {"a": "2"}) is None
    assert observer.resynced() is None


def test_subclassOverridesOne():
    """
    A subclass overrides only what it needs and still provides the
    interface.
    """

    class Adds(MonitorObserver):
        def __init__(self):
            self.seen = []

        def added(self, name, attrs):
            self.seen.append(name)

    observer = Adds()
    verifyObject(IMonitorObserver, observer)
    observer.added("svc", {})
    observer.removed("svc", {})
    assert observer.seen == ["svc"]
