"""
Commands run in a process group of their own, and killed whole: an agent's
C{--on-change} command and a command health check, cut short at their time
limit, take what they started with them.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Sequence

from twisted.internet import error
from twisted.internet.interfaces import IProcessTransport

__all__ = ["SETSID", "inOwnGroup", "killGroup"]

SETSID = shutil.which("setsid")
"""
util-linux's C{setsid}, through which a command runs as the leader of a
process group of its own; L{None} where there is none (the command alone is
killed then).
"""


def inOwnGroup(argv: Sequence[str]) -> list[str]:
    """
    @param argv: a command: its executable's path and its arguments.
    @return: the command that runs C{argv} as the leader of a process group
        of its own, in the same process (C{setsid} execs it), or C{argv}
        where there is no C{setsid}.
    """
    return list(argv) if SETSID is None else [SETSID, *argv]


def killGroup(transport: IProcessTransport) -> None:
    """
    Kill, with C{SIGKILL}, the process group of a command started through
    L{inOwnGroup}, then the process itself (in case it had not made its
    group yet); a process already gone is no error.
    """
    pid = transport.pid
    if SETSID is not None and pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        transport.signalProcess("KILL")
    except error.ProcessExitedAlready:
        pass
