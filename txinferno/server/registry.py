"""
The registry model, without any I/O: the services, their attributes, the
version counter and the queries, following Inferno's ndb/registry exactly
(see the protocol notes, sections 1 to 5).

Services are kept in slot order (a new service takes the next slot; removing
one moves the last service into its slot) and each service's attributes
newest-first (a new attribute goes to the front; setting an existing one
keeps it in its place and reverses the order of those in front of it).
"""

import enum
import re
import time
from operator import attrgetter

from twisted.logger import Logger

from txinferno.errors import RegistryError
from txinferno.wire import attrdb
from txinferno.wire.persist import persists
from txinferno.wire.words import formatLine, quote

__all__ = ["Registry", "RegisteredService", "ServiceState", "REGISTRY_USER"]

REGISTRY_USER = "registry"
"""
The user that owns the registry's own files, its static services and the
services registered through the TCP C{new} port (which, in Inferno, is a
program of the registry's user).
"""

RESERVED_NAMES = frozenset(["", "new", "event", "find", "index"])
"""
Names the registry refuses with C{bad service name}: its own file names and
the empty string.
"""

_BAD_NAME_CHARACTER = re.compile("[\x00-\x20/\x7f]")


def _pairs(words):
    """
    @return: the C{(attr, value)} pairs of an even list of words.
    """
    it = iter(words)
    return list(zip(it, it))


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

    @ivar name: the service name; L{None} while anonymous.
    @type name: L{str}
    @ivar owner: whatever registered it (the server passes its connection);
        L{None} for a static service and for a persistent service whose
        connection has closed.
    @ivar static: whether it was loaded from a static file.
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
        "name", "owner", "static", "state", "id", "uid", "writes", "atime", "mtime",
        "_values", "_order", "_slot", "_line",
    )

    def __init__(self, name, owner, static=False, id=0, uid=REGISTRY_USER, now=0):
        self.name = name
        self.owner = owner
        self.static = static
        self.state = ServiceState.ANONYMOUS
        self.id = id
        self.uid = uid
        self.writes = 0
        self.atime = self.mtime = now
        self._values = {}
        self._order = []
        self._slot = None
        self._line = None

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

    @ivar version: the version counter, starting at 0.
    @type version: L{int}
    @ivar started: when the registry was made (seconds since the epoch).
    """

    _log = Logger()

    def __init__(self, clock=None):
        """
        @param clock: an L{IReactorTime} giving the times of writes and
            reads; the system clock when L{None}.
        """
        self._clock = clock
        self.started = self.now()
        self._ids = 0
        self.version = 0
        self._slots = []
        self._byName = {}
        self._index = {}
        self._observers = []

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

    def checkName(self, name):
        """
        Apply the registry's name check.

        @type name: L{str}
        @raise RegistryError: with Inferno's text: C{bad character in service
            name}, C{bad service name} or C{duplicate service name}.
        """
        if _BAD_NAME_CHARACTER.search(name):
            raise RegistryError("bad character in service name")
        if name in RESERVED_NAMES:
            raise RegistryError("bad service name")
        if name in self._byName:
            raise RegistryError("duplicate service name")

    def register(self, owner, words):
        """
        Apply the first write of a C{new} connection: C{NAME [ATTR VALUE]...}.

        A name followed by an odd number of words is taken, then the write
        fails: the service is added and at once removed, which bumps the
        version once.

        @param owner: what registers it (the server passes its connection).
        @param words: the words of the write.
        @type words: L{list} of L{str}
        @return: the new service.
        @rtype: L{RegisteredService}
        @raise RegistryError: when the name check fails or the attribute
            words are odd in number.
        """
        name = words[0] if words else ""
        self.checkName(name)
        service = self._new(name, owner, REGISTRY_USER)
        self._add(service)
        if len(words) % 2 == 0:
            self._remove(service)
            error = RegistryError("odd number of attribute words after the service name")
            self._log.info(
                "service {name} refused: {error}", name=quote(name), attrs=[], error=error.text
            )
            self._bump()
            raise error
        self._set(service, _pairs(words[1:]))
        self._written(service)
        self._log.info(
            "service {name} registered with {attrs}",
            name=name,
            attrs=service.attributes(),
        )
        self._bump()
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
            registry.
        """
        if not service.registered:
            raise RegistryError("buggy program!")
        if not words:
            raise RegistryError("bad syntax")
        if len(words) % 2:
            raise RegistryError("odd attribute/value pairs")
        pairs = _pairs(words)
        self._set(service, pairs)
        self._written(service)
        self._log.info(
            "service {name} updated with {attrs}", name=service.name, attrs=pairs
        )
        self._bump()

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
        if service.static or persists(service.get("persist")):
            self._log.info("service {name} persists", name=service.name)
            return False
        self._remove(service)
        self._log.info(
            "service {name} removed", name=service.name, attrs=service.attributes()
        )
        self._bump()
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
        self.checkName(name)
        service.name = name
        self._add(service)
        odd = len(words) % 2 == 0
        if not odd:
            self._set(service, _pairs(words[1:]))
            self._written(service)
        self._log.info(
            "service {name} registered with {attrs}", name=name, attrs=service.attributes()
        )
        self._bump()
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
        if service.registered:
            self._remove(service)
            self._log.info(
                "service {name} removed", name=service.name, attrs=service.attributes()
            )
        else:
            service.state = ServiceState.REMOVED
        service.owner = None
        self._bump()

    def now(self):
        """
        @return: the current time, in whole seconds since the epoch.
        @rtype: L{int}
        """
        return int(self._clock.seconds() if self._clock is not None else time.time())

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
        candidates = None
        for attr, value in pairs:
            holders = self._index.get(attr)
            if holders is None:
                return []
            found = holders[0] if value == "*" else holders[1].get(value)
            if not found:
                return []
            if candidates is None or len(found) < len(candidates):
                candidates = found

        def matches(service):
            values = service._values
            for attr, value in pairs:
                v = values.get(attr)
                if v is None or (value != "*" and v != value):
                    return False
            return True

        if len(candidates) * 4 > len(self._slots):
            return [s for s in self._slots if matches(s)]
        return sorted(
            (s for s in candidates if matches(s)), key=attrgetter("_slot")
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
        for name, pairs in services:
            self.checkName(name)
            if name in names:
                raise RegistryError("duplicate service name")
            names.add(name)
        for name, pairs in services:
            service = self._new(name, None, REGISTRY_USER)
            service.static = True
            self._add(service)
            self._set(service, pairs)
            self._log.info(
                "static service {name} loaded with {attrs}",
                name=name,
                attrs=service.attributes(),
            )
        return len(services)

    def _new(self, name, owner, uid):
        service = RegisteredService(name, owner, id=self._ids, uid=uid, now=self.now())
        self._ids += 1
        return service

    def _written(self, service):
        service.writes += 1
        service.mtime = self.now()

    def _bump(self):
        self.version += 1
        for observer in list(self._observers):
            observer(self.version)

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
        index = self._index
        for attr, value in service._values.items():
            holders, byValue = index[attr]
            holders.discard(service)
            same = byValue[value]
            same.discard(service)
            if not same:
                del byValue[value]
            if not holders:
                del index[attr]

    def _set(self, service, pairs):
        """
        Set attributes one pair after the other, keeping the order rule and
        the index.
        """
        values = service._values
        order = service._order
        index = self._index
        for attr, value in pairs:
            holders = index.get(attr)
            if holders is None:
                holders = index[attr] = (set(), {})
            old = values.get(attr)
            if old is None:
                order.insert(0, attr)
                holders[0].add(service)
            else:
                position = order.index(attr)
                order[:position] = order[position - 1 :: -1] if position else []
                same = holders[1][old]
                same.discard(service)
                if not same:
                    del holders[1][old]
            values[attr] = value
            holders[1].setdefault(value, set()).add(service)
        service._line = None
