"""
Inferno's word rules: how the registry quotes the words it prints and how it
splits the bytes it reads into words.

Every line on the registry's wire is a list of words.  On output a word is
wrapped in single quotes (each quote inside doubled) if and only if it is
empty, holds a character at or below U+0020, or holds a quote; a word is
printed only up to its first NUL.  On input only space, tab and newline
separate words; single quotes group, may cover part of a word, and an
unbalanced quote is closed by the end of the data.
"""

import codecs
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "MAX_LINE",
    "quote",
    "formatLine",
    "formatService",
    "decode",
    "splitWords",
    "splitLines",
    "LineAssembler",
]

MAX_LINE = 8192
"""
The longest line, newline included, that the real registry's TCP bridge
accepts in one piece (it turns each read of up to 8192 bytes into one write).
"""

_NEEDS_QUOTES = re.compile("[\x00-\x20']")
_SEPARATORS = re.compile("[ \t\n]+")


def quote(word: str) -> str:
    """
    Quote one word the way Inferno prints it (the C{%q} rule).

    @param word: the word, truncated at its first NUL.
    @type word: L{str}

    @return: C{word} itself, or C{word} in single quotes with every quote
        inside it doubled.
    @rtype: L{str}
    """
    if word and _NEEDS_QUOTES.search(word) is None:
        return word
    nul = word.find("\x00")
    if nul >= 0:
        word = word[:nul]
        if word and _NEEDS_QUOTES.search(word) is None:
            return word
    return "'" + word.replace("'", "''") + "'"


def formatLine(words: Iterable[str]) -> bytes:
    """
    Build one line of the wire protocol.

    @param words: the words of the line.
    @type words: iterable of L{str}

    @return: the quoted words joined by single spaces, with a trailing
        newline, encoded as UTF-8.
    @rtype: L{bytes}
    """
    return (" ".join([quote(w) for w in words]) + "\n").encode("utf-8")


def formatService(name: str, attrs: Mapping[str, str]) -> bytes:
    """
    Build a service's line as the registry lists it: its name, then its
    attributes.

    @type name: L{str}
    @param attrs: C{{attr: value}}, in the order to print.
    @rtype: L{bytes}
    """
    words = [name]
    for pair in attrs.items():
        words.extend(pair)
    return formatLine(words)


def decode(data: bytes) -> str:
    """
    Decode bytes as Inferno does: UTF-8, with every invalid sequence
    replaced by U+FFFD, except that an incomplete sequence at the very end
    of the data ends it.

    @type data: L{bytes}
    @rtype: L{str}
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return codecs.getincrementaldecoder("utf-8")("replace").decode(data, False)


def splitWords(data: bytes | str) -> list[str]:
    """
    Split the bytes of one write into words by Inferno's input rule.

    Only space, tab and newline separate words (C{\\r} is part of a word).
    Single quotes group, C{''} inside quotes is one quote, quoting may cover
    part of a word (C{a''b} is C{ab}), and an unbalanced quote is closed at
    the end of the data.  Never raises.

    @param data: the bytes of the write.
    @type data: L{bytes} (or an already decoded L{str})

    @return: the words.
    @rtype: L{list} of L{str}
    """
    text = decode(data) if isinstance(data, bytes) else data
    if "'" not in text:
        return [w for w in _SEPARATORS.split(text) if w]
    words: list[str] = []
    current: list[str] = []
    inWord = False
    inQuote = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if inQuote:
            if c == "'":
                if i + 1 < n and text[i + 1] == "'":
                    current.append("'")
                    i += 1
                else:
                    inQuote = False
            else:
                current.append(c)
        elif c == "'":
            inQuote = True
            inWord = True
        elif c in " \t\n":
            if inWord:
                words.append("".join(current))
                current = []
                inWord = False
        else:
            current.append(c)
            inWord = True
        i += 1
    if inWord:
        words.append("".join(current))
    return words


class LineAssembler:
    """
    Cut a byte stream into lines, where only a newline outside single
    quotes ends a line; a newline inside quotes belongs to a word.

    Feed it data as it arrives; it returns each complete line (without its
    newline) once and keeps the rest.  Scanning is incremental: each byte
    is looked at once, whatever the size of the pieces.

    @ivar pending: the bytes received that do not yet make a whole line.
    """

    def __init__(self) -> None:
        self.pending = b""
        self._scanned = 0
        self._inQuote = False

    def feed(self, data: bytes) -> list[bytes]:
        """
        Add received bytes.

        @type data: L{bytes}
        @return: the lines completed by C{data}, without their newlines.
        @rtype: L{list} of L{bytes}
        """
        buf = self.pending + data if self.pending else data
        lines: list[bytes] = []
        start = 0
        pos = self._scanned
        inQuote = self._inQuote
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if buf.count(b"'", pos) % 2:
                    inQuote = not inQuote
                break
            if buf.count(b"'", pos, nl) % 2:
                inQuote = not inQuote
            pos = nl + 1
            if not inQuote:
                lines.append(buf[start:nl])
                start = pos
        self.pending = buf[start:]
        self._scanned = len(buf) - start
        self._inQuote = inQuote
        return lines

    def inQuote(self) -> bool:
        """
        @return: whether the pending bytes end inside an open quote.
        @rtype: L{bool}
        """
        return self._inQuote


def splitLines(data: bytes) -> tuple[list[bytes], bytes]:
    """
    Cut a whole answer into lines by the quote-aware rule (a newline inside
    quotes does not end a line).

    @type data: L{bytes}
    @return: the complete lines, without their newlines, and the bytes after
        the last complete line (empty when the data ends with a line).
    @rtype: L{tuple} of (L{list} of L{bytes}, L{bytes})
    """
    assembler = LineAssembler()
    lines = assembler.feed(data)
    return lines, assembler.pending
