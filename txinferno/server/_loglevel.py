"""
Whether anything would record a log event of a given level, so that a line
emitted for every change costs next to nothing when the log is filtered
above its level (C{twist --log-level warn}): L{twisted.logger} builds and
dispatches every event, filtered or not.

Only the observers whose filtering can be read are looked through: a
L{LogPublisher}'s observers, and a L{FilteringLogObserver} whose
predicates are L{LogLevelFilterPredicate}s (as C{twist} installs) and
whose filtered events go nowhere.  Any other observer is taken to want
every event, so an event is only ever skipped when it is certain that
nothing would record it.  What is read are twisted.logger's private
attributes: where a Twisted release lacks one, the event counts as wanted.
"""

from functools import lru_cache, partial

from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
)

try:
    from twisted.logger._observer import bitbucketLogObserver
except ImportError:  # a Twisted that moved it: no filtered event is known to go nowhere
    bitbucketLogObserver = object()

__all__ = ["wants"]

MAX_DEPTH = 8
"""
The most observers nested in one another that are looked through; beyond,
the event is taken to be wanted.
"""


def wants(logger: Logger, level: LogLevel) -> bool:
    """
    @param logger: the logger that would emit the event.
    @param level: the event's level.
    @return: whether an event of C{level} emitted by C{logger} may reach an
        observer that records it; L{False} only when every observer it
        would reach filters it out by its level.
    """
    namespace = logger.namespace
    if not namespace:
        return True
    return _reaches(logger.observer, level, _prefixes(namespace), MAX_DEPTH)


def _reaches(observer, level: LogLevel, prefixes: tuple[str, ...], depth: int) -> bool:
    if depth == 0:
        return True
    kind = type(observer)
    if kind is LogPublisher:
        observers = getattr(observer, "_observers", None)
        if observers is None:
            return True
        for each in observers:
            if _reaches(each, level, prefixes, depth - 1):
                return True
        return False
    if kind is FilteringLogObserver:
        inner = getattr(observer, "_observer", None)
        return (
            inner is None
            or _passes(observer, level, prefixes)
            and _reaches(inner, level, prefixes, depth - 1)
        )
    return True


def _passes(observer: FilteringLogObserver, level: LogLevel, prefixes: tuple[str, ...]) -> bool:
    """
    @return: whether a L{FilteringLogObserver} may let an event of C{level}
        through (or hand it to an observer of the events it filters out).
    """
    should = getattr(observer, "_shouldLogEvent", None)
    negative = getattr(observer, "_negativeObserver", None)
    if negative is not bitbucketLogObserver or type(should) is not partial or not should.args:
        return True
    for predicate in should.args[0]:
        levels = getattr(predicate, "_logLevelsByNamespace", None)
        if type(predicate) is not LogLevelFilterPredicate or levels is None:
            return True
        # LogLevelFilterPredicate.logLevelForNamespace, without its string
        # work: the most specific namespace that has a level decides.
        for prefix in prefixes:
            threshold = levels.get(prefix)
            if threshold is not None:
                if level < threshold:
                    return False
                break
    return True


@lru_cache(maxsize=64)
def _prefixes(namespace: str) -> tuple[str, ...]:
    """
    @return: C{namespace} and the namespaces it is in, most specific first,
        ending with C{""}: C{("a.b.c", "a.b", "a", "")}.
    """
    segments = namespace.split(".")
    return tuple(".".join(segments[:n]) for n in range(len(segments), 0, -1)) + ("",)
