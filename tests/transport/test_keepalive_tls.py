"""``KeepAliveTransport`` over TLS: most real upstreams (OpenAI, DeepSeek, OpenRouter…) are HTTPS.

A throw-away certificate authority (made with ``cryptography``) signs a certificate for
``localhost``; the loopback server speaks HTTP/1.1 over TLS. The transport must verify the chain
through the CA named by ``SSL_CERT_FILE`` (as httpx does), reuse the TLS connection, and refuse a
server whose certificate nobody vouches for.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shim.upstream.transport import KeepAliveTransport

BODY = b'{"ok": true}'


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    signer: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) — a CA and a localhost certificate it signed."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("shim test CA", ca_key, None, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("localhost", key, ca.subject, ca_key)
    paths = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    paths[0].write_bytes(_pem(ca))
    paths[1].write_bytes(_pem(server))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
async def https_port(pki: tuple[Path, Path, Path]) -> AsyncIterator[tuple[int, list[int]]]:
    """A keep-alive HTTPS server on loopback; the list counts the TLS connections it accepted."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki[1], pki[2])
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                writer.write(head % len(BODY) + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], accepted
    server.close()
    await server.wait_closed()


async def test_https_upstream_is_verified_and_reused(
    monkeypatch: pytest.MonkeyPatch, pki: tuple[Path, Path, Path], https_port: tuple[int, list[int]]
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki[0]))
    port, accepted = https_port
    async with httpx.AsyncClient(transport=KeepAliveTransport(httpx.Limits())) as client:
        for _ in range(3):
            answer = await client.get(f"https://localhost:{port}/v1/models")
            assert answer.status_code == 200 and answer.content == BODY
    assert len(accepted) == 1, "the TLS connection is kept alive and reused"


async def test_an_unvouched_certificate_is_refused(
    monkeypatch: pytest.MonkeyPatch, https_port: tuple[int, list[int]]
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    port, _ = https_port
    async with httpx.AsyncClient(transport=KeepAliveTransport(httpx.Limits())) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://localhost:{port}/v1/models")
