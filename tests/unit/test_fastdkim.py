"""DKIM signatures made through OpenSSL that dkimpy accepts, and rejects once a message changes."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from newsletter.config import PROJECT_ROOT
from newsletter.mail import DkimError, DkimSigner, EmailRenderer, build_message
from newsletter.mail.fastdkim import FastDkimSigner
from newsletter.mail.template import MessageTemplate

SELECTOR = "mw2025"
DOMAIN = "news.example"
SUBJECT = "Les mod\u00e8les ouverts rattrapent l'\u00e9cart \u2014 \u6a21\u578b et la suite"
LONG_UNSUBSCRIBE = "https://news.example/unsubscribe/one-click?t=" + "Zm9v" * 30


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


@pytest.fixture(scope="module")
def signer(private_pem) -> FastDkimSigner:
    return FastDkimSigner(SELECTOR, DOMAIN, private_pem)


def built_message(**overrides) -> bytes:
    """A build_message message whose Subject and List-Unsubscribe are folded."""
    args = {
        "from_addr": "Zo\u00eb du Mod\u00e8le <newsletter@news.example>",
        "to": "ada@example.com",
        "subject": SUBJECT,
        "text": "The week in models.\n",
        "html": "<p>The week in models.</p>" * 3000,
        "message_id_domain": DOMAIN,
        "list_id": "Modelwire <daily.news.example>",
        # build_message RFC 2047-encodes a List-Unsubscribe too long for one line.
        "list_unsubscribe_url": "https://news.example/unsubscribe/one-click?t=Zm9vYmFy",
        "list_unsubscribe_mailto": "unsubscribe@news.example",
        "extra_headers": {"Feedback-ID": "synthesis:daily:modelwire"},
        "date": datetime(2025, 11, 27, 9, 30, tzinfo=UTC),
    }
    args.update(overrides)
    return build_message(**args)


@pytest.fixture(scope="module")
def template() -> MessageTemplate:
    rendered = EmailRenderer(PROJECT_ROOT / "templates" / "emails").render("synthesis", {
        "publication": "Modelwire", "base_url": "https://news.example",
        "postal_address": "Modelwire, 1 Example Street, Springfield, USA",
        "subject": SUBJECT,
        "synthesis": {
            "title": SUBJECT, "summary": "Three labs released open-weight models. " * 20,
            "context": "Context. " * 40, "analysis": "Analyst take. " * 40,
            "watch": "Licences.", "mentions": ["Mistral"], "byline": "The desk",
            "source_name": "The Example Times", "source_url": "https://example-times.test/a",
            "url": "https://news.example/syntheses/open-weights",
            "topic_names": ["Models and research"],
            "published_at": datetime(2025, 11, 27, 9, 30, tzinfo=UTC),
        },
    })
    return MessageTemplate.build(
        from_addr="Modelwire <newsletter@news.example>", subject=SUBJECT, text=rendered.text,
        html=rendered.html, message_id_domain=DOMAIN, list_id="Modelwire <daily.news.example>",
        extra_headers={"Feedback-ID": "synthesis:daily:modelwire"})


def rendered_message(template: MessageTemplate, n: int = 1) -> bytes:
    return template.render({
        "to": f'"Reader Number {n}, Analyst of Engines and Models" <reader{n}@example.com>',
        "message_id": f"d{n:08d}",
        "list_unsubscribe": f"<{LONG_UNSUBSCRIBE}{n}>, <mailto:unsubscribe@news.example>",
        "greeting": f".Hello reader {n} \u00e9 \u4e2d\u6587 \U0001f600,",
        "email": f"reader{n}@example.com",
        "preferences_url": f"https://news.example/p/{n}",
        "unsubscribe_url": f"https://news.example/u/{n}",
    })


def signature_tags(signed: bytes) -> dict[bytes, bytes]:
    header = signed.split(b"\r\n\r\n", 1)[0]
    assert header.startswith(b"DKIM-Signature: ")
    value = re.split(rb"\r\n(?=[^ \t])", header, maxsplit=1)[0].split(b":", 1)[1]
    value = b"".join(value.split())
    return dict(tag.split(b"=", 1) for tag in value.split(b";") if tag)


def signature_header(signed: bytes) -> bytes:
    return re.split(rb"\r\n(?=[^ \t])", signed, maxsplit=1)[0]


@pytest.mark.parametrize("kind", ["build_message", "MessageTemplate"])
def test_dkimpy_accepts_the_signature(signer, dnsfunc, template, kind):
    original = built_message() if kind == "build_message" else rendered_message(template)
    head = original.split(b"\r\n\r\n", 1)[0]
    assert b"\r\n " in head and b"=?utf-8?" in head, "the fixture should fold and encode"
    signed = signer.sign(original)
    assert signed.endswith(original)
    assert dkim.verify(signed, dnsfunc=dnsfunc)


def test_signature_header_is_short_lines_crlf_and_dot_safe(signer, template):
    signed = signer.sign(rendered_message(template))
    header = signature_header(signed)
    assert header.count(b"\n") == header.count(b"\r\n")
    assert max(len(line) for line in header.split(b"\r\n")) <= 78
    assert not any(line.startswith(b".") for line in signed.split(b"\r\n"))


def test_signature_tags_match_dkimpy_and_cover_the_unsubscribe_headers(signer, private_pem):
    message = built_message()
    fast = signature_tags(signer.sign(message))
    slow = signature_tags(DkimSigner(SELECTOR, DOMAIN, private_pem).sign(message))
    assert fast[b"bh"] == slow[b"bh"]
    assert fast[b"h"] == slow[b"h"]
    assert fast[b"c"] == b"relaxed/simple" and fast[b"a"] == b"rsa-sha256"
    assert fast[b"d"] == DOMAIN.encode() and fast[b"s"] == SELECTOR.encode()
    signed_headers = fast[b"h"].split(b":")
    for name in (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                 b"content-type", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post",
                 b"feedback-id"):
        assert name in signed_headers
    assert signed_headers.count(b"list-unsubscribe") == 2, "oversigned"


def test_same_body_hash_as_dkimpy_on_a_rendered_message(signer, private_pem, template):
    message = rendered_message(template)
    fast = signature_tags(signer.sign(message))
    slow = signature_tags(DkimSigner(SELECTOR, DOMAIN, private_pem).sign(message))
    assert fast[b"bh"] == slow[b"bh"]


@pytest.mark.parametrize("body", [b"", b"\r\n", b"line\r\n\r\n\r\n", b"no final break",
                                  b"  spaced  \r\n\tline\r\n"])
def test_body_canonicalisation_edge_cases_verify(signer, dnsfunc, private_pem, body):
    message = b"From: newsletter@news.example\r\nTo: ada@example.com\r\nSubject: x\r\n\r\n" + body
    signed = signer.sign(message)
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    slow = DkimSigner(SELECTOR, DOMAIN, private_pem).sign(message)
    assert signature_tags(signed)[b"bh"] == signature_tags(slow)[b"bh"]


def test_header_blanks_are_canonicalised_like_a_verifier_does(signer, dnsfunc):
    message = (b"From:  Modelwire \t <newsletter@news.example> \r\nTo:ada@example.com\r\n"
               b"Subject:\tHello   there,\r\n\t  folded\t \r\n  line \r\n\r\nBody.\r\n")
    assert dkim.verify(signer.sign(message), dnsfunc=dnsfunc)


def test_a_repeated_header_is_signed_from_the_bottom_up(private_pem, dnsfunc):
    fast = FastDkimSigner(SELECTOR, DOMAIN, private_pem, headers=("From", "X-Tag"))
    message = (b"From: newsletter@news.example\r\nX-Tag: first\r\nX-Tag: second\r\n"
               b"\r\nBody.\r\n")
    signed = fast.sign(message)
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    assert not dkim.verify(signed.replace(b"second", b"other"), dnsfunc=dnsfunc)
    assert dkim.verify(signed.replace(b"first", b"other"), dnsfunc=dnsfunc)


def test_relaxed_headers_survive_refolding_by_a_relay(signer, dnsfunc):
    signed = signer.sign(built_message())
    head, body = signed.split(b"\r\n\r\n", 1)
    signature, rest = re.split(rb"\r\n(?=[^ \t])", head, maxsplit=1)
    # A relay that unfolds headers and doubles a space keeps a relaxed signature valid.
    refolded = re.sub(rb"\r\n[ \t]+", b"  ", rest)
    assert refolded != rest
    assert dkim.verify(signature + b"\r\n" + refolded + b"\r\n\r\n" + body, dnsfunc=dnsfunc)


@pytest.mark.parametrize("kind", ["build_message", "MessageTemplate"])
def test_tampered_body_fails(signer, dnsfunc, template, kind):
    signed = signer.sign(built_message() if kind == "build_message"
                         else rendered_message(template))
    tampered = re.sub(rb"models", b"mudels", signed, count=1)
    head_len = len(signed.split(b"\r\n\r\n", 1)[0])
    assert tampered != signed and tampered[:head_len] == signed[:head_len]
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


@pytest.mark.parametrize(("old", "new"), [
    (b"one-click?t=Zm9vYmFy", b"one-click?t=ZXZpbA"),
    (b"To: ada@example.com", b"To: eve@example.com"),
    (b"Message-ID: <", b"Message-ID: <x"),
])
def test_tampered_header_fails(signer, dnsfunc, old, new):
    signed = signer.sign(built_message())
    tampered = signed.replace(old, new, 1)
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_tampered_list_unsubscribe_of_a_rendered_message_fails(signer, dnsfunc, template):
    signed = signer.sign(rendered_message(template))
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    tampered = signed.replace(b"Zm9v1>", b"Zm9v2>", 1)
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


@pytest.mark.parametrize("added", [
    b"From: Bank <security@bank.example>",
    b"List-Unsubscribe: <https://evil.example/u>",
    b"Reply-To: thief@evil.example",
    b"Subject: Urgent: verify your account",
])
def test_added_headers_fail_because_they_are_oversigned(signer, dnsfunc, added):
    signed = signer.sign(built_message())
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    head, body = signed.split(b"\r\n\r\n", 1)
    assert not dkim.verify(head + b"\r\n" + added + b"\r\n\r\n" + body, dnsfunc=dnsfunc)


def test_a_custom_header_list_is_signed_as_given(private_pem, dnsfunc):
    fast = FastDkimSigner(SELECTOR, DOMAIN, private_pem, headers=("From", "Subject", "X-Nope"))
    signed = fast.sign(built_message())
    assert signature_tags(signed)[b"h"] == b"from:subject:x-nope"
    assert dkim.verify(signed, dnsfunc=dnsfunc)


def test_pkcs1_key_and_crlf_pem_are_accepted(rsa_key, dnsfunc):
    pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).replace(b"\n", b"\r\n")
    assert dkim.verify(FastDkimSigner(SELECTOR, DOMAIN, pem).sign(built_message()),
                       dnsfunc=dnsfunc)


def test_from_files_reads_the_key(tmp_path, private_pem, dnsfunc):
    path = tmp_path / "dkim.pem"
    path.write_bytes(private_pem)
    signed = FastDkimSigner.from_files(SELECTOR, DOMAIN, str(path)).sign(built_message())
    assert dkim.verify(signed, dnsfunc=dnsfunc)


def test_from_files_reports_a_missing_key(tmp_path):
    with pytest.raises(DkimError, match="missing.pem"):
        FastDkimSigner.from_files(SELECTOR, DOMAIN, tmp_path / "missing.pem")


def test_garbage_and_non_rsa_keys_are_refused():
    garbage = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    with pytest.raises(DkimError, match="not a PEM RSA private key"):
        FastDkimSigner(SELECTOR, DOMAIN, garbage)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(DkimError, match="not an RSA key"):
        FastDkimSigner(SELECTOR, DOMAIN, ec_pem)


def test_from_must_be_signed(private_pem):
    with pytest.raises(DkimError, match="From"):
        FastDkimSigner(SELECTOR, DOMAIN, private_pem, headers=("To", "Subject"))


def test_bare_line_feeds_in_the_headers_are_refused(signer):
    with pytest.raises(DkimError, match="bare"):
        signer.sign(b"From: a@news.example\nTo: b@example.com\r\n\r\nbody\r\n")
