"""
TCP keepalive for the connections to a registry, so that a registry host
that vanishes without closing them is noticed, and for the connections a
registry server accepts (with its own shorter timers), so that a client
host that vanishes is.
"""

import socket

from twisted.internet.interfaces import ISystemHandle, ITCPTransport

__all__ = ["KEEPALIVE_IDLE", "KEEPALIVE_INTERVAL", "KEEPALIVE_COUNT", "enableKeepAlive"]

KEEPALIVE_IDLE = 60
"""
Seconds of silence before the first keepalive probe (where the platform
lets us set it; otherwise the system's default, often two hours).
"""

KEEPALIVE_INTERVAL = 15
"""
Seconds between unanswered keepalive probes.
"""

KEEPALIVE_COUNT = 4
"""
Unanswered probes after which the connection is declared dead.
"""

_OPTIONS = [
    getattr(socket, option, None) for option in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT")
]
"""
The timer options, L{None} where this platform has not got one.
"""


def enableKeepAlive(
    transport, idle=KEEPALIVE_IDLE, interval=KEEPALIVE_INTERVAL, count=KEEPALIVE_COUNT
):
    """
    Turn TCP keepalive on for C{transport} when it is a TCP transport, and
    set its timers where the platform allows: a dead peer is then noticed
    about C{idle + interval * count} seconds after the connection falls
    silent (two minutes with the defaults).

    @param idle: seconds of silence before the first probe.
    @param interval: seconds between unanswered probes.
    @param count: unanswered probes after which the connection is dead.
    @return: whether keepalive was turned on.
    @rtype: L{bool}
    """
    if not ITCPTransport.providedBy(transport):
        return False
    transport.setTcpKeepAlive(1)
    handle = transport.getHandle() if ISystemHandle.providedBy(transport) else None
    if isinstance(handle, socket.socket):
        for option, value in zip(_OPTIONS, (idle, interval, count)):
            if option is not None:
                handle.setsockopt(socket.IPPROTO_TCP, option, value)
    return True
