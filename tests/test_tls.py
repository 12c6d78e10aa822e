"""
A registry reached over TLS end to end (the C{txinferno[tls]} extra): the
registry server listening on C{ssl:} endpoints with a throwaway
certificate, the client on C{tls:} endpoints trusting only that
certificate.
"""

import datetime
import importlib.metadata
import ipaddress

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL.SSL import Error as SSLError
from support import bounded, whenRegistry
from twisted.internet import reactor

from txinferno.client.manager import RegistryManager
from txinferno.client.service import ServiceTask
from txinferno.client.tcp import TCPRegistryConnection
from txinferno.server.protocols import RegistryServer
from txinferno.server.registry import Registry


def throwawayCertificate(directory):
    """
    Write a self-signed certificate for 127.0.0.1 and its key.

    @return: the paths of the key, and of the certificate (alone in a
        directory of its own, for C{trustRoots=}).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "txinferno test registry")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    keyPath = directory / "key.pem"
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    roots = directory / "roots"
    roots.mkdir()
    certPath = roots / "registry.pem"
    certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return keyPath, certPath


@pytest_twisted.async_yield_fixture
async def tlsRegistry(tmp_path):
    keyPath, certPath = throwawayCertificate(tmp_path)
    server = RegistryServer(Registry(), reactor)
    listening = "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (keyPath, certPath)
    ports = await bounded(server.listen(listening, listening, listening))
    try:
        yield server, [p.getHost().port for p in ports], certPath.parent
    finally:
        await server.stopListening()
        await server.disconnectAll()


@pytest_twisted.ensureDeferred
async def test_registerAndFindOverTLS(tlsRegistry):
    """
    A manager on C{tls:} endpoints keeps a service registered and finds it:
    the new, find and event ports all over TLS.
    """
    server, ports, roots = tlsRegistry
    new, find, event = ["tls:127.0.0.1:%d:trustRoots=%s" % (port, roots) for port in ports]
    manager = RegistryManager(TCPRegistryConnection(reactor, new, find, event), reactor)
    task = manager.attach(ServiceTask("web", {"proto": "https"}))
    manager.startService()
    try:
        await bounded(task.whenRegistered())
        assert dict(server.registry["web"].attributes()) == {"proto": "https"}
        assert await bounded(manager.connection.find({"proto": "https"})) == {
            "web": {"proto": "https"}
        }
    finally:
        await bounded(manager.stopService())
    await whenRegistry(server, lambda r: "web" not in r)


@pytest_twisted.ensureDeferred
async def test_untrustedCertificateRefused(tlsRegistry):
    """
    Without the certificate among its trust roots, the client refuses the
    registry: the query fails, nothing is read.
    """
    server, ports, roots = tlsRegistry
    endpoints = ["tls:127.0.0.1:%d" % port for port in ports]
    connection = TCPRegistryConnection(reactor, *endpoints, findTimeout=5)
    with pytest.raises(SSLError, match="certificate verify failed"):
        await bounded(connection.find({"proto": "https"}))


def test_tlsExtra():
    """
    C{pip install 'txinferno[tls]'} brings what C{tls:} endpoints need.
    """
    assert 'twisted[tls]; extra == "tls"' in importlib.metadata.requires("txinferno")
