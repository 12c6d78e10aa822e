"""
The registry model, without any I/O: the services, their attributes, the
version counter and the queries, following Inferno's ndb/registry exactly
(see the protocol notes, sections 1 to 5).

Services are kept in slot order (a new service takes the next slot; removing
one moves the last service into its slot) and each service's attributes
newest-first (a new attribute goes to the front; setting an existing one
keeps it in its place and reverses the order of those in front of it).

A registry bounds what clients can make it hold (L{Registry} limits): the
services in all, the attributes and bytes of one service, and the
persistent services left behind by one peer address.
"""

import enum
import time
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter

from twisted.logger import Logger, LogLevel

from txinferno.errors import RegistryError
from txinferno.server._logbudget import LogBudget
from txinferno.server._loglevel import wants
from txinferno.server.change import ChangeKind, IRegistryObserver, RegistryChange
from txinferno.wire import attrdb
from txinferno.wire.persist import persists
from txinferno.wire.rules import nameError
from txinferno.wire.words import formatLine, quote

__all__ = [
    "Registry",
    "RegisteredService",
    "ServiceState",
    "REGISTRY_USER",
    "queryMatches",
    "MAX_SERVICES",
    "MAX_ATTRIBUTES",
    "MAX_SERVICE_BYTES",
    "MAX_PERSISTENT_PER_ORIGIN",
    "shortened",
]

REGISTRY_USER = "registry"
"""
The user that owns the registry's own files, its static services and the
services registered through the TCP C{new} port (which, in Inferno, is a
program of the registry's user).
"""

MAX_SERVICES = 100000
"""
Default of L{Registry.maxServices}.
"""
MAX_ATTRIBUTES = 256
"""
Default of L{Registry.maxAttributes}.
"""
MAX_SERVICE_BYTES = 16384
"""
Default of L{Registry.maxServiceBytes}: two full lines.
"""
MAX_PERSISTENT_PER_ORIGIN = 1000
"""
Default of L{Registry.maxPersistentPerOrigin}.
"""
LOGGED_ATTRIBUTES = 100
"""
How many characters of a change's attributes, or of a service name, a log
line shows.
"""


def _pairs(words):
    """
    @return: the C{(attr, value)} pairs of an even list of words.
    """
    it = iter(words)
    return list(zip(it, it))


def _utf8Length(text):
    """
    @return: the length of C{text} in UTF-8 (without encoding it when it is
        ASCII, which Python knows at once).
    """
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _wordBytes(attr, value):
    """
    @return: what one attribute adds to the size of its service: its UTF-8
        bytes and two separators.
    """
    return _utf8Length(attr) + _utf8Length(value) + 2


def _reorder(order, pairs):
    """
    Apply the order rule for setting C{pairs} one after the other: a new
    attribute goes to the front; setting an existing one keeps it in its
    place and reverses those in front of it.

    The order is worked on as a string with one character per attribute
    (the character of code I{i} stands for the I{i}th name), so that
    finding an attribute and reversing the attributes in front of it are
    each one scan of machine words, not a comparison of names per
    attribute: a line of I{k} pairs on a service of I{n} attributes costs
    I{n} + I{k} steps of the interpreter (and I{k} times I{n} bytes
    scanned, I{n} being bounded by L{Registry.maxAttributes}).

    When every pair sets a distinct attribute the service has not got (a
    registration, most often), the rule comes down to putting them in front
    in the reverse of their order, which is done without the scan.

    @param order: the attribute names, newest first; changed in place.
    @type order: L{list} of L{str}
    @param pairs: the C{(attr, value)} pairs in the order written.
    @return: the value each attribute is left with, by attribute.
    @rtype: L{dict}
    """
    final = dict(pairs)
    if len(final) == len(pairs) and final.keys().isdisjoint(order):
        order[:0] = reversed(final)
        return final
    names = list(order)
    codes = {attr: chr(i) for i, attr in enumerate(names)}
    text = "".join(map(chr, range(len(names))))
    for attr, _value in pairs:
        code = codes.get(attr)
        if code is None:
            code = codes[attr] = chr(len(names))
            names.append(attr)
            text = code + text
        else:
            position = text.find(code)
            if position:
                text = text[position - 1 :: -1] + text[position:]
    order[:] = [names[ord(c)] for c in text]
    return final


