"""Sending through a real SMTP server on loopback: what arrives, and how refusals surface."""

from __future__ import annotations

import base64
import ssl
from datetime import UTC, datetime

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.mail import (
    DkimSigner,
    SmtpSettings,
    SMTPTransport,
    TransportError,
    build_message,
    parse_smtp_url,
)
from tests.support import smtp as smtp_support
from tests.support.smtp import free_port

# ``smtp_server`` comes from tests/conftest.py; this one only these tests need.
smtp_tls_server = smtp_support.smtp_tls_server

ENVELOPE_FROM = "bounces@news.example"
UNSUBSCRIBE_URL = "https://news.example/unsubscribe/one-click?t=abc"


@pytest.fixture(scope="module")
def dkim_keys():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name.rstrip(b".") == b"mw._domainkey.news.example" else None

    return DkimSigner("mw", "news.example", pem), dnsfunc


def message(to: str = "ada@example.com", subject: str = "Open-weight models close the gap"):
    return build_message(
        from_addr="Modelwire <newsletter@news.example>",
        to=to,
        subject=subject,
        text="The week in models.\n.\n.a line starting with a dot\n",
        html="<p>The week in models.</p>" * 2500,
        message_id_domain="news.example",
        list_id="Modelwire <daily.news.example>",
        list_unsubscribe_url=UNSUBSCRIBE_URL,
        list_unsubscribe_mailto="unsubscribe@news.example",
        date=datetime(2025, 11, 27, 9, 30, tzinfo=UTC),
    )


def transport_for(server, **kwargs) -> SMTPTransport:
    return SMTPTransport(parse_smtp_url(server.url), local_hostname="localhost", **kwargs)


def test_signed_message_arrives_intact_and_verifies(smtp_server, dkim_keys):
    signer, dnsfunc = dkim_keys
    signed = signer.sign(message())
    transport = transport_for(smtp_server)
    try:
        result = transport.send(ENVELOPE_FROM, ["ada@example.com"], signed)
    finally:
        transport.close()

    assert len(smtp_server.messages) == 1
    received = smtp_server.messages[0]
    assert result.code == 250
    assert result.reply == smtp_server.replies[0][4:], "the relay's queue id was lost"
    assert received.envelope_from == ENVELOPE_FROM
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.raw == signed
    msg = received.message
    assert msg["To"] == "ada@example.com"
    assert msg["List-Id"] == "Modelwire <daily.news.example>"
    assert msg["List-Unsubscribe"] == (f"<{UNSUBSCRIBE_URL}>, "
                                       "<mailto:unsubscribe@news.example>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["DKIM-Signature"] is not None
    assert dkim.verify(received.raw, dnsfunc=dnsfunc)


def test_two_sends_share_one_connection(smtp_server):
    transport = transport_for(smtp_server)
    try:
        transport.send(ENVELOPE_FROM, ["ada@example.com"], message("ada@example.com"))
        transport.send(ENVELOPE_FROM, ["bob@example.com"], message("bob@example.com"))
    finally:
        transport.close()
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ada@example.com"],
                                                          ["bob@example.com"]]
    assert smtp_server.connections == 1


def test_starttls_and_auth(smtp_tls_server):
    transport = transport_for(smtp_tls_server, ssl_context=smtp_tls_server.client_ssl_context())
    try:
        result = transport.send(ENVELOPE_FROM, ["ada@example.com"], message())
    finally:
        transport.close()
    assert result.code == 250
    received = smtp_tls_server.messages[0]
    assert received.tls is True
    assert received.auth_user == "mailer"


def test_wrong_password_is_not_a_permanent_failure_of_the_message(smtp_tls_server):
    settings = parse_smtp_url(smtp_tls_server.url)
    settings = SmtpSettings(**{**settings.__dict__, "password": "wrong"})
    transport = SMTPTransport(settings, local_hostname="localhost",
                              ssl_context=smtp_tls_server.client_ssl_context())
    with pytest.raises(TransportError) as excinfo:
        transport.send(ENVELOPE_FROM, ["ada@example.com"], message())
    assert excinfo.value.code == 535 and excinfo.value.permanent is False
    assert smtp_tls_server.messages == []


def test_untrusted_certificate_is_refused(smtp_tls_server):
    transport = transport_for(smtp_tls_server, ssl_context=ssl.create_default_context())
    with pytest.raises(TransportError) as excinfo:
        transport.send(ENVELOPE_FROM, ["ada@example.com"], message())
    assert "certificate" in excinfo.value.reply.lower()
    assert excinfo.value.permanent is False
    assert smtp_tls_server.messages == []


