"""
Tests for L{txinferno.wire.dialaddress}.
"""

import pytest
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.testing import MemoryReactorClock

from txinferno.wire.dialaddress import (
    DialAddress,
    dialAddressEndpoint,
    formatDialAddress,
    parseDialAddress,
)


@pytest.mark.parametrize(
    "address, parsed",
    [
        ("tcp!host!22", DialAddress("tcp", "host", 22)),
        ("net!10.0.0.1!6701", DialAddress("net", "10.0.0.1", 6701)),
        ("click!1234", DialAddress("net", "click", 1234)),
        ("tcp!host!ssh", DialAddress("tcp", "host", 22)),
        ("tcp!::1!80", DialAddress("tcp", "::1", 80)),
    ],
)
def test_parse(address, parsed):
    assert parseDialAddress(address) == parsed


@pytest.mark.parametrize(
    "address, message",
    [
        ("host", "not a dial address"),
        ("tcp!host!22!x", "not a dial address"),
        ("tcp!!22", "not a dial address"),
        ("udp!host!53", "not a stream network"),
        ("tcp!*!22", "names no host"),
        ("tcp!host!no-such-service-xyz", "unknown service"),
        ("tcp!host!0", "out of range"),
        ("tcp!host!70000", "out of range"),
    ],
)
def test_parseRejects(address, message):
    with pytest.raises(ValueError, match=message):
        parseDialAddress(address)


def test_endpoint():
    """
    The endpoint connects to the address's host and port.
    """
    reactor = MemoryReactorClock()
    endpoint = dialAddressEndpoint(reactor, "tcp!127.0.0.1!4321")
    assert isinstance(endpoint, HostnameEndpoint)
    endpoint.connect(None)
    reactor.advance(0)
    host, port = reactor.tcpClients[0][:2]
    assert (host, port) == ("127.0.0.1", 4321)


def test_format():
    assert formatDialAddress("127.0.0.1", 8080) == "tcp!127.0.0.1!8080"
    assert parseDialAddress(formatDialAddress("h", 9)) == DialAddress("tcp", "h", 9)
