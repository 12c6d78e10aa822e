"""
The API's query strings and answers: C{?ATTR=VALUE&...} is the registry
query C{ATTR VALUE ...} (C{*} matches any value), and answers are JSON.
"""

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from twisted.web.server import Request

from txinferno.wire.words import decode

__all__ = ["queryWords", "jsonText", "jsonBytes", "jsonResponse", "jsonError"]

jsonText = json.JSONEncoder(separators=(",", ":")).encode
"""
C{data} as compact JSON text (ASCII, non-ASCII characters escaped), by one
encoder made once (C{json.dumps} with C{separators} makes one per call).
"""


def jsonBytes(data: Any) -> bytes:
    """
    @return: C{data} as compact JSON (L{jsonText}), encoded.
    @rtype: L{bytes}
    """
    return jsonText(data).encode("ascii")


def queryWords(request: Request) -> list[str]:
    """
    @type request: L{twisted.web.server.Request}
    @return: the words of the registry query a request's query string
        makes, its pairs in order (no pair: every service).
    @rtype: L{list} of L{str}
    """
    query = decode(urlsplit(request.uri).query)
    words = []
    for attr, value in parse_qsl(query, keep_blank_values=True):
        words.append(attr)
        words.append(value)
    return words


def jsonResponse(request: Request, data: Any, code: int = 200) -> bytes:
    """
    Answer C{request} with C{data} as JSON.

    @param data: the data, or its JSON text already encoded (L{bytes}).
    @return: the body, for a C{render_*} method.
    @rtype: L{bytes}
    """
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-cache")
    if isinstance(data, bytes):
        return data
    return jsonBytes(data)


def jsonError(request: Request, code: int, message: str) -> bytes:
    """
    Answer C{request} with an error: C{{"error": message}} and C{code}.

    @rtype: L{bytes}
    """
    return jsonResponse(request, {"error": message}, code)
