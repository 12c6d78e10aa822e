"""
Client-side checks, made before anything is sent, of what the registry
would reject or silently change; and the lines the checked words make.

Rules:
 - a service name fails the registry's own check (registry(4)): a
   character at or below U+0020, C{/} or U+007F is a C{bad character in
   service name}; C{new}, C{event}, C{find}, C{index} and the empty string
   are a C{bad service name};
 - an attribute name is any non-empty string: the registry takes any word,
   and quoting carries spaces, quotes, newlines and non-ASCII intact;  the
   empty word is refused because attrdb(6) and the C{attr=value} form
   cannot express it, so it is almost always a bug;
 - an attribute value is any string, empty included;
 - no name, attribute or value may hold a NUL (the registry would cut the
   word at it) or a lone surrogate (it cannot be sent as UTF-8);
 - a line, newline included, may not be longer than
   L{txinferno.wire.words.MAX_LINE} bytes: the real registry's bridge breaks it;
 - an update needs at least one attribute (the registry closes the
   registration on an empty line).

Every failure raises L{ValueError} saying what is wrong.
"""

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Set
from typing import Any, TypeAlias

from txinferno.wire.words import MAX_LINE, formatLine

__all__ = [
    "AttributesLike",
    "Services",
    "PORT_NAMES",
    "READY",
    "RESERVED_NAMES",
    "nameError",
    "versionLine",
    "checkName",
    "normaliseAttrs",
    "registrationLine",
    "updateLine",
    "queryLine",
    "CheckedRegistration",
    "checkPositive",
    "checkPositiveOptions",
]

AttributesLike: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[str]
"""
An attribute set (or a query) as the API takes it: a mapping, an ordered
sequence of C{(attr, value)} pairs, or a flat sequence of words
C{attr value attr value ...}; all L{str}.
"""

Services: TypeAlias = dict[str, dict[str, str]]
"""
Services as the API gives them: C{{name: {attr: value}}}.
"""

PORT_NAMES = ("new", "find", "event")
"""
The registry's TCP bridge ports, in the order of their port numbers (6701,
6702, 6703 by default): registration, query and change stream.
"""

READY = b"READY"
"""
The first line of the event port, newline excluded.
"""

RESERVED_NAMES = frozenset(["new", "event", "find", "index", ""])
"""
Names the registry refuses as C{bad service name}: its own file names and
the empty string.
"""

_BAD_NAME_CHARACTER = re.compile("[\x00-\x20/\x7f]")


def versionLine(version: int) -> bytes:
    """
    @return: the registry's line for a version number, as the event port
        sends it and the Styx C{event} file reads: eight digits at least,
        zero-padded, then a newline.
    """
    return b"%08d\n" % (version,)


_NAME_RULES = {
    "bad character in service name": "no character at or below U+0020, '/' or U+007F",
    "bad service name": "new, event, find, index and the empty string are reserved",
}


def nameError(name: str) -> str | None:
    """
    The registry's own verdict on a service name, without the duplicate
    check (which only the registry can make).

    @return: C{"bad character in service name"} or C{"bad service name"},
        Inferno's texts, or L{None} when the registry takes the name.
    """
    if _BAD_NAME_CHARACTER.search(name):
        return "bad character in service name"
    if name in RESERVED_NAMES:
        return "bad service name"
    return None


def _checkText(text: object, what: str) -> None:
    """
    Check that C{text} is a L{str} that the registry receives unchanged.

    @raise ValueError: when it is not a L{str}, holds a NUL or cannot be
        encoded as UTF-8.
    """
    if not isinstance(text, str):
        raise ValueError("%s must be a str, not %s" % (what, type(text).__name__))
    if "\x00" in text:
        raise ValueError("%s %r holds a NUL character" % (what, text))
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("%s %r cannot be encoded as UTF-8" % (what, text)) from None


def checkName(name: str) -> None:
    """
    Check a service name as the registry would (spec section 2, without the
    duplicate check, which only the registry can make).

    @type name: L{str}
    @raise ValueError: C{bad character in service name} or C{bad service
        name}, with the name.
    """
    if not isinstance(name, str):
        raise ValueError("service name must be a str, not %s" % (type(name).__name__,))
    error = nameError(name)
    if error is not None:
        raise ValueError("%s %r: %s" % (error, name, _NAME_RULES[error]))
    _checkText(name, "service name")


def _pairs(attrs: AttributesLike) -> list[tuple[str, str]]:
    """
    @return: C{attrs} as a list of (attr, value) items, unchecked.
    @raise ValueError: when C{attrs} is not a mapping, a sequence of pairs
        or a flat sequence of words of even length.
    """
    if type(attrs) is dict or isinstance(attrs, Mapping):
        return list(attrs.items())
    if isinstance(attrs, Set):
        raise ValueError(
            "attributes must be a mapping or a sequence of (attr, value) "
            "pairs, not a %s: a set has no order, so its words would make "
            "arbitrary pairs" % (type(attrs).__name__,)
        )
    if isinstance(attrs, (str, bytes)) or not hasattr(attrs, "__iter__"):
        raise ValueError(
            "attributes must be a mapping or a sequence of (attr, value) "
            "pairs, not %s" % (type(attrs).__name__,)
        )
    # Unchecked: the caller may pass anything, hence Any, not AttributesLike's items.
    items: list[Any] = list(attrs)
    if items and all(isinstance(item, str) for item in items):
        if len(items) % 2:
            raise ValueError(
                "odd attribute set: %d words %r do not make (attr, value) "
                "pairs" % (len(items), items)
            )
        return list(zip(items[0::2], items[1::2]))
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, (str, bytes)) or len(item) != 2:
            raise ValueError("bad attribute item %r: expected an (attr, value) pair" % (item,))
        pairs.append(tuple(item))
    return pairs


