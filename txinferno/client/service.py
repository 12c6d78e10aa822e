"""
The ServiceTask task: keep one service registered while the registry is
reachable, with its current attributes.
"""

from typing import Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ReconnectingClientFactory
from twisted.logger import Logger
from zope.interface import implementer

from txinferno.client.health import HealthMonitor, HealthState
from txinferno.errors import RegistrationLost, RegistrationRejected
from txinferno.interfaces import IHealthCheck, IRegistryTask
from txinferno.wire.rules import CheckedRegistration, normaliseAttrs

__all__ = ["ServiceTask", "HEALTH_ATTRIBUTE"]

HEALTH_ATTRIBUTE = "health"
"""
The attribute that says, in a service kept registered while its health
check fails, the state of the check: C{unknown}, C{passing} or C{failing}.
"""


class _Backoff(ReconnectingClientFactory):
    """
    The backoff of L{ReconnectingClientFactory} (exponential growth by
    C{factor}, normal jitter of C{jitter} times the delay, up to C{maxDelay}),
    applied to a call rather than to a connection: L{retry} calls it after
    the next delay.  It is its own connector.
    """

    noisy = False

    def __init__(self, clock, call, initialDelay, factor, jitter, maxDelay):
        self.clock = clock
        self.connect = call
        self.initialDelay = self.delay = initialDelay
        self.factor = factor
        self.jitter = jitter
        self.maxDelay = maxDelay

    def retry(self):
        """
        Call again after the next delay.
        """
        ReconnectingClientFactory.retry(self, self)