def shortened(name: str) -> str:
    """
    @return: a service name for a log line: cut at L{LOGGED_ATTRIBUTES}
        characters, which C{...} then ends.
    """
    if len(name) > LOGGED_ATTRIBUTES:
        return name[:LOGGED_ATTRIBUTES] + "..."
    return name


def _summary(pairs, limit=LOGGED_ATTRIBUTES):
    """
    @return: C{pairs} as words for a log line, cut at C{limit} characters
        (L{None} for no cut).
    @rtype: L{str}
    """
    text = " ".join([word for pair in pairs for word in pair])
    if limit is not None and len(text) > limit:
        text = text[:limit] + "... (%d attributes)" % (len(pairs),)
    return text


def _sizeAfter(service, final):
    """
    @param final: the values C{service} is to be left with, by attribute.
    @return: the size (name, attributes and values in UTF-8, a separator
        after each) of C{service} once they are set.
    @rtype: L{int}
    """
    values = service._values
    size = service._size
    for attr, value in final.items():
        old = values.get(attr)
        if old is not None:
            size -= _wordBytes(attr, old)
        size += _wordBytes(attr, value)
    return size


def _matches(values, pairs):
    """
    @param values: a service's attributes, C{{attr: value}}.
    @return: whether C{values} has every C{(attr, value)} of C{pairs}, a
        value C{*} matching any value.
    """
    for attr, value in pairs:
        v = values.get(attr)
        if v is None or (value != "*" and v != value):
            return False
    return True


def queryMatches(words: Sequence[str], values: Mapping[str, str]) -> bool:
    """
    @param words: the words of a query (see L{Registry.find}).
    @param values: a service's attributes, C{{attr: value}}.
    @return: whether the query finds a service with these attributes.
    """
    if not words or len(words) % 2:
        return True
    return _matches(values, _pairs(words))


class ServiceState(enum.Enum):
    """
    The life of a L{RegisteredService}: C{ANONYMOUS} (created by an open of
    C{new} over Styx, not yet named: invisible, changes no version), then
    C{REGISTERED} (named and listed), then C{REMOVED}.
    """

    ANONYMOUS = "anonymous"
    REGISTERED = "registered"
    REMOVED = "removed"


class RegisteredService:
    """
    One service in a L{Registry}.

    @ivar name: the service name.
    @type name: L{str}
    @ivar owner: whatever registered it (the server passes its connection);
        L{None} for a static service and for a persistent service whose
        connection has closed.
    @ivar static: whether it was loaded from a static file.
    @ivar origin: the peer address (host) that registered it, or L{None}.
    @ivar state: a L{ServiceState}.
    @ivar id: the registry's number for it, counting up from 0 (its Styx
        qid path is C{id << 4 | 5}).
    @ivar uid: the user that owns it (L{REGISTRY_USER} for static services
        and those registered through the TCP C{new} port, the attach name
        over Styx).
    @ivar writes: the number of accepted writes to it (its Styx qid
        version).
    @ivar atime: when its file was last read (seconds since the epoch).
    @ivar mtime: when it was last written.
    """

    __slots__ = (
        "name",
        "owner",
        "static",
        "origin",
        "state",
        "id",
        "uid",
        "writes",
        "atime",
        "mtime",
        "_values",
        "_order",
        "_slot",
        "_line",
        "_size",
    )

    def __init__(self, name, owner, static=False, origin=None, id=0, uid=REGISTRY_USER, now=0):
        self.name = name
        self.owner = owner
        self.static = static
        self.origin = origin
        self.state = ServiceState.ANONYMOUS
        self.id = id
        self.uid = uid
        self.writes = 0
        self.atime = self.mtime = now
        self._values = {}
        self._order = []
        self._slot = None
        self._line = None
        self._size = (_utf8Length(name) if name is not None else 0) + 1

    def __repr__(self):
        return "<RegisteredService %r>" % (self.name,)

    @property
    def registered(self):
        """
        Whether the service is still in its registry.
        """
        return self._slot is not None

    def get(self, attr, default=None):
        """
        @return: the value of C{attr}, or C{default} when the service does
            not have it.
        """
        return self._values.get(attr, default)

    def attributes(self):
        """
        @return: the attributes, newest-first as the registry lists them.
        @rtype: L{list} of C{(attr, value)} pairs
        """
        return [(a, self._values[a]) for a in self._order]

    def matches(self, words: Sequence[str]) -> bool:
        """
        @param words: the words of a query (see L{Registry.find}).
        @return: whether the query finds this service.
        """
        return queryMatches(words, self._values)

    def line(self):
        """
        @return: the service as a line of a C{find} answer: its name and
            attributes, quoted, with a trailing newline (computed once per
            change).
        @rtype: L{bytes}
        """
        if self._line is None:
            words = [self.name]
            for a in self._order:
                words.append(a)
                words.append(self._values[a])
            self._line = formatLine(words)
        return self._line


