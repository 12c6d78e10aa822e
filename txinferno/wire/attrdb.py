"""
A reader for Inferno's attribute database files, attrdb(6), enough of it to
load a registry's static services.

Only a newline ends a line (a carriage return before it is a blank); the
other characters Python's C{splitlines()} takes for line ends (U+000B,
U+000C, U+001C to U+001E, U+0085, U+2028, U+2029) are ordinary characters.
An entry starts at a line whose first character is not a blank, a tab or
C{#}; the following lines that start with a blank or a tab continue it
(blank lines and comment lines inside an entry do not end it).  Pairs are
written C{attr=value}, C{attr = value}, C{attr=} or a bare C{attr} (the last
two have an empty value); a value may be quoted with C{'} or C{"}, a doubled
quote inside standing for one quote; C{#} outside quotes starts a comment.
"""

import os
from collections.abc import Iterable, Sequence
from typing import IO

from txinferno.wire.words import quote

__all__ = ["AttrdbError", "parse", "load", "loadServices", "servicesOf"]

_BLANKS = " \t\r\n"


class AttrdbError(ValueError):
    """
    An attrdb file that cannot be read: an unterminated quote or an C{=}
    with no attribute before it.  The message names the line.
    """


def _tokens(line: str, lineno: int) -> list[tuple[bool, str]]:
    """
    Cut one line into tokens: C{(True, word)} for a word (quoted or not) and
    C{(False, "=")} for an equals sign outside quotes.  A C{#} outside quotes
    ends the line.

    @raise AttrdbError: for an unterminated quote.
    """
    tokens: list[tuple[bool, str]] = []
    word: list[str] = []
    inWord = False
    quote: str | None = None
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if quote is not None:
            if c == quote:
                if i + 1 < n and line[i + 1] == quote:
                    word.append(c)
                    i += 1
                else:
                    quote = None
            else:
                word.append(c)
        elif c in "'\"":
            quote = c
            inWord = True
        elif c in _BLANKS or c in "=#":
            if inWord:
                tokens.append((True, "".join(word)))
                word = []
                inWord = False
            if c == "#":
                break
            if c == "=":
                tokens.append((False, "="))
        else:
            word.append(c)
            inWord = True
        i += 1
    if quote is not None:
        raise AttrdbError("line %d: unterminated quote" % (lineno,))
    if inWord:
        tokens.append((True, "".join(word)))
    return tokens


def _pairs(
    tokens: list[tuple[bool, str]], lineno: int, warnings: list[str] | None = None
) -> list[tuple[str, str]]:
    """
    Group the tokens of one line into C{(attr, value)} pairs.

    @param warnings: a list to append a warning to when the line holds bare
        words in a row.
    @raise AttrdbError: for an C{=} with no attribute before it.
    """
    pairs: list[tuple[str, str]] = []
    bare = [
        isWord and (i + 1 >= len(tokens) or tokens[i + 1][0]) and (i == 0 or tokens[i - 1][0])
        for i, (isWord, _) in enumerate(tokens)
    ]
    if warnings is not None and any(a and b for a, b in zip(bare, bare[1:])):
        words = " ".join(quote(word) for (_, word), isBare in zip(tokens, bare) if isBare)
        warnings.append(
            "line %d: bare words %s: attrdb pairs are written attr=value, not as the "
            "registry's 'attr value' words" % (lineno, words)
        )
    i = 0
    n = len(tokens)
    while i < n:
        isWord, attr = tokens[i]
        if not isWord:
            raise AttrdbError("line %d: '=' without an attribute" % (lineno,))
        if i + 1 < n and not tokens[i + 1][0]:
            valueFollows = i + 2 < n and tokens[i + 2][0] and (i + 3 >= n or tokens[i + 3][0])
            if valueFollows:
                pairs.append((attr, tokens[i + 2][1]))
                i += 3
            else:
                pairs.append((attr, ""))
                i += 2
        else:
            pairs.append((attr, ""))
            i += 1
    return pairs


def parse(text: str, warnings: list[str] | None = None) -> list[list[tuple[str, str]]]:
    """
    Parse the text of an attrdb file.

    @type text: L{str}
    @param warnings: a list to append a warning to for each line that holds
        bare words in a row.
    @return: the entries in file order, each a L{list} of C{(attr, value)}
        pairs of L{str} in the order written.
    @rtype: L{list} of L{list} of L{tuple}
    @raise AttrdbError: for a line that cannot be read.
    """
    entries: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] | None = None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip(_BLANKS) or line[0] == "#":
            continue
        if line[0] in " \t":
            if current is None:
                pairs = _pairs(_tokens(line, lineno), lineno, warnings)
                if pairs:
                    raise AttrdbError("line %d: continuation line outside an entry" % (lineno,))
                continue
        else:
            current = []
            entries.append(current)
        current.extend(_pairs(_tokens(line, lineno), lineno, warnings))
    return entries


def load(
    source: str | os.PathLike[str] | IO[str] | IO[bytes], warnings: list[str] | None = None
) -> list[list[tuple[str, str]]]:
    """
    Read and parse an attrdb file.

    @param source: a path, or an open file (text, or binary holding UTF-8).
    @param warnings: as for L{parse}.
    @return: the entries, as L{parse} returns them.
    @raise OSError: when the file cannot be read.
    @raise AttrdbError: when it cannot be parsed.
    @raise UnicodeDecodeError: when it is not UTF-8.
    """
    if hasattr(source, "read"):
        text = source.read()
    else:
        with open(source, "rb") as f:
            text = f.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return parse(text, warnings)


def loadServices(
    source: str | os.PathLike[str] | IO[str] | IO[bytes], warnings: list[str] | None = None
) -> list[tuple[str, list[tuple[str, str]]]]:
    """
    Read the services of an attrdb file: every entry with a C{service=NAME}
    pair is a service NAME whose attributes are the entry's other pairs.

    @param source: as for L{load}.
    @param warnings: as for L{parse}; a file with no service adds a
        warning too.
    @return: the services in file order, each a C{(name, pairs)} L{tuple}.
    @rtype: L{list}
    @raise OSError: when the file cannot be read.
    @raise ValueError: when it cannot be parsed (L{AttrdbError},
        L{UnicodeDecodeError}).
    """
    services = servicesOf(load(source, warnings))
    if not services and warnings is not None:
        warnings.append("no entry has a service=NAME pair: no service in the file")
    return services


def servicesOf(
    entries: Iterable[Sequence[tuple[str, str]]],
) -> list[tuple[str, list[tuple[str, str]]]]:
    """
    The services of parsed entries: every entry with a C{service=NAME} pair
    is a service NAME whose attributes are the entry's other pairs.

    @param entries: as L{parse} returns them.
    @return: the services in file order, each a C{(name, pairs)} L{tuple}.
    @rtype: L{list}
    """
    services: list[tuple[str, list[tuple[str, str]]]] = []
    for entry in entries:
        name = next((v for a, v in entry if a == "service"), None)
        if name is not None:
            services.append((name, [(a, v) for a, v in entry if a != "service"]))
    return services
