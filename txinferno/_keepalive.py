"""
TCP keepalive for the connections to a registry, so that a registry host
that vanishes without closing them is noticed, and for the connections a
registry server accepts (with its own shorter timers), so that a client
host that vanishes is.
"""

import socket

from twisted.internet.interfaces import ISystemHandle, ITCPTransport

__all__ = [
    "KEEPALIVE_IDLE",
    "KEEPALIVE_INTERVAL",
    "KEEPALIVE_COUNT",
    "enableKeepAlive",
    "keepAliveOptions",
]

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


def keepAliveOptions(
    idle: int = KEEPALIVE_IDLE, interval: int = KEEPALIVE_INTERVAL, count: int = KEEPALIVE_COUNT
) -> list[tuple[int, int, int]]:
    """
    @return: the socket options, C{(level, option, value)}, that give a
        socket TCP keepalive with these timers (see L{enableKeepAlive}):
        the timers this platform lets us set, then C{SO_KEEPALIVE} on.
    """
    options = [
        (socket.IPPROTO_TCP, option, value)
        for option, value in zip(_OPTIONS, (idle, interval, count))
        if option is not None
    ]
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    return options


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
    handle = transport.getHandle() if ISystemHandle.providedBy(transport) else None
    if isinstance(handle, socket.socket):
        for level, option, value in keepAliveOptions(idle, interval, count):
            handle.setsockopt(level, option, value)
    else:
        transport.setTcpKeepAlive(1)
    return True
