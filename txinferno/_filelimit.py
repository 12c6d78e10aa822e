"""
The process's open-file limit, which bounds how many services one process
can keep registered (each registration is an open connection).
"""

import errno
import resource

from twisted.python.failure import Failure

from txinferno.errors import OpenFileLimit

__all__ = ["raiseOpenFileLimit", "explainOpenFileLimit"]

_LIMIT_ERRNOS = (errno.EMFILE, errno.ENFILE)


def raiseOpenFileLimit():
    """
    Raise the soft limit on open files to the hard limit, where allowed.

    @return: the soft limit before and after.
    @rtype: L{tuple} of two L{int}
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, hard
    return soft, soft


def explainOpenFileLimit(failure):
    """
    An errback: a connection that failed for lack of file descriptors
    becomes an L{OpenFileLimit} naming the limit; other failures pass.

    @type failure: L{Failure}
    @rtype: L{Failure}
    """
    value = failure.value
    code = getattr(value, "osError", None)
    if code is None:
        code = getattr(value, "errno", None)
    if code in _LIMIT_ERRNOS:
        return Failure(OpenFileLimit(resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    return failure