def checkPositive(value: float, what: str) -> float:
    """
    Check a number of seconds (or bytes) that must be positive and finite.

    @param what: what the value is, for the message.
    @raise TypeError: when C{value} is not an L{int} or a L{float} (a
        L{bool} is not taken as a number).
    @raise ValueError: when it is zero, negative, infinite or not a number.
    @return: C{value}.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s must be a number, not %r" % (what, value))
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("%s must be positive and finite, not %r" % (what, value))
    return value


def checkPositiveOptions(**options: float | None) -> None:
    """
    Check the timeouts, delays, sizes and intervals given to a connection
    plugin with L{checkPositive}, by name; L{None} means not given.

    @raise TypeError: for a value that is not a number.
    @raise ValueError: for one that is not positive and finite.
    """
    for option, value in options.items():
        if value is not None:
            checkPositive(value, option)


def normaliseAttrs(attrs: AttributesLike) -> list[tuple[str, str]]:
    """
    Check a set of attributes and give it one shape.

    @param attrs: a mapping, a sequence of C{(attr, value)} pairs, or a
        flat sequence C{[attr, value, attr, value...]}, all of L{str}.

    @raise ValueError: for an odd flat sequence, an item that is not a
        pair, an empty attribute name, or a NUL, a lone surrogate or a
        non-L{str} anywhere.

    @return: the attributes, in order.
    @rtype: L{list} of L{tuple} of (L{str}, L{str})
    """
    pairs = _pairs(attrs)
    for attr, value in pairs:
        _checkText(attr, "attribute name")
        if not attr:
            raise ValueError("empty attribute name (with value %r)" % (value,))
        _checkText(value, "value of attribute %r" % (attr,))
    return pairs


def _line(words: list[str], what: str) -> bytes:
    """
    @return: the line of C{words}.
    @raise ValueError: when it is longer than L{MAX_LINE}.
    """
    line = formatLine(words)
    if len(line) > MAX_LINE:
        raise ValueError(
            "%s line of %d bytes is over the registry's limit of %d bytes"
            % (what, len(line), MAX_LINE)
        )
    return line


def _words(pairs: Iterable[tuple[str, str]]) -> list[str]:
    return [word for pair in pairs for word in pair]


def registrationLine(name: str, attrs: AttributesLike) -> tuple[bytes, Iterable[tuple[str, str]]]:
    """
    Check a registration and build its line, C{NAME ATTR VALUE...\\n}.

    @param attrs: the attributes (see L{normaliseAttrs}); a
        L{CheckedRegistration} of the same name is not checked again.
    @raise ValueError: see L{checkName}, L{normaliseAttrs}, and for a line
        over L{MAX_LINE} bytes.
    @return: the line and the normalised attributes: a L{list} of pairs,
        or for a L{CheckedRegistration} a read-only view of its pairs.
    @rtype: L{tuple} of (L{bytes}, iterable of pairs)
    """
    if type(attrs) is CheckedRegistration and attrs.name == name:
        return attrs.line, attrs._attrs.items()
    checkName(name)
    pairs = normaliseAttrs(attrs)
    return _line([name] + _words(pairs), "registration"), pairs


def updateLine(attrs: AttributesLike) -> tuple[bytes, list[tuple[str, str]]]:
    """
    Check an update and build its line, C{ATTR VALUE...\\n}.

    @raise ValueError: see L{normaliseAttrs}, for no attribute at all, and
        for a line over L{MAX_LINE} bytes.
    @return: the line and the normalised attributes.
    @rtype: L{tuple} of (L{bytes}, L{list} of pairs)
    """
    pairs = normaliseAttrs(attrs)
    if not pairs:
        raise ValueError("an update needs at least one attribute")
    return _line(_words(pairs), "update"), pairs


def queryLine(attrs: AttributesLike) -> tuple[bytes, list[tuple[str, str]]]:
    """
    Check a query and build its line, C{ATTR VALUE...\\n} (a bare newline,
    for no attributes, lists every service).

    @raise ValueError: see L{normaliseAttrs}, and for a line over
        L{MAX_LINE} bytes.
    @return: the line and the normalised attributes.
    @rtype: L{tuple} of (L{bytes}, L{list} of pairs)
    """
    pairs = normaliseAttrs(attrs)
    return _line(_words(pairs), "query"), pairs


class CheckedRegistration(Mapping[str, str]):
    """
    The attributes of a registration, checked once with its name, and its
    line: read-only, so that L{registrationLine} can take them again
    without checking them again.

    @ivar name: the service name.
    @ivar line: the registration line, newline included.
    @type line: L{bytes}
    """

    __slots__ = ("name", "line", "_attrs")

    def __init__(self, name: str, attrs: AttributesLike) -> None:
        """
        @param attrs: see L{normaliseAttrs}; a later value of an attribute
            replaces an earlier one.
        @raise ValueError: as L{registrationLine}.
        """
        checkName(name)
        self._attrs = dict(normaliseAttrs(attrs))
        self.line = _line([name] + _words(self._attrs.items()), "registration")
        self.name = name

    def __getitem__(self, attr: str) -> str:
        return self._attrs[attr]

    def copy(self) -> dict[str, str]:
        """
        @return: the attributes, as a new L{dict}.
        """
        return dict(self._attrs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._attrs)

    def __len__(self) -> int:
        return len(self._attrs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CheckedRegistration):
            other = other._attrs
        return self._attrs == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "CheckedRegistration(%r, %r)" % (self.name, self._attrs)
