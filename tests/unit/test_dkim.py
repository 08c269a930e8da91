"""DKIM signatures that a receiving server would accept, and reject once the message changes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.mail import DkimError, DkimSigner, build_message

SELECTOR = "mw2025"
DOMAIN = "news.example"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def private_pem(rsa_key) -> bytes:
    return rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


@pytest.fixture(scope="module")
def dnsfunc(rsa_key):
    """Answers the TXT query for ``SELECTOR._domainkey.DOMAIN`` like a DNS server would."""
    der = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        expected = f"{SELECTOR}._domainkey.{DOMAIN}".encode()
        return record if name.rstrip(b".") == expected else None

    return lookup


@pytest.fixture
def signer(private_pem) -> DkimSigner:
    return DkimSigner(SELECTOR, DOMAIN, private_pem)


def message() -> bytes:
    return build_message(
        from_addr="Modelwire <newsletter@news.example>",
        to="ada@example.com",
        subject="Open-weight models close the gap",
        text="The week in models.\n",
        html="<p>The week in models.</p>" * 3000,
        message_id_domain=DOMAIN,
        list_id="Modelwire <daily.news.example>",
        list_unsubscribe_url="https://news.example/unsubscribe/one-click?t=abc",
        list_unsubscribe_mailto="unsubscribe@news.example",
        date=datetime(2025, 11, 27, 9, 30, tzinfo=UTC),
    )


def signature_tags(signed: bytes) -> dict[bytes, bytes]:
    header = signed.split(b"\r\n\r\n", 1)[0]
    assert header.startswith(b"DKIM-Signature: ")
    value = header.split(b": ", 1)[1].split(b"\r\nFrom:", 1)[0]
    value = b"".join(value.split())
    return dict(tag.split(b"=", 1) for tag in value.split(b";") if tag)


def test_signed_message_verifies(signer, dnsfunc):
    original = message()
    signed = signer.sign(original)
    assert signed.endswith(original)
    assert signed.count(b"\n") == signed.count(b"\r\n")
    assert dkim.verify(signed, dnsfunc=dnsfunc)


def test_signature_covers_the_unsubscribe_headers(signer):
    tags = signature_tags(signer.sign(message()))
    signed_headers = tags[b"h"].lower().split(b":")
    for name in (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                 b"content-type", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post"):
        assert name in signed_headers
    assert tags[b"d"] == DOMAIN.encode() and tags[b"s"] == SELECTOR.encode()
    assert tags[b"c"] == b"relaxed/simple" and tags[b"a"] == b"rsa-sha256"


def test_tampered_body_fails(signer, dnsfunc):
    signed = signer.sign(message())
    tampered = signed.replace(b"The week in models.", b"The week in mudels.", 1)
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_tampered_unsubscribe_header_fails(signer, dnsfunc):
    signed = signer.sign(message())
    tampered = signed.replace(b"one-click?t=abc", b"one-click?t=evil", 1)
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_an_added_from_header_fails(signer, dnsfunc):
    signed = signer.sign(message())
    head, body = signed.split(b"\r\n\r\n", 1)
    tampered = head + b"\r\nFrom: Bank <security@bank.example>\r\n\r\n" + body
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_pkcs1_key_and_crlf_pem_are_accepted(rsa_key, dnsfunc):
    pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).replace(b"\n", b"\r\n")
    signed = DkimSigner(SELECTOR, DOMAIN, pem).sign(message())
    assert dkim.verify(signed, dnsfunc=dnsfunc)


def test_from_files_reads_the_key(tmp_path, private_pem, dnsfunc):
    path = tmp_path / "dkim.pem"
    path.write_bytes(private_pem)
    signed = DkimSigner.from_files(SELECTOR, DOMAIN, str(path)).sign(message())
    assert dkim.verify(signed, dnsfunc=dnsfunc)


def test_from_files_reports_a_missing_key(tmp_path):
    with pytest.raises(DkimError, match="missing.pem"):
        DkimSigner.from_files(SELECTOR, DOMAIN, tmp_path / "missing.pem")


def test_garbage_key_is_refused(tmp_path):
    path = tmp_path / "garbage.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DkimError, match="not a PEM RSA private key"):
        DkimSigner.from_files(SELECTOR, DOMAIN, path)
