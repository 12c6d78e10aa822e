"""
The ServiceTask task: keep one service registered while the registry is
reachable, with its current attributes.
"""

from __future__ import annotations

from collections import Counter
from enum import Enum

from constantly import NamedConstant
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from txinferno.client._backoff import Backoff
from txinferno.client._states import StateMachine
from txinferno.client.event import DEFAULT_MAX_DELAY
from txinferno.client.health import HealthMonitor, HealthState
from txinferno.errors import RegistrationLost, RegistrationRejected
from txinferno.interfaces import IHealthCheck, IRegistryTask
from txinferno.wire.rules import AttributesLike, CheckedRegistration, normaliseAttrs

__all__ = ["ServiceTask", "HEALTH_ATTRIBUTE"]

HEALTH_ATTRIBUTE = "health"
"""
The attribute that says, in a service kept registered while its health
check fails, the state of the check: C{unknown}, C{passing} or C{failing}.
"""


class _ServiceState(Enum):
    """
    The states of a L{ServiceTask}.
    """

    stopped = "not started, or stopped: nothing in flight"
    idle = "started, waiting for its health check to pass"
    registering = "a registration attempt in flight"
    registered = "the registry holds the service"
    waiting = "backing off before the next attempt"
    held = "its retry due while the change stream is down: waiting for start()"


