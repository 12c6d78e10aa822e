"""
What a test can see of this process's sockets.
"""

import os

__all__ = ["clientSockets"]


def clientSockets(*ports: int) -> int:
    """
    @return: how many TCP sockets of this process are connected to one of
        C{ports} on the remote side (client ends, not the server's).
    """
    inodes: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    wanted = {"%04X" % p for p in ports}
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for row in table:
            fields = row.split()
            remotePort = fields[2].split(":")[1]
            state = fields[3]
            if remotePort in wanted and fields[9] in inodes and state != "0A":
                count += 1
    return count
