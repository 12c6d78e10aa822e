"""
The registry description string: one string saying how to reach a
registry, through its three TCP ports (C{tcp:}) or over Styx (C{styx:}).

TCP forms (C{tcp} alone, or C{tcp:} followed by colon-separated parts)::

    tcp                                  127.0.0.1, ports 6701 6702 6703
    tcp:HOST                             HOST, ports 6701 6702 6703
    tcp:HOST:BASEPORT                    HOST, ports BASE, BASE+1, BASE+2
    tcp::BASEPORT                        127.0.0.1, ports BASE, BASE+1, BASE+2
    tcp:host=H:new=P:find=P:event=P      any subset of the keywords

Positional and keyword parts may be mixed (C{tcp:HOST:7000:event=9000});
a keyword port overrides the one derived from the base port.  As in
Twisted's endpoint strings, a backslash escapes the next character, so an
IPv6 host is written C{tcp:\\:\\:1:6701}.

Styx forms (the registry's own 9P2000 file service, one connection)::

    styx                                 127.0.0.1, port 6675
    styx:HOST                            HOST, port 6675
    styx:HOST:PORT                       HOST, port PORT
    styx:host=H:port=P:user=U            any subset of the keywords
    styx:endpoint=ENDPOINT:user=U        any client endpoint string

C{user} is the attach name, the owner of the services registered (by
default the local user name).  C{endpoint} takes any client endpoint
string, its colons escaped: C{styx:endpoint=tls\\:reg.example\\:6675}
or C{styx:endpoint=unix\\:path\\=/run/registry:user=alice}.
"""

import getpass
import os
import re
from typing import NamedTuple

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress

from txinferno.wire.rules import PORT_NAMES

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_BASE_PORT",
    "DEFAULT_STYX_PORT",
    "DEFAULT_REGISTRY",
    "REGISTRY_ENVIRONMENT",
    "RegistryEndpoints",
    "StyxEndpoint",
    "clientStringFor",
    "defaultRegistry",
    "parseDescription",
    "parseRegistryDescription",
    "parseStyxDescription",
    "tcpAddress",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 6701
DEFAULT_STYX_PORT = 6675
"""
The registry's Styx port, C{registry} in Inferno's services database.
"""
DEFAULT_REGISTRY = "tcp:127.0.0.1:6701"
REGISTRY_ENVIRONMENT = "TXINFERNO_REGISTRY"

_STYX_KEYWORDS = ("host", "port", "endpoint", "user")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_DIGITS = re.compile("[0-9]{1,5}")


class RegistryEndpoints(NamedTuple):
    """
    The client endpoint strings (for L{twisted.internet.endpoints.clientFromString})
    of a registry's three ports.

    @ivar new: the registration port (6701).
    @ivar find: the query port (6702).
    @ivar event: the change stream port (6703).
    """

    new: str
    find: str
    event: str


class StyxEndpoint(NamedTuple):
    """
    How to reach a registry over Styx.

    @ivar endpoint: the client endpoint string of its Styx port (for
        L{twisted.internet.endpoints.clientFromString}).
    @ivar user: the attach name (the owner of the services registered).
    """

    endpoint: str
    user: str


def _split(text: str, separator: str) -> list[str]:
    """
    Split C{text} at each C{separator} that no backslash escapes.

    @return: the parts, still escaped.
    @rtype: L{list} of L{str}
    """
    parts: list[str] = []
    start = 0
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == separator:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


def _port(description: str, what: str, text: str) -> int:
    """
    @return: C{text} as a TCP port number.
    @raise ValueError: when C{text} is not one.
    """
    if _DIGITS.fullmatch(text) is None or not 0 < int(text) < 65536:
        raise ValueError(
            "bad %s port %r in registry description %r: "
            "a port is a number from 1 to 65535" % (what, text, description)
        )
    return int(text)


