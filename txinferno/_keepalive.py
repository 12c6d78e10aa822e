"""
TCP keepalive for the connections to a registry, so that a registry host
that vanishes without closing them is noticed.
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

_TUNING = [
    (getattr(socket, option), value)
    for option, value in [
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ]
    if hasattr(socket, option)
]
"""
The timer options this platform has, with their values.
"""


def enableKeepAlive(transport):
    """
    Turn TCP keepalive on for C{transport} when it is a TCP transport, and
    shorten its timers (to L{KEEPALIVE_IDLE}, L{KEEPALIVE_INTERVAL} and
    L{KEEPALIVE_COUNT}) where the platform allows: a dead peer is then
    noticed about two minutes after the connection falls silent.

    @return: whether keepalive was turned on.
    @rtype: L{bool}
    """
    if not ITCPTransport.providedBy(transport):
        return False
    transport.setTcpKeepAlive(1)
    handle = transport.getHandle() if ISystemHandle.providedBy(transport) else None
    if isinstance(handle, socket.socket):
        for option, value in _TUNING:
            handle.setsockopt(socket.IPPROTO_TCP, option, value)
    return True