@implementer(IRegistryTask)
class ServiceTask(StateMachine):
    """
    Keeps one service registered while its manager is connected, and
    registers it again, with its current attributes, after every reconnect.

    A registration the registry rejects (a name someone else holds) or
    closes is reported (L{whenRegistered} fails with
    L{RegistrationRejected}; the reason is logged, once for as long as it
    stays the same) and retried with exponential backoff and jitter, by
    Twisted's L{twisted.application.internet.backoffPolicy}, as
    L{twisted.application.internet.ClientService} reconnects.

    A service with a health check (an L{txinferno.interfaces.IHealthCheck},
    run by a L{txinferno.client.health.HealthMonitor} while the task is
    started) is registered once the check first passes, unregistered when
    it turns failing, and registered again when it turns passing.  With
    C{keepWhileFailing} it is registered at once and stays registered, its
    L{HEALTH_ATTRIBUTE} attribute saying the check's state.

    @ivar name: the service name.
    @type name: L{str}
    @ivar attrs: the attributes the service should have (including C{persist}
        when asked for); do not change it directly, use L{update}.
    @type attrs: L{dict}
    @ivar manager: the manager this task is attached to, or L{None}.
    @ivar check: its health check, or L{None}.
    @ivar keepWhileFailing: whether it stays registered while its check
        fails.
    @ivar losses: registrations held and then lost.
    @type losses: L{int}
    @ivar failures: failed registration attempts (each retried), by reason.
    @type failures: L{collections.Counter}
    """

    _log = Logger()

    followsChanges = False
    """
    A service only writes to the registry: no C{refresh()} calls.
    """

    initialDelay = 0.5
    factor = 2.7182818284590451
    jitter = 0.1
    maxDelay = DEFAULT_MAX_DELAY
    """
    The longest wait, in seconds, before another registration attempt
    (before jitter); set it on a subclass or an instance.
    """

    def __init__(
        self,
        name: str,
        attrs: AttributesLike = (),
        persist: bool = False,
        check: IHealthCheck | None = None,
        keepWhileFailing: bool = False,
    ) -> None:
        """
        @param name: the service name.
        @type name: L{str}
        @param attrs: its attributes, a mapping or a sequence of
            C{(attr, value)} pairs of L{str}.
        @param persist: whether the registry keeps the service after its
            registration closes (adds the attribute C{persist 1}).
        @param check: a health check: the service is registered only while
            it passes (see L{health}), or L{None}.
        @type check: L{txinferno.interfaces.IHealthCheck}
        @param keepWhileFailing: with a C{check}, keep the service
            registered whatever the check says, with the attribute
            L{HEALTH_ATTRIBUTE} saying C{unknown}, C{passing} or
            C{failing}.
        @raise ValueError: if the registry would reject the name or the
            attributes, if C{keepWhileFailing} is asked for with an
            attribute L{HEALTH_ATTRIBUTE} of its own, or if a C{persist}
            service is to be unregistered while its check fails (the
            registry would keep it).
        """
        checked = CheckedRegistration(name, attrs)
        if persist:
            checked = CheckedRegistration(name, {**checked, "persist": "1"})
        if check is not None and keepWhileFailing:
            if HEALTH_ATTRIBUTE in checked:
                raise ValueError(
                    "service %r: the attribute %s is its health check's" % (name, HEALTH_ATTRIBUTE)
                )
            checked = CheckedRegistration(
                name, {**checked, HEALTH_ATTRIBUTE: HealthState.unknown.name}
            )
        elif check is not None and persist:
            raise ValueError(
                "service %r persists: the registry keeps it when it is unregistered "
                "for a failing check; keep it registered while failing (keepWhileFailing=True)"
                % (name,)
            )
        self.name = name
        self.attrs = checked.copy()
        self._checked = checked
        self.manager = None
        self._state = _ServiceState.stopped
        self._registration = None
        self._registering = None
        self._backoff = None
        # whenRegistered() callers; None rather than an empty list, for the
        # memory of ten thousand tasks.
        self._waiting: list[Deferred[ServiceTask]] | None = None
        self._reportedFailure = None
        self._registeredAt = None
        self.check = check
        self.keepWhileFailing = keepWhileFailing
        self._health = None
        self.losses = 0
        self.failures: Counter[str] = Counter()

    def __repr__(self):
        return "<ServiceTask %r %s>" % (
            self.name,
            "registered" if self.registered else "unregistered",
        )

    @property
    def registered(self) -> bool:
        """
        L{True} while the registry holds this service for us.
        """
        return self._state is _ServiceState.registered

    @property
    def health(self) -> NamedConstant | None:
        """
        The L{HealthState} of its check (C{unknown} until a first run ended),
        or L{None} without a check.
        """
        if self.check is None:
            return None
        return HealthState.unknown if self._health is None else self._health.state

    @property
    def _wanted(self):
        """
        Whether the service should be registered now, by what its check
        says.
        """
        return self.check is None or self.keepWhileFailing or self.health is HealthState.passing

    def whenRegistered(self) -> Deferred[ServiceTask]:
        """
        @return: a L{Deferred} that fires with this task once the registry
            holds the service (at once if it does now), or fails with
            L{RegistrationRejected}, carrying the reason, if the next
            registration attempt is rejected.
        """
        if self._state is _ServiceState.registered:
            return succeed(self)
        d: Deferred[ServiceTask] = Deferred()
        if self._waiting is None:
            self._waiting = []
        self._waiting.append(d)
        return d

    def update(self, attrs: AttributesLike) -> None:
        """
        Change attributes: those whose value differs are remembered and, if
        the service is registered, sent to the registry (the others are not
        sent).  While the service is not registered, they are sent with the
        next registration.

        @param attrs: a mapping or a sequence of C{(attr, value)} pairs.
        @raise ValueError: before anything is sent or remembered, if the
            registry would reject the service with these attributes.
        """
        changes = {a: v for a, v in normaliseAttrs(attrs) if self.attrs.get(a) != v}
        if not changes:
            return
        self._checked = CheckedRegistration(self.name, {**self.attrs, **changes})
        self.attrs.update(changes)
        self._sync()

    def start(self) -> Deferred[None]:
        """
        The registry is reachable: register the service (once its check
        passes, with a check).  Harmless when started already, but for a
        service waiting to try again (its registration lost or refused,
        perhaps while the change stream was down, whose retries then wait
        for this call): it tries again now, its backoff afresh.

        @return: a L{Deferred} that fires with L{None} once this first
            attempt has ended (registered or not), or L{None} when there is
            nothing to do.
        """
        return self._handle("start")

    def stop(self) -> Deferred[None]:
        """
        The manager stops, or this task is being detached: stop retrying
        and close the registration.  (A lost change stream does not stop a
        service: its registration stays while its own connection holds.)

        @return: a L{Deferred} that fires with L{None} once the registration
            (or the attempt in progress) is closed.
        """
        if self._health is not None:
            self._health.stop()
        return self._handle("stop")

    def refresh(self) -> None:
        """
        The registry changed: nothing to do, a registration's loss is
        reported by the connection plugin.
        """

    def _healthChanged(self, state, reason):
        """
        Its health check changed state: say so in the registry (when kept
        registered while failing), or register or unregister the service.
        """
        if self.keepWhileFailing:
            self._log.info(
                "service {name} is {state} its health check {check}",
                name=self.name,
                state=state.name,
                check=self.check.description,
            )
            self.update({HEALTH_ATTRIBUTE: state.name})
        elif state is HealthState.passing:
            self._log.info(
                "service {name} passes its health check {check}: registering it",
                name=self.name,
                check=self.check.description,
            )
            self._handle("wanted")
        else:
            self._log.warn(
                "service {name} fails its health check {check}: {reason}; "
                "unregistered until it passes",
                name=self.name,
                check=self.check.description,
                reason=reason.getErrorMessage(),
            )
            self._handle("unwanted")

    # Actions.

    def _started(self):
        self._backoff = None
        self._reportedFailure = None
        registering = self._handle("wanted") if self._wanted else None
        if self.check is not None:
            if self._health is None:
                self._health = HealthMonitor(self.check, self.manager.clock, self._healthChanged)
            self._health.start()
        return registering

    def _register(self):
        """
        Make one registration attempt.

        @return: a L{Deferred} that fires with L{None} once the attempt has
            ended (registered or not).
        """
        attrs = self._checked
        if attrs != self.attrs:
            # Changed directly rather than through update().
            attrs = dict(self.attrs)
        registering = self._registering = self.manager.connection.register(self.name, attrs)
        registering.addCallbacks(self._registered, self._failed)
        return registering

    def _registered(self, registration):
        return self._handle("registered", registration)

    def _failed(self, reason):
        self._handle("failed", reason)

    def _lost(self, reason):
        # Only a loss fails whenLost(): an unregistration fires it.
        self._handle("lost", reason)

    def _retry(self):
        self._handle("retry")

    def _retryDue(self):
        # While the change stream is down, a retry waits for start().
        return self._handle("due" if self.manager.connected else "hold")

    def _restart(self):
        if self._backoff is not None:
            self._backoff.cancel()
        self._backoff = None
        self._reportedFailure = None
        return self._register()

    def _hold(self, registration):
        self._registering = None
        self._registration = registration
        self._registeredAt = self.manager.clock.seconds()
        self._reportedFailure = None
        registration.whenLost().addErrback(self._lost)
        self._sync()
        waiting, self._waiting = self._waiting, None
        for d in waiting or ():
            d.callback(self)

    def _attemptFailed(self, reason):
        self._registering = None
        self._report(reason)
        self._retryLater()
        if reason.check(RegistrationRejected):
            waiting, self._waiting = self._waiting, None
            for d in waiting or ():
                d.errback(reason)

    def _registrationLost(self, reason):
        self._registration = None
        self.losses += 1
        # The connection plugin logs the loss.  A registration held at least
        # as long as the wait that would now follow was a success: the
        # backoff starts afresh.  One lost sooner (a registry that takes a
        # registration and drops it again) makes the wait grow, as a failed
        # attempt does.
        held = self.manager.clock.seconds() - self._registeredAt
        if self._backoff is not None and held >= self._backoff.nextDelay:
            self._backoff.reset()
        self._retryLater()

    def _cancelAttempt(self):
        registering, self._registering = self._registering, None
        # Closes its connection, or gives up its place in the queue.
        registering.cancel()
        return registering

    def _unregister(self):
        registration, self._registration = self._registration, None
        return registration.unregister()

    def _cancelRetry(self):
        self._backoff.cancel()
        return succeed(None)

    def _nothingToClose(self):
        return succeed(None)

    def _discard(self, registration):
        # A registration that came in a state that does not want it.
        return registration.unregister()

    def _report(self, reason):
        """
        Log why a registration attempt failed, unless the last one failed
        for the same reason: a service kept out by a duplicate is logged
        once, not at every retry.  The manager's C{taskLog} makes one line
        of the services that fail together for the same reason.
        """
        if reason.check(RegistrationRejected):
            why = reason.value.reason
        else:
            why = reason.getErrorMessage()
        self.failures[why] += 1
        self._reportedFailure = self.manager.taskLog.reportFailure(
            self._reportedFailure,
            "registration of service {name} failed: {reason}; trying again",
            "{count} registrations failed: {reason}; trying again",
            self.name,
            why,
        )

    def _retryLater(self):
        """
        Register again after the next backoff delay.
        """
        if self._backoff is None:
            self._backoff = Backoff(
                self.manager.clock,
                self.initialDelay,
                self.factor,
                self.jitter,
                self.maxDelay,
            )
        self._backoff.schedule(self._retry)

    def _sync(self):
        """
        Send the attributes the registration does not have yet.
        """
        registration = self._registration
        if registration is None or registration.attrs == self.attrs:
            return
        changes = {a: v for a, v in self.attrs.items() if registration.attrs.get(a) != v}
        if changes:
            try:
                registration.update(changes)
            except RegistrationLost:
                # whenLost() reports it and _lost() registers again.
                pass


