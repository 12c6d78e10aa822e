"""
What the tasks that read the registry (L{txinferno.client.monitor.Monitor},
L{txinferno.client.lookup.Lookup}) do alike: wait for their manager to
restore its services, then run a find, each result an event of the task's
state machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred

from txinferno.client._states import StateMachine
from txinferno.wire.rules import AttributesLike, Services

if TYPE_CHECKING:
    from txinferno.client.manager import RegistryManager

__all__ = ["RegistryReader"]


class RegistryReader(StateMachine):
    """
    A mixin for a task with a state machine, a C{manager} and C{attrs}.  Its
    actions call L{_awaitRestored} and L{_find}, and, on the way out of a
    state, L{_cancelRestore} and L{_cancelFind}; the machine takes the
    events C{restored}, then C{found} (with the services) or C{failed}
    (with the L{Failure}).  A wait or a find cancelled on the way out of a
    state ends in a state that ignores its event.

    @ivar _findStarted: when the last find was sent, on the manager's clock.
    """

    manager: RegistryManager | None
    attrs: AttributesLike
    _restoring: Deferred[RegistryManager] | None = None
    _finding: Deferred[Services] | None = None
    _findStarted = 0.0

    def _awaitRestored(self) -> None:
        assert self.manager is not None
        restoring = self._restoring = self.manager.whenRestored()
        restoring.addCallbacks(self._restored, self._notRestored)

    def _find(self) -> None:
        assert self.manager is not None
        self._restoring = None
        self._findStarted = self.manager.clock.seconds()
        finding = self._finding = self.manager.connection.find(self.attrs)
        finding.addCallbacks(self._found, self._failed)

    def _cancelRestore(self) -> None:
        restoring, self._restoring = self._restoring, None
        if restoring is not None:
            restoring.cancel()

    def _cancelFind(self) -> None:
        finding, self._finding = self._finding, None
        if finding is not None:
            finding.cancel()

    def _restored(self, manager: RegistryManager) -> None:
        self._handle("restored")

    def _notRestored(self, reason: Any) -> None:
        # Cancelled on the way out of the state that waited.
        reason.trap(CancelledError)

    def _found(self, services: Services) -> None:
        self._handle("found", services)

    def _failed(self, reason: Any) -> None:
        self._handle("failed", reason)
