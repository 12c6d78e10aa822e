"""
A log line that no observer would record is not made: L{wants}, and the
registry's change lines under a log filtered above info (as C{twist
--log-level warn} filters it).
"""

import sys

from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
    PredicateResult,
    formatEvent,
)

from txinferno.server._loglevel import MAX_DEPTH, wants
from txinferno.server.registry import Registry

NAMESPACE = "txinferno.server.registry.Registry"


def filtered(level, observer=None, negativeObserver=None):
    """
    @return: a L{LogPublisher} holding a L{FilteringLogObserver} at
        C{level} that hands what passes to C{observer}, as C{twist} sets up
        its log, and the L{LogLevelFilterPredicate}.
    """
    predicate = LogLevelFilterPredicate(level)
    kwargs = {} if negativeObserver is None else {"negativeObserver": negativeObserver}
    filtering = FilteringLogObserver(observer or (lambda event: None), [predicate], **kwargs)
    return LogPublisher(filtering), predicate


def test_plainObserver():
    """
    An observer that is neither a publisher nor a filter takes everything.
    """
    assert wants(Logger(namespace=NAMESPACE, observer=lambda event: None), LogLevel.debug)


def test_filteredByLevel():
    """
    Behind a level filter, a level below the filter's is not wanted; the
    filter's level and above are.
    """
    publisher, _ = filtered(LogLevel.warn)
    log = Logger(namespace=NAMESPACE, observer=publisher)
    assert [wants(log, level) for level in LogLevel.iterconstants()] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_namespaceLevels():
    """
    The most specific namespace given a level decides, as the predicate
    decides.
    """
    publisher, predicate = filtered(LogLevel.warn)
    log = Logger(namespace=NAMESPACE, observer=publisher)
    predicate.setLogLevelForNamespace("txinferno", LogLevel.debug)
    assert wants(log, LogLevel.info)
    predicate.setLogLevelForNamespace("txinferno.server.registry", LogLevel.error)
    assert not wants(log, LogLevel.warn)
    assert wants(Logger(namespace="txinferno.client", observer=publisher), LogLevel.info)


def test_anyObserverWanting():
    """
    A publisher wants an event when any of its observers does; one with
    none wants nothing.
    """
    publisher, _ = filtered(LogLevel.warn)
    log = Logger(namespace=NAMESPACE, observer=publisher)
    assert not wants(Logger(namespace=NAMESPACE, observer=LogPublisher()), LogLevel.critical)
    publisher.addObserver(lambda event: None)
    assert wants(log, LogLevel.debug)


def test_unknownFiltering():
    """
    What cannot be read is taken to want the event: a filter that hands
    what it drops to another observer, a predicate of another kind, a
    chain of observers deeper than L{MAX_DEPTH}, a logger with no
    namespace.
    """
    publisher, _ = filtered(LogLevel.warn, negativeObserver=lambda event: None)
    assert wants(Logger(namespace=NAMESPACE, observer=publisher), LogLevel.info)
    other = FilteringLogObserver(lambda event: None, [lambda event: PredicateResult.yes])
    assert wants(Logger(namespace=NAMESPACE, observer=other), LogLevel.info)
    deep = LogPublisher()
    for _ in range(MAX_DEPTH):
        deep = LogPublisher(deep)
    assert wants(Logger(namespace=NAMESPACE, observer=deep), LogLevel.info)
    assert wants(Logger(namespace="", observer=LogPublisher()), LogLevel.info)


def changes(registry):
    """
    Register, update, unregister and remove services.
    """
    registry.release(registry.register(None, ["a", "k", "v"]))
    s = registry.register(None, ["b", "persist", "1"])
    registry.update(s, ["k", "w"])
    registry.release(s)
    registry.remove(s)
    anonymous = registry.create(None, "me")
    registry.name(anonymous, ["c", "k", "v"])
    registry.release(anonymous)


def emitted(registry):
    """
    @return: how many events L{changes} makes (calls of L{Logger.emit},
        whether or not an observer records them).
    """
    calls = []
    code = Logger.emit.__code__

    def profile(frame, event, arg):
        if event == "call" and frame.f_code is code:
            calls.append(frame)

    sys.setprofile(profile)
    try:
        changes(registry)
    finally:
        sys.setprofile(None)
    return len(calls)


def test_registryChangesFilteredOut():
    """
    With the log filtered above info, the registry's change lines (and
    with C{logFullChanges} their debug lines) are not even made.
    """
    registry = Registry(logFullChanges=True)
    registry._log = Logger(namespace=NAMESPACE, observer=filtered(LogLevel.warn)[0])
    assert emitted(registry) == 0


def test_registryChangesRecorded():
    """
    With the log at info, every change line is made and recorded, as
    without the check; at debug with C{logFullChanges}, their debug lines
    too.
    """
    events = []
    registry = Registry()
    registry._log = Logger(namespace=NAMESPACE, observer=filtered(LogLevel.info, events.append)[0])
    assert emitted(registry) == len(events) == 8
    assert [formatEvent(e) for e in events] == [
        "service a registered with k v",
        "service a removed",
        "service b registered with persist 1",
        "service b updated with k w",
        "service b persists",
        "service b removed",
        "service c registered with k v",
        "service c removed",
    ]
    loud = Registry(logFullChanges=True)
    events.clear()
    loud._log = Logger(namespace=NAMESPACE, observer=filtered(LogLevel.debug, events.append)[0])
    changes(loud)
    assert [e["log_level"] for e in events].count(LogLevel.debug) == 4