class Registry:
    """
    The services of one registry.

    Observers added with L{addObserver} are called with the new version after
    every change, that is, after every version bump: a registration, an
    accepted update (even one that changes nothing) and the removal of a
    service.  Opening a connection, a rejected write, loading static
    services and queries change nothing.

    Change observers (L{txinferno.server.change.IRegistryObserver}, added
    with L{addChangeObserver}) are told what changed: every registration,
    update and removal, and every rejection the server reports with
    L{reportRejection}.

    Each change (and each static service loaded, each registration
    refused for odd words) is logged as an info line of its own, whose
    attributes are cut at L{LOGGED_ATTRIBUTES} characters, while changes
    come at a rate an operator can read; past that rate, on a registry
    given a clock, they are counted by kind and summed up in one info line
    a second (see L{txinferno.server._logbudget}).  With C{logFullChanges}
    set, every change also has a debug line with every attribute.  A line
    no observer would record (the log filtered above its level, as C{twist
    --log-level warn} does) is not made, nor counted: see
    L{txinferno.server._loglevel.wants}.  The warnings a client can make
    the server repeat, about connections rejected, cut or closed, have a
    budget of their own, shared by every port, through L{warn}.

    @ivar version: the version counter, starting at 0.
    @type version: L{int}
    @ivar started: when the registry was made (seconds since the epoch).
    @ivar maxServices: the most services (static ones included) the registry
        holds; a registration beyond is refused with C{registry full}.
    @ivar maxAttributes: the most attributes of one registered service; a
        write that would go beyond is refused.
    @ivar maxServiceBytes: the most bytes of one registered service (name,
        attributes and values in UTF-8, a separator after each); a write
        that would go beyond is refused.
    @ivar maxPersistentPerOrigin: the most persistent services whose
        connections have closed that one origin (peer address) may leave;
        beyond, a service whose connection closes is removed even though it
        says C{persist}, and that is logged.
    @ivar logFullChanges: whether each change is logged at debug level too,
        with all its attributes, however many changes come.
    """

    _log = Logger()

    def __init__(
        self,
        clock=None,
        maxServices: int = MAX_SERVICES,
        maxAttributes: int = MAX_ATTRIBUTES,
        maxServiceBytes: int = MAX_SERVICE_BYTES,
        maxPersistentPerOrigin: int = MAX_PERSISTENT_PER_ORIGIN,
        logFullChanges: bool = False,
    ):
        """
        @param clock: an L{IReactorTime} giving the times of writes and
            reads, and running the summaries of the change lines; the
            system clock when L{None}, and then every change has a line
            of its own (there is no clock to sum them up with).
        """
        self._clock = clock
        self.started = self.now()
        self._ids = 0
        self.version = 0
        self.maxServices = maxServices
        self.maxAttributes = maxAttributes
        self.maxServiceBytes = maxServiceBytes
        self.maxPersistentPerOrigin = maxPersistentPerOrigin
        self.logFullChanges = logFullChanges
        self._slots: list[RegisteredService] = []
        self._byName: dict[str, RegisteredService] = {}
        self._index: dict[str, dict[str, RegisteredService | set[RegisteredService]]] = {}
        self._holders: dict[str, int] = {}
        self._observers: list[Callable[[int], object]] = []
        self._persisted: dict[str, int] = {}
        self._changeObservers: list[IRegistryObserver] = []
        # Logger is a descriptor that makes a new logger at every access:
        # this one, bound to this registry, is made once.
        self._log = self._log
        self._changeLog = LogBudget(self._log, clock)
        self._warningLog = LogBudget(self._log, clock, "warning", LogLevel.warn)

    def __len__(self):
        return len(self._slots)

    def __iter__(self):
        """
        @return: an iterator over the services, in slot order.
        """
        return iter(list(self._slots))

    def __contains__(self, name):
        return name in self._byName

    def __getitem__(self, name):
        """
        @return: the service called C{name}.
        @rtype: L{RegisteredService}
        @raise KeyError: when there is none.
        """
        return self._byName[name]

    def addObserver(self, observer):
        """
        Call C{observer(version)} after every change.
        """
        self._observers.append(observer)

    def removeObserver(self, observer):
        """
        Stop calling an observer added with L{addObserver}.
        """
        self._observers.remove(observer)

    def addChangeObserver(self, observer: IRegistryObserver) -> None:
        """
        Tell C{observer} of every change from now on.

        @type observer: L{txinferno.server.change.IRegistryObserver}
        """
        self._changeObservers.append(observer)

    def removeChangeObserver(self, observer: IRegistryObserver) -> None:
        """
        Stop telling an observer added with L{addChangeObserver}.
        """
        self._changeObservers.remove(observer)

    def reportRejection(self, name: str | None, reason: str) -> None:
        """
        Tell the change observers that a write was rejected (the server's
        C{new} port calls it when it closes a connection for an error).

        @param name: the service named, or L{None}.
        @type name: L{str} or L{None}
        @param reason: the error text.
        @type reason: L{str}
        """
        if self._changeObservers:
            self._tell(RegistryChange(ChangeKind.rejected, name, (), self.version, reason))

    def _tell(self, change):
        for observer in list(self._changeObservers):
            observer.registryChanged(change)

    def _told(self, kind, service, attributes):
        """
        Tell the change observers of a change of C{service}.
        """
        if self._changeObservers:
            self._tell(RegistryChange(kind, service.name, attributes, self.version))

    def _checkNewName(self, name):
        """
        Check that a service called C{name} may be added: the name check,
        then room for one more service.

        @raise RegistryError: with the text of L{checkName}, or C{registry
            full}.
        """
        self.checkName(name)
        if len(self._slots) >= self.maxServices:
            raise RegistryError("registry full: %d services" % (self.maxServices,))

    def _announceRegistered(self, service):
        """
        Log, count and tell the observers that C{service} is registered.
        """
        attributes = service.attributes()
        self._logChange("registered", "service {name} registered with {attrs}", service, attributes)
        self._bump()
        self._told(ChangeKind.registered, service, attributes)

    def checkName(self, name):
        """
        Apply the registry's name check.

        @type name: L{str}
        @raise RegistryError: with Inferno's text: C{bad character in service
            name}, C{bad service name} or C{duplicate service name}.
        """
        error = nameError(name)
        if error is not None:
            raise RegistryError(error)
        if name in self._byName:
            raise RegistryError("duplicate service name")

    def register(self, owner, words, origin=None):
        """
        Apply the first write of a C{new} connection: C{NAME [ATTR VALUE]...}.

        A name followed by an odd number of words is taken, then the write
        fails: the service is added and at once removed, which bumps the
        version once.

        @param owner: what registers it (the server passes its connection).
        @param words: the words of the write.
        @type words: L{list} of L{str}
        @param origin: the peer address (host) it comes from, counted by
            L{maxPersistentPerOrigin}; L{None} for no count.
        @type origin: L{str} or L{None}
        @return: the new service.
        @rtype: L{RegisteredService}
        @raise RegistryError: when the name check fails, the attribute
            words are odd in number or a limit would be passed (nothing is
            added then).
        """
        name = words[0] if words else ""
        self._checkNewName(name)
        service = self._new(name, owner, REGISTRY_USER, origin)
        if len(words) % 2 == 0:
            self._add(service)
            self._remove(service)
            error = RegistryError("odd number of attribute words after the service name")
            log = self._log
            if wants(log, LogLevel.info) and self._changeLog.admits("refused"):
                log.info(
                    "service {name} refused: {error}",
                    name=quote(shortened(name)),
                    error=error.text,
                )
            self._bump()
            raise error
        pairs = _pairs(words[1:])
        size = self._checkLimits(service, pairs)
        self._add(service)
        self._set(service, pairs, size)
        self._written(service)
        self._announceRegistered(service)
        return service

    def update(self, service, words):
        """
        Apply a later write of a C{new} connection: C{ATTR VALUE...}, adding
        attributes or replacing their values.

        @param service: the service the connection registered.
        @type service: L{RegisteredService}
        @param words: the words of the write.
        @type words: L{list} of L{str}
        @raise RegistryError: with Inferno's text: C{bad syntax} for an
            empty write, C{odd attribute/value pairs} for an odd number of
            words, C{buggy program!} for a service no longer in the
            registry; or for a limit it would pass.
        """
        if not service.registered:
            raise RegistryError("buggy program!")
        if not words:
            raise RegistryError("bad syntax")
        if len(words) % 2:
            raise RegistryError("odd attribute/value pairs")
        pairs = _pairs(words)
        self._set(service, pairs, self._checkLimits(service, pairs))
        self._written(service)
        self._logChange("updated", "service {name} updated with {attrs}", service, pairs)
        self._bump()
        self._told(ChangeKind.updated, service, service.attributes())

    def _checkLimits(self, service, pairs):
        """
        Check that setting C{pairs} leaves C{service} within
        L{maxAttributes} and L{maxServiceBytes}.

        @return: the service's size once they are set (see L{_set}).
        @rtype: L{int}
        @raise RegistryError: when it would not.
        """
        values = service._values
        final = dict(pairs)
        if values:
            added = sum(1 for attr in final if attr not in values)
        else:
            added = len(final)
        if len(values) + added > self.maxAttributes:
            raise RegistryError(
                "too many attributes: more than %d for one service" % (self.maxAttributes,)
            )
        size = _sizeAfter(service, final)
        if size > self.maxServiceBytes:
            raise RegistryError("service too large: more than %d bytes" % (self.maxServiceBytes,))
        return size

    def _logChange(self, kind, format, service, pairs):
        """
        Log one change: an info line, its attributes cut, when the change
        log admits it (else it counts the change as C{kind}), then (with
        L{logFullChanges}) a debug line with them all.  A line that no
        observer would record (see L{wants}) is not made at all.
        """
        log = self._log
        if wants(log, LogLevel.info) and self._changeLog.admits(kind):
            log.info(format, name=shortened(service.name), attrs=_summary(pairs))
        if self.logFullChanges and wants(log, LogLevel.debug):
            log.debug(format, name=service.name, attrs=_summary(pairs, None))

    def _logService(self, kind, format, service):
        """
        Log an info line about one service (its removal, its persisting)
        when the change log admits it (else it counts it as C{kind}),
        unless no observer would record it.
        """
        log = self._log
        if wants(log, LogLevel.info) and self._changeLog.admits(kind):
            log.info(format, name=shortened(service.name))

    def warn(self, kind: str, log: Logger, format: str, **fields: object) -> None:
        """
        Log a warning that a client can make the server repeat (a
        connection rejected, cut or closed), within the budget of warnings
        all the registry's ports share: past it, the warning is counted as
        C{kind} and summed up in one line a second by the registry's own
        logger, as changes are (see L{txinferno.server._logbudget}).

        @param kind: what happened, as a summary counts it after its count:
            a plural such as C{new connections closed}.
        @param log: the logger of the line, when it is logged.
        @param format: its format, with C{fields}.
        """
        if self._warningLog.admits(kind):
            log.warn(format, **fields)

    def flushLog(self) -> None:
        """
        Log now the summaries of the changes and warnings counted and not
        yet summed up (see L{txinferno.server._logbudget.LogBudget.flush}),
        instead of within a second: the server calls it when it stops.
        """
        self._changeLog.flush()
        self._warningLog.flush()

    def release(self, service):
        """
        The connection that registered C{service} has closed: remove the
        service unless its C{persist} attribute, read now, is a non-zero
        integer (see L{persists}), or it is static or already gone.

        @type service: L{RegisteredService}
        @return: whether the service was removed.
        @rtype: L{bool}
        """
        if not service.registered:
            if service.state is ServiceState.ANONYMOUS:
                service.state = ServiceState.REMOVED
            return False
        service.owner = None
        if service.static:
            return False
        if persists(service.get("persist")):
            origin = service.origin
            held = self._persisted.get(origin, 0)
            if origin is None or held < self.maxPersistentPerOrigin:
                if origin is not None:
                    self._persisted[origin] = held + 1
                self._logService("persisting", "service {name} persists", service)
                return False
            self.warn(
                "services removed instead of persisting",
                self._log,
                "service {name} removed instead of persisting: {origin} already left"
                " {limit} persistent services",
                name=shortened(service.name),
                origin=origin,
                limit=self.maxPersistentPerOrigin,
            )
        else:
            self._logService("removed", "service {name} removed", service)
        self._remove(service)
        self._bump()
        self._told(ChangeKind.removed, service, service.attributes())
        return True

    def create(self, owner, uid):
        """
        Open C{new} over Styx: make an anonymous service, not listed and not
        counted as a change until L{name} names it.

        @param owner: what holds it (the Styx server passes its connection).
        @param uid: the user that owns it.
        @type uid: L{str}
        @rtype: L{RegisteredService}
        """
        return self._new(None, owner, uid)

    def name(self, service, words):
        """
        Apply the first write to an anonymous service over Styx: C{NAME
        [ATTR VALUE]...}. A name followed by an odd number of words is kept
        (the service is registered without those words) and the write then
        fails; other failures leave it anonymous.

        @type service: L{RegisteredService}
        @type words: L{list} of L{str}
        @raise RegistryError: with Inferno's text: C{bad syntax} (no words),
            those of L{checkName}, C{odd attribute/value pairs}, C{buggy
            program!} (the service was removed).
        """
        if service.state is ServiceState.REMOVED:
            raise RegistryError("buggy program!")
        if not words:
            raise RegistryError("bad syntax")
        name = words[0]
        self._checkNewName(name)
        odd = len(words) % 2 == 0
        pairs = [] if odd else _pairs(words[1:])
        service.name = name
        service._size = _utf8Length(name) + 1
        try:
            size = self._checkLimits(service, pairs)
        except RegistryError:
            service.name = None
            raise
        self._add(service)
        if not odd:
            self._set(service, pairs, size)
            self._written(service)
        self._announceRegistered(service)
        if odd:
            raise RegistryError("odd attribute/value pairs")

    def remove(self, service):
        """
        Remove a service whatever its C{persist} attribute (a Styx
        C{Tremove}, or the clunk of a creating fid opened with C{ORCLOSE}).
        Removing an anonymous service counts as a change too.

        @type service: L{RegisteredService}
        @raise RegistryError: C{file does not exist} if it is already gone.
        """
        if service.state is ServiceState.REMOVED:
            raise RegistryError("file does not exist")
        removed = service.registered
        if removed:
            if service.owner is None and persists(service.get("persist")):
                self._forgetPersisted(service)
            self._remove(service)
            self._logService("removed", "service {name} removed", service)
        else:
            service.state = ServiceState.REMOVED
        service.owner = None
        self._bump()
        if removed:
            self._told(ChangeKind.removed, service, service.attributes())

    def now(self):
        """
        @return: the current time, in whole seconds since the epoch.
        @rtype: L{int}
        """
        return int(self._clock.seconds() if self._clock is not None else time.time())

    def _forgetPersisted(self, service):
        """
        A persistent service left by its connection goes: its origin may
        leave one more.
        """
        origin = service.origin
        held = self._persisted.get(origin, 0)
        if held > 1:
            self._persisted[origin] = held - 1
        else:
            self._persisted.pop(origin, None)

    def find(self, words):
        """
        Run a query.

        Every C{ATTR VALUE} pair must be matched by an attribute of the
        service with that name and value; the value C{*} matches any value
        of an attribute the service has.  An odd number of words matches
        every service.

        @param words: the words of the query.
        @type words: L{list} of L{str}
        @return: the matching services in slot order.
        @rtype: L{list} of L{RegisteredService}
        """
        if not words or len(words) % 2:
            return list(self._slots)
        pairs = _pairs(words)
        best = None
        for attr, value in pairs:
            byValue = self._index.get(attr)
            if byValue is None:
                return []
            if value == "*":
                size = self._holders[attr]
            else:
                found = byValue.get(value)
                if found is None:
                    return []
                size = 1 if type(found) is RegisteredService else len(found)
            if best is None or size < best[0]:
                best = (size, attr, value)

        size, attr, value = best
        if size * 4 > len(self._slots):
            return [s for s in self._slots if _matches(s._values, pairs)]
        byValue = self._index[attr]
        groups = byValue.values() if value == "*" else [byValue[value]]
        candidates = []
        for group in groups:
            if type(group) is RegisteredService:
                candidates.append(group)
            else:
                candidates.extend(group)
        return sorted(
            (s for s in candidates if _matches(s._values, pairs)), key=attrgetter("_slot")
        )

    def answer(self, words):
        """
        Answer a query as the C{find} port does.

        @param words: the words of the query (see L{find}).
        @return: one line per matching service (see
            L{RegisteredService.line}); empty when nothing matches.
        @rtype: L{bytes}
        """
        return b"".join([s.line() for s in self.find(words)])

    def loadStatic(self, source):
        """
        Add the static services of an attrdb(6) file: every entry with a
        C{service=NAME} pair becomes a persistent service NAME whose
        attributes are the entry's other pairs.  No change is reported and
        the version does not move.  Lines that look like the wire format
        written by mistake (bare words in a row) and a file with no service
        are logged as warnings.

        @param source: a path or an open file (see L{attrdb.load}).

        @return: the number of services added.
        @rtype: L{int}
        @raise OSError: when the file cannot be read.
        @raise ValueError: when it cannot be parsed (L{attrdb.AttrdbError},
            L{UnicodeDecodeError}).
        @raise RegistryError: when a name fails the name check; nothing is
            added then.
        """
        names = set()
        warnings = []
        services = attrdb.loadServices(source, warnings)
        where = source if isinstance(source, str) else getattr(source, "name", "static services")
        for warning in warnings:
            self._log.warn("{file}: {warning}", file=str(where), warning=warning)
        for name, _pairs in services:
            self.checkName(name)
            if name in names:
                raise RegistryError("duplicate service name")
            names.add(name)
        for name, pairs in services:
            service = self._new(name, None, REGISTRY_USER)
            service.static = True
            self._add(service)
            self._set(service, pairs, _sizeAfter(service, dict(pairs)))
            self._logChange(
                "loaded", "static service {name} loaded with {attrs}", service, service.attributes()
            )
        return len(services)

    def _bump(self):
        self.version += 1
        for observer in list(self._observers):
            observer(self.version)

    def _new(self, name, owner, uid, origin=None):
        service = RegisteredService(
            name, owner, origin=origin, id=self._ids, uid=uid, now=self.now()
        )
        self._ids += 1
        return service

    def _written(self, service):
        service.writes += 1
        service.mtime = self.now()

    def _add(self, service):
        service.state = ServiceState.REGISTERED
        service._slot = len(self._slots)
        self._slots.append(service)
        self._byName[service.name] = service

    def _remove(self, service):
        slot = service._slot
        last = self._slots.pop()
        if last is not service:
            self._slots[slot] = last
            last._slot = slot
        service._slot = None
        service.state = ServiceState.REMOVED
        del self._byName[service.name]
        for attr, value in service._values.items():
            self._unindex(service, attr, value)

    def _unindex(self, service, attr, value):
        """
        Take C{service} out of the index entry of C{(attr, value)}, and out
        of the count of the holders of C{attr}.
        """
        self._unindexValue(service, attr, value)
        holders = self._holders[attr] - 1
        if holders:
            self._holders[attr] = holders
        else:
            del self._holders[attr]

    def _unindexValue(self, service, attr, value):
        """
        Take C{service} out of the index entry of C{(attr, value)}.
        """
        byValue = self._index[attr]
        same = byValue[value]
        if same is service:
            del byValue[value]
            if not byValue:
                del self._index[attr]
        else:
            same.discard(service)
            if len(same) == 1:
                byValue[value] = next(iter(same))

    def _set(self, service, pairs, size):
        """
        Set attributes as if one pair after the other, keeping the order
        rule (see L{_reorder}); the values and the index follow once per
        attribute.

        The index maps each attribute to a L{dict} from each of its values
        to the one service holding it, or to the L{set} of them when there
        are several (most values belong to one service, and a set each
        would cost ten times the entry); beside it, the number of holders of
        each attribute.

        @param size: the service's size once they are set, as
            L{_checkLimits} or L{_sizeAfter} gives it.
        """
        values = service._values
        final = _reorder(service._order, pairs)
        index = self._index
        holders = self._holders
        for attr, value in final.items():
            old = values.get(attr)
            if old == value:
                continue
            if old is None:
                holders[attr] = holders.get(attr, 0) + 1
            else:
                self._unindexValue(service, attr, old)
            values[attr] = value
            byValue = index.get(attr)
            if byValue is None:
                byValue = index[attr] = {}
            same = byValue.get(value)
            if same is None:
                byValue[value] = service
            elif type(same) is RegisteredService:
                byValue[value] = {same, service}
            else:
                same.add(service)
        service._size = size
        service._line = None
