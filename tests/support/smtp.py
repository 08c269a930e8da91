"""A real SMTP server on loopback for tests (aiosmtpd), recording what it accepts.

``SMTPTestServer`` listens on 127.0.0.1 on a free port, optionally with STARTTLS (a
self-signed certificate for 127.0.0.1/localhost) and AUTH (one user and password). It
records every accepted message, counts connections, and lets a test choose the reply to
each message with ``server.reply = lambda received: "550 5.1.1 no such user"`` (return
``None`` to accept). Fixtures: ``smtp_server`` (plain) and ``smtp_tls_server``
(STARTTLS and AUTH required).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import secrets
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"


@dataclass
class ReceivedMessage:
    """One message as the server got it."""

    envelope_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    tls: bool = False
    auth_user: str | None = None


@dataclass
class _Certificate:
    cert_pem: bytes
    key_pem: bytes


@cache
def _self_signed_certificate() -> _Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST)),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class _Handler:
    def __init__(self, server: SMTPTestServer) -> None:
        self._server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: N802
        reply = self._server.rcpt_reply(address) if self._server.rcpt_reply else None
        if reply is None:
            envelope.rcpt_tos.append(address)
            return "250 OK"
        self._server.refused_rcpts.append(address)
        return reply

    async def handle_DATA(self, smtp, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        raw = envelope.original_content
        received = ReceivedMessage(
            envelope_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            message=email.message_from_bytes(raw, policy=email.policy.default),
            tls=session.ssl is not None,
            auth_user=session.auth_data if session.authenticated else None,
        )
        reply = self._server.reply(received) if self._server.reply else None
        if reply is None:
            reply = f"250 2.0.0 Ok: queued as {secrets.token_hex(6).upper()}"
        if reply.startswith("2"):
            self._server.messages.append(received)
            self._server.replies.append(reply)
        else:
            self._server.rejected.append(received)
        return reply


class _Controller(Controller):
    def __init__(self, server: SMTPTestServer, **kwargs) -> None:
        super().__init__(_Handler(server), **kwargs)
        self._test_server = server

    def factory(self) -> SMTP:
        # aiosmtpd calls factory() once per incoming connection.
        with self._test_server._lock:
            self._test_server.connections += 1
        return super().factory()


@dataclass
class SMTPTestServer:
    """Start with ``start()`` or ``with``; ``url`` is an SMTP URL the transports accept."""

    starttls: bool = False
    auth: tuple[str, str] | None = None
    reply: Callable[[ReceivedMessage], str | None] | None = None
    # The reply to RCPT TO for an address (None: accept), as Postfix refuses unknown users.
    rcpt_reply: Callable[[str], str | None] | None = None
    refused_rcpts: list[str] = field(default_factory=list)
    port: int = 0
    messages: list[ReceivedMessage] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    rejected: list[ReceivedMessage] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.host = HOST
        self._lock = threading.Lock()
        self._controller: _Controller | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        query = "?starttls=true" if self.starttls else ""
        creds = ""
        if self.auth:
            creds = f"{quote(self.auth[0], safe='')}:{quote(self.auth[1], safe='')}@"
        return f"smtp://{creds}{self.host}:{self.port}{query}"

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cadata=_self_signed_certificate().cert_pem.decode())

    def start(self) -> SMTPTestServer:
        if not self.port:
            self.port = free_port()
        kwargs: dict = {"hostname": self.host, "port": self.port,
                        "server_hostname": "localhost", "ready_timeout": 5.0}
        if self.starttls:
            kwargs["tls_context"] = self._server_ssl_context()
            kwargs["require_starttls"] = True
        if self.auth:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = self.starttls
        self._controller = _Controller(self, **kwargs)
        self._controller.start()
        # start() opens a probe connection of its own; count only the clients' ones.
        with self._lock:
            self.connections = 0
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def restart(self) -> None:
        """Stop and start on the same port: every client connection is dropped."""
        self.stop()
        self.start()

    def __enter__(self) -> SMTPTestServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _server_ssl_context(self) -> ssl.SSLContext:
        certificate = _self_signed_certificate()
        self._tmp = tempfile.TemporaryDirectory(prefix="smtp-test-")
        cert_file = Path(self._tmp.name) / "cert.pem"
        key_file = Path(self._tmp.name) / "key.pem"
        cert_file.write_bytes(certificate.cert_pem)
        key_file.write_bytes(certificate.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert self.auth is not None
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == self.auth[0]
              and auth_data.password.decode() == self.auth[1])
        return AuthResult(success=ok, handled=False,
                          auth_data=auth_data.login.decode() if ok else None)


@pytest.fixture
def smtp_server():
    """A plain SMTP server on 127.0.0.1 (no TLS, no AUTH), stopped after the test."""
    with SMTPTestServer() as server:
        yield server


@pytest.fixture
def smtp_tls_server():
    """An SMTP server that requires STARTTLS and AUTH (user ``mailer``)."""
    with SMTPTestServer(starttls=True, auth=("mailer", "p@ss:w/rd")) as server:
        yield server


class Dropper:
    """A relay that accepts every connection and closes it before greeting (a crashing or
    overloaded MTA); counts the connections it was dialled."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.1)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
