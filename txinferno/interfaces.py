"""
The interfaces of txinferno's two plugin kinds, connection plugins (how to
reach a registry) and task plugins (what to keep doing while connected), and
of the observers an application provides.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface

from txinferno.wire.rules import AttributesLike, Services

__all__ = [
    "IRegistryConnection",
    "IRegistration",
    "IChangeStream",
    "IChangeObserver",
    "IRegistryTask",
    "ITaskManager",
    "IConnectionStateObserver",
    "IMonitorObserver",
    "IHealthCheck",
]


class IRegistryConnection(Interface):
    """
    A connection plugin: how to reach one registry.

    Attribute sets are given as a mapping or an ordered sequence of
    C{(attr, value)} pairs of L{str}; services come back as
    C{{name: {attr: value}}}.
    """

    description = Attribute(
        "The registry description string this plugin reaches, such as C{tcp:127.0.0.1:6701}."
    )

    def register(name: str, attrs: AttributesLike) -> Deferred[IRegistration]:
        """
        Register a service and hold it registered until told otherwise.

        @param name: the service name.
        @param attrs: its attributes.
        @raise ValueError: before anything is sent, when the registry would
            reject C{name} or C{attrs}.
        @return: a L{Deferred} that fires with an L{IRegistration} once the
            registry holds the service, or fails with
            L{txinferno.errors.RegistrationRejected} (with the reason, such
            as C{duplicate service name}) or a connection error.
        """

    def find(attrs: AttributesLike) -> Deferred[Services]:
        """
        Run one query: every pair must match, a value of C{*} matches any
        value of an attribute that exists.

        @raise ValueError: before anything is sent, for an invalid query.
        @return: a L{Deferred} that fires with a L{dict} mapping each
            matching service name to a L{dict} of its attributes, or fails
            with L{txinferno.errors.MalformedAnswer},
            L{txinferno.errors.AnswerTooLarge}, a timeout or a connection
            error.
        """

    def watch(observer: IChangeObserver) -> IChangeStream:
        """
        Open the registry's change stream, and reopen it, with backoff,
        whenever it is lost, until it is stopped.

        @param observer: told when the stream is ready, of each change, and
            of each loss.
        @type observer: L{IChangeObserver}
        @return: the stream.
        @rtype: L{IChangeStream}
        """


class IRegistration(Interface):
    """
    One service held registered by a connection plugin.
    """

    name = Attribute("The service name (L{str}).")
    attrs = Attribute("A L{dict} of the service's attributes as the registry last accepted them.")

    def update(attrs: AttributesLike) -> None:
        """
        Add attributes or change their values (the registry cannot delete
        one).

        @raise ValueError: before anything is sent, for invalid attributes.
        @raise txinferno.errors.RegistrationLost: when the registration is
            gone.
        """

    def unregister() -> Deferred[None]:
        """
        Remove the service (unless it persists) by closing its connection.

        @return: a L{Deferred} that fires with L{None} once the connection
            is closed.
        """

    def whenLost() -> Deferred[None]:
        """
        @return: a L{Deferred} that fails, with
            L{txinferno.errors.RegistrationRejected} or
            L{txinferno.errors.RegistrationLost}, if the registration ends
            without L{unregister} being called, and fires with L{None} if it
            ends through L{unregister}.
        """


class IChangeStream(Interface):
    """
    The registry's change stream, kept open by a connection plugin.
    """

    connected = Attribute(
        "L{True} while the stream is open and ready: every change from now on will be reported."
    )

    def stop() -> Deferred[None]:
        """
        Close the stream and stop reopening it.

        @return: a L{Deferred} that fires with L{None} once it is closed.
        """


class IChangeObserver(Interface):
    """
    Told what happens on a change stream.
    """

    def streamReady() -> None:
        """
        The stream is open and ready: every change from now on is reported.
        """

    def registryChanged(version: int) -> None:
        """
        The registry changed (changes close together are reported once).

        @param version: the registry's version after the change.
        @type version: L{int}
        """

    def streamLost(reason: Failure) -> None:
        """
        The stream was lost; it will be reopened unless it was stopped.

        @type reason: L{twisted.python.failure.Failure}
        """


class IRegistryTask(Interface):
    """
    A task plugin: something a registry manager keeps doing while the
    registry is reachable.
    """

    manager = Attribute(
        "The L{ITaskManager} this task is attached to, or L{None}; set by "
        "the manager's C{attach} and C{detach}."
    )

    followsChanges = Attribute(
        "Whether the task wants C{refresh()} calls, read when it is "
        "attached: a task that only writes to the registry (such as a "
        "service) says L{False}, so that a manager holding thousands of "
        "them does not call each one on every change.  A task without "
        "this attribute is taken to follow changes."
    )

    def start() -> Deferred[Any] | None:
        """
        The registry is reachable: it became reachable (first time, or again
        after an outage), or the task was attached while it was; called on
        a later turn of the reactor (see L{txinferno.client.manager.START_BATCH}).

        @return: L{None}, or a L{Deferred} that fires once the task has
            restored what it holds in the registry (tasks that read the
            registry wait for these; see the manager's C{whenRestored}).
        """

    def stop() -> Deferred[Any] | None:
        """
        The registry's change stream was lost (only for a task that follows
        changes: the others keep what they hold), or the manager stops, or
        the task is being detached; it may be called when the task is
        already stopped.

        @return: L{None}, or a L{Deferred} that fires once the task has
            released what it holds (such as a registration).
        """

    def refresh() -> None:
        """
        The registry reported a change (a burst of changes gives one call);
        called only when C{followsChanges} is true.
        """


class ITaskManager(Interface):
    """
    What a task may use of the manager it is attached to
    (L{IRegistryTask.manager}); a L{txinferno.client.manager.RegistryManager}
    provides it.
    """

    clock = Attribute(
        "The L{twisted.internet.interfaces.IReactorTime} the task times its "
        "waits and backoffs with."
    )

    connection = Attribute("The L{IRegistryConnection} to register and find through.")

    connected = Attribute(
        "Whether the registry is reachable now (its change stream is ready), a L{bool}."
    )

    taskLog = Attribute(
        "Where a task logs what happens to many tasks at once, so that a "
        "thousand tasks failing for one reason give one line: its "
        "C{reportFailure(reported, one, many, name, reason)} logs a warning "
        "with the others of this turn (C{one}, a format with C{{name}} and "
        "C{{reason}}, for one task; C{many}, with C{{count}}, for several) "
        "unless C{reason} is C{reported}, the reason last reported for the "
        "task, and returns the reason now reported."
    )

    def detach(task: IRegistryTask) -> Deferred[None]:
        """
        Stop C{task} and attach it no more (a task that ends by itself, such
        as a lookup that has its answer, detaches itself).

        @return: a L{Deferred} that fires once the task has stopped.
        """

    def whenRestored() -> Deferred[Any]:
        """
        @return: a L{Deferred} that fires with the manager once the registry
            is reachable and every task started since has restored what it
            holds there; tasks that read the registry wait for it before
            their first query.  Cancelling it stops the wait.
        """


class IConnectionStateObserver(Interface):
    """
    Told when a manager's registry becomes reachable or unreachable.
    """

    def registryConnected() -> None:
        """
        The registry became reachable; the tasks start over the next turns of
        the reactor (see L{txinferno.client.manager.START_BATCH}).
        """

    def registryLost(reason: Failure) -> None:
        """
        The registry became unreachable; the manager is reconnecting.

        @type reason: L{twisted.python.failure.Failure}
        """


class IMonitorObserver(Interface):
    """
    Told of the services a monitor sees come, change and go.
    """

    def added(name: str, attrs: dict[str, str]) -> None:
        """
        A service now matches: new, or changed so that it matches.

        @type name: L{str}
        @param attrs: its attributes.
        @type attrs: L{dict}
        """

    def updated(name: str, attrs: dict[str, str], previous: dict[str, str]) -> None:
        """
        A matching service changed its attributes.

        @param attrs: the new attributes.
        @param previous: the attributes before the change.
        """

    def removed(name: str, attrs: dict[str, str]) -> None:
        """
        A service no longer matches: gone, or changed so that it does not.

        @param attrs: its last known attributes.
        """

    def resynced() -> None:
        """
        The monitor's view matches the registry: after its first query, and
        after each reconnect (once its differences have been reported).
        """


class IHealthCheck(Interface):
    """
    A health check of a service: one probe of whether it answers, and how
    often and how patiently to run it.  A check never blocks the reactor.
    """

    description = Attribute(
        "A short L{str} naming what is checked, for logs, such as "
        "C{tcp:127.0.0.1:80} or C{http://127.0.0.1:8080/}."
    )

    interval = Attribute(
        "Seconds (a positive L{float}) from the end of one run to the start of the next."
    )

    timeout = Attribute(
        "Seconds (a positive L{float}) a run may take: one still running "
        "then is cancelled and counts as a failure."
    )

    rise = Attribute(
        "How many consecutive passes (a positive L{int}) turn a failing check passing."
    )

    fall = Attribute(
        "How many consecutive failures (a positive L{int}) turn a passing check failing."
    )

    def check() -> Deferred[None]:
        """
        Run the check once.

        @return: a L{Deferred} that fires with L{None} when the check
            passes, or fails with a L{twisted.python.failure.Failure} saying
            why (usually L{txinferno.errors.HealthCheckFailed}) when it
            fails.  Cancelling it stops the run (closes its connection,
            kills its process).
        """