def test_550_is_permanent(smtp_server):
    smtp_server.reply = lambda received: "550 5.1.1 <ada@example.com>: no such user"
    transport = transport_for(smtp_server)
    try:
        with pytest.raises(TransportError) as excinfo:
            transport.send(ENVELOPE_FROM, ["ada@example.com"], message())
    finally:
        transport.close()
    assert excinfo.value.code == 550
    assert excinfo.value.permanent is True
    assert "no such user" in excinfo.value.reply


def test_451_is_transient_and_the_connection_stays_usable(smtp_server):
    smtp_server.reply = lambda received: (
        "451 4.3.0 try later" if received.rcpt_tos == ["ada@example.com"] else None)
    transport = transport_for(smtp_server)
    try:
        with pytest.raises(TransportError) as excinfo:
            transport.send(ENVELOPE_FROM, ["ada@example.com"], message("ada@example.com"))
        result = transport.send(ENVELOPE_FROM, ["bob@example.com"], message("bob@example.com"))
    finally:
        transport.close()
    assert excinfo.value.code == 451 and excinfo.value.permanent is False
    assert result.code == 250
    assert [m.rcpt_tos for m in smtp_server.messages] == [["bob@example.com"]]
    assert smtp_server.connections == 1


def test_dropped_idle_connection_is_reopened_once(smtp_server):
    transport = transport_for(smtp_server)
    try:
        transport.send(ENVELOPE_FROM, ["ada@example.com"], message("ada@example.com"))
        smtp_server.restart()  # drops the connection the transport keeps
        result = transport.send(ENVELOPE_FROM, ["bob@example.com"], message("bob@example.com"))
    finally:
        transport.close()
    assert result.code == 250
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ada@example.com"],
                                                          ["bob@example.com"]]


def test_closed_port_is_a_transient_error():
    transport = SMTPTransport(SmtpSettings(host="127.0.0.1", port=free_port(), timeout=5),
                              local_hostname="localhost")
    with pytest.raises(TransportError) as excinfo:
        transport.send(ENVELOPE_FROM, ["ada@example.com"], message())
    assert excinfo.value.permanent is False
    assert excinfo.value.code is None


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://127.0.0.1:25", SmtpSettings(host="127.0.0.1", port=25)),
    ("smtp://relay.example", SmtpSettings(host="relay.example", port=25)),
    ("smtp://user:pass@relay.example:587?starttls=true&timeout=12.5",
     SmtpSettings(host="relay.example", port=587, username="user", password="pass",
                  starttls=True, timeout=12.5)),
    ("smtps://user:pass@relay.example",
     SmtpSettings(host="relay.example", port=465, username="user", password="pass",
                  implicit_tls=True)),
    ("smtp://me%40corp.example:p%40ss%3Aw%2Frd@relay.example:2525?starttls=false",
     SmtpSettings(host="relay.example", port=2525, username="me@corp.example",
                  password="p@ss:w/rd")),
    ("SMTP://[::1]:2525", SmtpSettings(host="::1", port=2525)),
])
def test_parse_smtp_url(url, expected):
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(("url", "problem"), [
    ("http://relay.example", "smtp://"),
    ("relay.example:25", "smtp://"),
    ("smtp://", "no host"),
    ("smtp://relay.example:abc", "port"),
    ("smtp://relay.example:70000", "port"),
    ("smtp://relay.example:0", "port"),
    ("smtp://relay.example?tls=yes", "unknown SMTP URL option"),
    ("smtp://relay.example?starttls=maybe", "starttls"),
    ("smtp://relay.example?timeout=-1", "timeout"),
    ("smtp://relay.example?timeout=soon", "timeout"),
    ("smtps://relay.example?starttls=true", "starttls"),
    ("smtp://user@relay.example", "no password"),
    ("smtp://relay.example/path", "path"),
])
def test_parse_smtp_url_rejects_bad_input(url, problem):
    with pytest.raises(ValueError, match=problem):
        parse_smtp_url(url)


def test_settings_repr_hides_the_password():
    settings = parse_smtp_url("smtp://user:hunter2@relay.example")
    assert "hunter2" not in repr(settings)


def test_dot_safe_send_arrives_identical(smtp_server):
    """Skipping dot-stuffing is only for messages without a line starting with "."."""
    from newsletter.mail import SMTPTransport, parse_smtp_url

    transport = SMTPTransport(parse_smtp_url(smtp_server.url))
    body = b"Subject: dots\r\nTo: a@example.com\r\n\r\nline one\r\n=2E starts with an escape\r\n"
    try:
        result = transport.send("s@example.com", ["a@example.com"], body, dot_safe=True)
        unterminated = transport.send("s@example.com", ["a@example.com"], body.rstrip(b"\r\n"),
                                      dot_safe=True)
    finally:
        transport.close()
    assert result.code == 250 and unterminated.code == 250
    assert [m.raw.replace(b"\r\n", b"\n").rstrip(b"\n") for m in smtp_server.messages] == [
        body.replace(b"\r\n", b"\n").rstrip(b"\n")] * 2
