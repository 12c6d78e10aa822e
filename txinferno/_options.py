"""
Checked option values for L{twisted.python.usage.Options}, whose errors name
the option (Twisted's own say only "Parameter type enforcement failed").
"""

from twisted.python import usage

__all__ = ["number"]


def number(option, kind=float, minimum=0, inclusive=False):
    """
    A C{coerce} function for an C{optParameters} entry that reads a number.

    @param option: the long name of the option, for the error.
    @param kind: L{int} or L{float}.
    @param minimum: the bound the number must be above (or, when
        C{inclusive}, at least).
    @return: the coerce function; it raises L{usage.UsageError} as
        C{--OPTION VALUE: must be a positive number} and the like.
    """
    what = "an integer" if kind is int else "a number"
    if inclusive:
        rule = "%s, %s or more" % (what, minimum)
    elif minimum == 0:
        rule = "a positive %s" % (what.split()[1],)
    else:
        rule = "%s above %s" % (what, minimum)

    def coerce(value):
        try:
            result = kind(value)
        except ValueError:
            result = None
        if result is None or not (result >= minimum if inclusive else result > minimum):
            raise usage.UsageError("--%s %s: must be %s" % (option, value, rule))
        return result

    coerce.coerceDoc = "Must be %s." % (rule,)
    return coerce