@implementer(IRegistryTask)
class ServiceTask:
    """
    Keeps one service registered while its manager is connected, and
    registers it again, with its current attributes, after every reconnect.

    A registration the registry rejects (a name someone else holds) or
    closes is reported (L{whenRegistered} fails with
    L{RegistrationRejected}; the reason is logged, once for as long as it
    stays the same) and retried with exponential backoff and jitter, as
    Twisted's L{twisted.internet.protocol.ReconnectingClientFactory}
    reconnects.

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
    """

    _log = Logger()

    followsChanges = False
    """
    A service only writes to the registry: no C{refresh()} calls.
    """

    initialDelay = 0.5
    factor = 2.7182818284590451
    jitter = 0.1
    maxDelay = 30

    def __init__(self, name, attrs=(), persist=False, check: Optional[IHealthCheck] = None,
                 keepWhileFailing: bool = False):
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
                raise ValueError("service %r: the attribute %s is its health check's"
                                 % (name, HEALTH_ATTRIBUTE))
            checked = CheckedRegistration(name, {**checked, HEALTH_ATTRIBUTE: HealthState.unknown.name})
        elif check is not None and persist:
            raise ValueError("service %r persists: the registry keeps it when it is unregistered "
                             "for a failing check; keep it registered while failing (keepWhileFailing=True)"
                             % (name,))
        self.name = name
        self.attrs = checked.copy()
        self._checked = checked
        self.manager = None
        self._running = False
        self._registration = None
        self._registering = None
        self._backoff = None
        self._waiting = None
        self._reportedFailure = None
        self._registeredAt = None
        self.check = check
        self.keepWhileFailing = keepWhileFailing
        self._health = None

    def __repr__(self):
        return "<ServiceTask %r %s>" % (self.name, "registered" if self.registered else "unregistered")

    @property
    def registered(self):
        """
        L{True} while the registry holds this service for us.
        """
        return self._registration is not None

    @property
    def health(self):
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

    def whenRegistered(self):
        """
        @return: a L{Deferred} that fires with this task once the registry
            holds the service (at once if it does now), or fails with
            L{RegistrationRejected}, carrying the reason, if the next
            registration attempt is rejected.
        """
        if self._registration is not None:
            return succeed(self)
        d = Deferred()
        if self._waiting is None:
            self._waiting = []
        self._waiting.append(d)
        return d

    def update(self, attrs):
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

    def start(self):
        """
        The registry is reachable: register the service.

        @return: a L{Deferred} that fires with L{None} once this first
            attempt has ended (registered or not), or L{None} when there is
            nothing to do.
        """
        self._running = True
        self._backoff = None
        self._reportedFailure = None
        registering = None
        if self._wanted and self._registration is None and self._registering is None:
            registering = self._register()
        if self.check is not None:
            if self._health is None:
                self._health = HealthMonitor(self.check, self.manager.clock, self._healthChanged)
            self._health.start()
        return registering

    def stop(self):
        """
        The registry is unreachable, or this task is being detached: stop
        retrying and close the registration.

        @return: a L{Deferred} that fires with L{None} once the registration
            (or the attempt in progress) is closed.
        """
        self._running = False
        if self._health is not None:
            self._health.stop()
        return self._release()

    def _release(self):
        """
        Stop retrying and close the registration, or the attempt in
        progress.

        @return: a L{Deferred} that fires with L{None} once it is closed.
        """
        if self._backoff is not None:
            self._backoff.stopTrying()
            self._backoff = None
        registering, self._registering = self._registering, None
        if registering is not None:
            # Closes its connection, or gives up its place in the queue.
            registering.cancel()
            return registering
        registration, self._registration = self._registration, None
        if registration is None:
            return succeed(None)
        return registration.unregister()

    def refresh(self):
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
            self._log.info("service {name} is {state} its health check {check}",
                           name=self.name, state=state.name, check=self.check.description)
            self.update({HEALTH_ATTRIBUTE: state.name})
        elif state is HealthState.passing:
            self._log.info("service {name} passes its health check {check}: registering it",
                           name=self.name, check=self.check.description)
            if self._running and self._registration is None and self._registering is None:
                self._register()
        else:
            self._log.warn("service {name} fails its health check {check}: {reason}; "
                           "unregistered until it passes",
                           name=self.name, check=self.check.description,
                           reason=reason.getErrorMessage())
            self._release()

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
        registering.addCallbacks(
            self._registered,
            self._failed,
            callbackArgs=(registering,),
            errbackArgs=(registering,),
        )
        return registering

    def _registered(self, registration, registering):
        if registering is not self._registering:
            return registration.unregister()
        self._registering = None
        self._registration = registration
        self._registeredAt = self.manager.clock.seconds()
        self._reportedFailure = None
        registration.whenLost().addBoth(self._lost, registration)
        self._sync()
        waiting, self._waiting = self._waiting, None
        for d in waiting or ():
            d.callback(self)

    def _failed(self, reason, registering):
        if registering is not self._registering:
            return None
        self._registering = None
        self._report(reason)
        self._retry()
        if reason.check(RegistrationRejected):
            waiting, self._waiting = self._waiting, None
            for d in waiting or ():
                d.errback(reason)

    def _lost(self, result, registration):
        if registration is not self._registration:
            return None
        self._registration = None
        # The connection plugin logs the loss.  A registration held at least
        # as long as the wait that would now follow was a success: the
        # backoff starts afresh.  One lost sooner (a registry that takes a
        # registration and drops it again) makes the wait grow, as a failed
        # attempt does.
        held = self.manager.clock.seconds() - self._registeredAt
        if self._backoff is not None and held >= self._backoff.delay:
            self._backoff.resetDelay()
        self._retry()

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
        self._reportedFailure = self.manager.taskLog.reportFailure(
            self._reportedFailure,
            "registration of service {name} failed: {reason}; trying again",
            "{count} registrations failed: {reason}; trying again",
            self.name,
            why,
        )

    def _retry(self):
        """
        Register again after the next backoff delay, while running.
        """
        if self._running:
            if self._backoff is None:
                self._backoff = _Backoff(
                    self.manager.clock,
                    self._register,
                    self.initialDelay,
                    self.factor,
                    self.jitter,
                    self.maxDelay,
                )
            self._backoff.retry()

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