def _escape(text: str) -> str:
    """
    @return: C{text} as the value of an endpoint string's keyword, its
        backslashes, colons and equals signs escaped.
    """
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def _clientString(host: str, port: int) -> str:
    """
    @return: a C{tcp:} client endpoint string for C{host} (an IPv4 or IPv6
        address or a host name) and C{port}.
    """
    return "tcp:host=%s:port=%d" % (_escape(host), port)


def clientStringFor(address: IAddress) -> str:
    """
    The client endpoint string that reaches a listening address: a port
    listening on every address (C{0.0.0.0} or C{::}) is reached on loopback,
    and a TCP address, IPv6 included, gets the plain C{tcp:host=H:port=P}
    form that L{tcpAddress} reads back.

    @param address: where a port listens (its C{getHost()}).
    @type address: L{IPv4Address}, L{IPv6Address} or L{UNIXAddress}
    @raise ValueError: for any other kind of address.
    @rtype: L{str}
    """
    if isinstance(address, UNIXAddress):
        name = address.name.decode() if isinstance(address.name, bytes) else address.name
        # A listening UNIX port has a name; Twisted types it optional.
        return "unix:path=" + _escape(name)  # type: ignore[arg-type]
    if isinstance(address, (IPv4Address, IPv6Address)):
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address.host, address.host)
        return _clientString(host, address.port)
    raise ValueError("no client endpoint string reaches %r" % (address,))


def tcpAddress(endpoint: str) -> tuple[str, int] | None:
    """
    Read the host and port of a plain TCP client endpoint string, as
    L{parseRegistryDescription} writes them: C{tcp:host=H:port=P} (the
    keywords in either order, backslash escapes allowed), and nothing else.

    @type endpoint: L{str}
    @return: C{(host, port)}, or L{None} for any other endpoint string
        (other keywords such as C{timeout}, the positional form, another
        scheme).
    """
    parts = _split(endpoint, ":")
    if len(parts) != 3 or parts[0] != "tcp":
        return None
    keywords: dict[str, str] = {}
    for part in parts[1:]:
        key, equals, value = part.partition("=")
        if not equals or key in keywords:
            return None
        keywords[key] = _unescape(value)
    if set(keywords) != {"host", "port"} or _DIGITS.fullmatch(keywords["port"]) is None:
        return None
    return keywords["host"], int(keywords["port"])


def parseRegistryDescription(description: str) -> RegistryEndpoints:
    """
    Parse a C{tcp:} registry description string.

    @param description: such as C{tcp:192.0.2.1}, C{tcp:192.0.2.1:7000} or
        C{tcp:host=192.0.2.1:find=7001}.
    @type description: L{str}

    @raise ValueError: for an unknown scheme, an unknown keyword, a part
        given twice, too many parts, or a port that is not a number from 1
        to 65535 (a base port must leave room for its two neighbours).

    @return: the client endpoint strings of the three ports.
    @rtype: L{RegistryEndpoints}
    """
    if not isinstance(description, str):
        raise ValueError("a registry description is a str, not %s" % (type(description).__name__,))
    positional, keywords = _parts(description, "tcp", ("host",) + PORT_NAMES)
    if len(positional) > 2:
        raise ValueError(
            "too many parts in registry description %r: expected tcp:HOST:BASEPORT" % (description,)
        )
    if positional and "host" in keywords:
        raise ValueError("host given twice in registry description %r" % (description,))
    host = (positional[0] if positional else keywords.get("host")) or DEFAULT_HOST
    base = DEFAULT_BASE_PORT
    if len(positional) == 2:
        base = _port(description, "base", positional[1])
        if base > 65533:
            raise ValueError(
                "bad base port %d in registry description %r: it must leave "
                "room for ports base+1 and base+2" % (base, description)
            )
    ports = [
        _port(description, key, keywords[key]) if key in keywords else base + offset
        for offset, key in enumerate(PORT_NAMES)
    ]
    return RegistryEndpoints(*[_clientString(host, port) for port in ports])