_S = _ServiceState
_T = ServiceTask
ServiceTask._transitions = {
    _S.stopped: {
        "start": (_S.idle, _T._started),
        "stop": (_S.stopped, _T._nothingToClose),
        "registered": (_S.stopped, _T._discard),
    },
    _S.idle: {
        "wanted": (_S.registering, _T._register),
        "stop": (_S.stopped, _T._nothingToClose),
        "registered": (_S.idle, _T._discard),
    },
    _S.registering: {
        "registered": (_S.registered, _T._hold),
        "failed": (_S.waiting, _T._attemptFailed),
        "unwanted": (_S.idle, _T._cancelAttempt),
        "stop": (_S.stopped, _T._cancelAttempt),
    },
    _S.registered: {
        "lost": (_S.waiting, _T._registrationLost),
        "unwanted": (_S.idle, _T._unregister),
        "stop": (_S.stopped, _T._unregister),
        "registered": (_S.registered, _T._discard),
    },
    _S.waiting: {
        "retry": (_S.waiting, _T._retryDue),
        "due": (_S.registering, _T._register),
        "hold": (_S.held, None),
        "start": (_S.registering, _T._restart),
        "unwanted": (_S.idle, _T._cancelRetry),
        "stop": (_S.stopped, _T._cancelRetry),
        "registered": (_S.waiting, _T._discard),
    },
    _S.held: {
        "start": (_S.registering, _T._restart),
        "unwanted": (_S.idle, None),
        "stop": (_S.stopped, _T._nothingToClose),
        "registered": (_S.held, _T._discard),
    },
}
# For each state, the events it takes: {event: (next state, action)}; an
# event not listed is ignored.  The table is drawn in docs/client.md.
del _S, _T
