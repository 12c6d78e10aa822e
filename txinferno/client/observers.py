"""
No-op base classes for the observers an application gives txinferno:
subclass them and override only the notifications you care about.
"""

from twisted.python.failure import Failure
from zope.interface import implementer

from txinferno.interfaces import IConnectionStateObserver, IMonitorObserver

__all__ = ["ConnectionStateObserver", "MonitorObserver"]


@implementer(IConnectionStateObserver)
class ConnectionStateObserver:
    """
    Told when a L{txinferno.client.manager.RegistryManager}'s registry becomes
    reachable or unreachable; ignores both.
    """

    def registryConnected(self) -> None:
        """
        The registry became reachable; the tasks start over the next turns.
        """

    def registryLost(self, reason: Failure) -> None:
        """
        The registry became unreachable; the manager is reconnecting.

        @type reason: L{twisted.python.failure.Failure}
        """


@implementer(IMonitorObserver)
class MonitorObserver:
    """
    Told of the services a L{txinferno.client.monitor.Monitor} sees come, change
    and go; ignores everything.
    """

    def added(self, name: str, attrs: dict[str, str]) -> None:
        """
        A service now matches: new, or changed so that it matches.

        @type name: L{str}
        @type attrs: L{dict}
        """

    def updated(self, name: str, attrs: dict[str, str], previous: dict[str, str]) -> None:
        """
        A matching service changed its attributes.

        @param attrs: the new attributes.
        @param previous: the attributes before the change.
        """

    def removed(self, name: str, attrs: dict[str, str]) -> None:
        """
        A service no longer matches: gone, or changed so that it does not.

        @param attrs: its last known attributes.
        """

    def resynced(self) -> None:
        """
        The monitor's view matches the registry again.
        """
