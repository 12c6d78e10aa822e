"""
Inferno dial addresses (C{net!host!service}) and their Twisted endpoints.

Services in an Inferno registry name where they listen with a dial address
such as C{tcp!host!22}, C{net!host!ssh} or C{host!ssh}.  L{parseDialAddress}
reads one; L{dialAddressEndpoint} turns it into a Twisted client endpoint;
L{formatDialAddress} writes one for a listening port.
"""

import socket

from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTCP

__all__ = ["DialAddress", "parseDialAddress", "dialAddressEndpoint", "formatDialAddress"]

_STREAM_NETWORKS = ("tcp", "net")


class DialAddress:
    """
    A parsed stream dial address.

    @ivar network: C{tcp} or C{net}.
    @ivar host: the host name or address.
    @ivar port: the port number.
    """

    def __init__(self, network: str, host: str, port: int) -> None:
        self.network = network
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return "DialAddress(%r, %r, %r)" % (self.network, self.host, self.port)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DialAddress):
            return NotImplemented
        return (self.network, self.host, self.port) == (other.network, other.host, other.port)


def _portNumber(service: str, address: str) -> int:
    if service.isdigit():
        port = int(service)
    else:
        try:
            port = socket.getservbyname(service, "tcp")
        except OSError:
            raise ValueError("unknown service %r in dial address %r" % (service, address)) from None
    if not 0 < port < 65536:
        raise ValueError("port %d out of range in dial address %r" % (port, address))
    return port


def parseDialAddress(address: str) -> DialAddress:
    """
    Read an Inferno dial address of a stream service.

    @param address: C{tcp!HOST!PORT}, C{net!HOST!PORT} or C{HOST!PORT}, where
        PORT is a number or a service name the system knows (C{ssh}).
    @type address: L{str}
    @raise ValueError: for any other form, a datagram network, an unknown
        service name or a port out of range.
    @rtype: L{DialAddress}
    """
    parts = address.split("!")
    if len(parts) == 2:
        parts.insert(0, "net")
    if len(parts) != 3 or not all(parts):
        raise ValueError("not a dial address NET!HOST!PORT: %r" % (address,))
    network, host, service = parts
    if network not in _STREAM_NETWORKS:
        raise ValueError(
            "dial address %r: network %r is not a stream network (tcp or net)" % (address, network)
        )
    if host == "*":
        raise ValueError("dial address %r names no host to dial" % (address,))
    return DialAddress(network, host, _portNumber(service, address))


def dialAddressEndpoint(
    reactor: IReactorTCP, address: str, timeout: float = 30
) -> HostnameEndpoint:
    """
    A client endpoint that connects to an Inferno dial address.

    @param address: a dial address, as L{parseDialAddress} reads it.
    @param timeout: the connection timeout in seconds.
    @raise ValueError: for an address L{parseDialAddress} rejects.
    @return: a L{HostnameEndpoint} (names are resolved, IPv4 and IPv6).
    """
    parsed = parseDialAddress(address)
    return HostnameEndpoint(reactor, parsed.host, parsed.port, timeout=timeout)


def formatDialAddress(host: str, port: int, network: str = "tcp") -> str:
    """
    Write the dial address of a listening stream port.

    @type host: L{str}
    @type port: L{int}
    @return: C{tcp!HOST!PORT}.
    @rtype: L{str}
    """
    return "%s!%s!%d" % (network, host, port)
