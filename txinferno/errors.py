"""
The exceptions txinferno raises and errbacks with.
"""

__all__ = [
    "TxInfernoError",
    "RegistryError",
    "RegistrationRejected",
    "RegistrationLost",
    "MalformedAnswer",
    "MalformedMessage",
    "AnswerTooLarge",
    "RegistryUnavailable",
    "RegistryTimeout",
    "OpenFileLimit",
    "HealthCheckFailed",
    "HealthCheckTimedOut",
    "AuthenticationRequired",
]


class TxInfernoError(Exception):
    """
    The base class of every exception txinferno raises or errbacks with.
    """


class RegistryError(TxInfernoError):
    """
    An error the registry itself reports, carrying Inferno's own text, such
    as C{bad character in service name}, C{bad service name} or
    C{duplicate service name}.

    @ivar text: Inferno's error text.
    """

    def __init__(self, text: str) -> None:
        TxInfernoError.__init__(self, text)
        self.text = text


class RegistrationRejected(TxInfernoError):
    """
    The registry closed a registration connection: it did not accept the
    service.

    @ivar name: the service name.
    @ivar reason: why, as far as the client could find out; Inferno's text
        where it applies (C{duplicate service name}).
    """

    def __init__(self, name: str, reason: str) -> None:
        TxInfernoError.__init__(self, "registration of %r rejected: %s" % (name, reason))
        self.name = name
        self.reason = reason


class RegistrationLost(TxInfernoError):
    """
    A registration that the registry had accepted is gone: its connection
    closed without the client asking for it.
    """


class MalformedAnswer(TxInfernoError):
    """
    The registry sent bytes that do not follow the protocol.
    """


class MalformedMessage(TxInfernoError):
    """
    Bytes that are not a well-formed Styx (9P2000) message: a size field out
    of range, an unknown type, fields cut short or bytes left over.
    """


class AnswerTooLarge(MalformedAnswer):
    """
    An answer from the registry went over the client's size limit.
    """


class RegistryUnavailable(TxInfernoError):
    """
    The registry cannot be reached now (the operation needs a connected
    manager and the manager is not connected), or it stopped answering.
    """


class RegistryTimeout(RegistryUnavailable):
    """
    The registry did not answer within the time allowed: a query, a wait
    for C{READY}, a connection attempt, a registration check or a liveness
    probe timed out.
    """


class OpenFileLimit(TxInfernoError):
    """
    A connection could not be made because the process has as many open
    files as its limit (C{RLIMIT_NOFILE}) allows.

    @ivar limit: the process's soft limit, or L{None} if unknown.
    """

    def __init__(self, limit: int | float) -> None:
        Exception.__init__(
            self,
            "too many open files: this process may have at most %s open "
            "(RLIMIT_NOFILE; raise it with ulimit -n)" % (limit,),
        )
        self.limit = limit


class HealthCheckFailed(TxInfernoError):
    """
    A health check found its service not answering as it should: an HTTP
    status that is not 2xx or 3xx, a command that exited with a non-zero
    status or was killed.  The message says which.
    """


class HealthCheckTimedOut(HealthCheckFailed):
    """
    A health check did not end within its timeout; it was cancelled.
    """


class AuthenticationRequired(RegistryUnavailable):
    """
    The Styx server began Inferno's authentication protocol instead of
    answering Tversion: it is exported by Inferno's C{listen} without
    C{-A}.  Export it with C{listen -A}, or reach it through TLS.
    """