def _parts(
    description: str, wanted: str, known: tuple[str, ...]
) -> tuple[list[str], dict[str, str]]:
    """
    Split a description into its positional and keyword parts.

    @param wanted: the scheme it must have.
    @param known: the keywords it may have.
    @raise ValueError: for another scheme, an unknown keyword or one given
        twice.
    @return: the positional parts and the keywords, unescaped.
    """
    if not isinstance(description, str):
        raise ValueError("a registry description is a str, not %s" % (type(description).__name__,))
    parts = _split(description, ":")
    scheme = _unescape(parts.pop(0))
    if scheme != wanted:
        raise ValueError(
            "unknown scheme %r in registry description %r: the schemes are "
            "tcp (tcp:HOST:BASEPORT or tcp:host=H:new=P:find=P:event=P) and "
            "styx (styx:HOST:PORT or styx:endpoint=ENDPOINT:user=U)" % (scheme, description)
        )
    if parts == [""]:
        parts = []
    positional: list[str] = []
    keywords: dict[str, str] = {}
    for part in parts:
        pair = _split(part, "=")
        if len(pair) == 1:
            positional.append(_unescape(part))
            continue
        key = _unescape(pair[0])
        if key not in known:
            raise ValueError(
                "unknown keyword %r in registry description %r: the keywords "
                "are %s" % (key, description, ", ".join(known))
            )
        if key in keywords:
            raise ValueError("%s given twice in registry description %r" % (key, description))
        keywords[key] = _unescape("=".join(pair[1:]))
    return positional, keywords


def parseStyxDescription(description: str) -> StyxEndpoint:
    """
    Parse a C{styx:} registry description string.

    @param description: such as C{styx:192.0.2.1}, C{styx:192.0.2.1:7000},
        C{styx:host=h:user=alice} or C{styx:endpoint=tls\\:h\\:6675}.
    @type description: L{str}
    @raise ValueError: for another scheme, an unknown keyword, a part given
        twice, too many parts, a bad port, an empty user, or an endpoint
        given with a host or port.
    @rtype: L{StyxEndpoint}
    """
    positional, keywords = _parts(description, "styx", _STYX_KEYWORDS)
    if len(positional) > 2:
        raise ValueError(
            "too many parts in registry description %r: expected styx:HOST:PORT" % (description,)
        )
    for i, key in enumerate(("host", "port")[: len(positional)]):
        if key in keywords:
            raise ValueError("%s given twice in registry description %r" % (key, description))
        if positional[i]:
            keywords[key] = positional[i]
    user = keywords.get("user", _localUser())
    if not user:
        raise ValueError("empty user in registry description %r" % (description,))
    if "endpoint" in keywords:
        if "host" in keywords or "port" in keywords:
            raise ValueError(
                "registry description %r gives an endpoint and a host or port: "
                "the endpoint says both" % (description,)
            )
        if not keywords["endpoint"]:
            raise ValueError("empty endpoint in registry description %r" % (description,))
        return StyxEndpoint(keywords["endpoint"], user)
    port = DEFAULT_STYX_PORT
    if "port" in keywords:
        port = _port(description, "Styx", keywords["port"])
    return StyxEndpoint(_clientString(keywords.get("host") or DEFAULT_HOST, port), user)


def _localUser() -> str:
    """
    @return: the local user name, the default attach name.
    """
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "none"


def parseDescription(description: str) -> RegistryEndpoints | StyxEndpoint:
    """
    Parse a registry description string of either scheme.

    @raise ValueError: for a bad description.
    @return: what L{parseRegistryDescription} or L{parseStyxDescription}
        returns, by its scheme.
    """
    if isinstance(description, str) and _unescape(_split(description, ":")[0]) == "styx":
        return parseStyxDescription(description)
    return parseRegistryDescription(description)


def defaultRegistry() -> str:
    """
    @return: the registry description to use when none is given:
        C{$TXINFERNO_REGISTRY}, else L{DEFAULT_REGISTRY}.
    @rtype: L{str}
    """
    return os.environ.get(REGISTRY_ENVIRONMENT, DEFAULT_REGISTRY)
