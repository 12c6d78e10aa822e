"""
The registry's rule for the C{persist} attribute, shared by the server's
model and the client: a service whose C{persist} reads as a non-zero
integer stays registered after its connection closes.
"""

import re

__all__ = ["persists"]

_STRTOL = re.compile("[ \t\n\v\f\r]*[+-]?([0-9]+)")


def persists(value: str | None) -> bool:
    """
    Whether a C{persist} attribute keeps its service after its connection
    closes: C{strtol(value, nil, 10)} is not zero.

    @param value: the attribute's value, or L{None} when it is missing.
    @type value: L{str} or L{None}
    @rtype: L{bool}
    """
    if value is None:
        return False
    match = _STRTOL.match(value)
    return match is not None and match.group(1).strip("0") != ""
