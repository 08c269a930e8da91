"""The sending-setup checks on plain settings, a stub resolver and recorded relay answers."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from newsletter.config import PLACEHOLDER_ADDRESS
from newsletter.mail.dkim_keys import record_value, zone_line
from newsletter.mail.probe import ProbeResult
from newsletter.mail.setup_check import (
    FAIL,
    OK,
    WARN,
    aligned,
    organisational_domain,
    run_checks,
)

DOMAIN = "modelwire.news"
PASSWORD = "s3cret-relay-pw"


@dataclass
class StubResolver:
    """DNS as a dict: (type, name) -> records; a name not in it has none. ``silent``: no
    answer at all (what an offline machine gets)."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    silent: bool = False
    asked: list[tuple[str, str]] = field(default_factory=list)

    def txt(self, name: str) -> list[str] | None:
        self.asked.append(("TXT", name))
        return None if self.silent else list(self.records.get(("TXT", name), []))

    def mx(self, name: str) -> list[str] | None:
        self.asked.append(("MX", name))
        return None if self.silent else list(self.records.get(("MX", name), []))


GOOD_RELAY = ProbeResult(hostname="relay.modelwire.news", starttls_offered=True, tls=True,
                         auth_offered=("LOGIN", "PLAIN"), logged_in=True)


@pytest.fixture(scope="module")
def key_file(dkim_key_file):
    return dkim_key_file


@pytest.fixture
def config(key_file):
    return {
        "DEBUG": False,
        "BASE_URL": f"https://{DOMAIN}",
        "POSTAL_ADDRESS": "Modelwire, 12 rue de la Paix, 75002 Paris, France",
        "MAIL_FROM": f"Modelwire <newsletter@{DOMAIN}>",
        "ACCOUNT_MAIL_FROM": None,
        "MAIL_TRANSPORT": "smtp",
        "SMTP_URL": f"smtp://mailer:{PASSWORD}@relay.{DOMAIN}:587?starttls=true",
        "SEND_CONNECTIONS": 4,
        "BOUNCE_DOMAIN": f"bounces.{DOMAIN}",
        "DKIM_SELECTOR": "mail",
        "DKIM_DOMAIN": DOMAIN,
        "DKIM_PRIVATE_KEY_PATH": str(key_file[0]),
    }


@pytest.fixture
def dns(key_file):
    return StubResolver({
        ("TXT", f"mail._domainkey.{DOMAIN}"): [record_value(key_file[1].public_key())],
        ("TXT", f"bounces.{DOMAIN}"): ["v=spf1 include:_spf.relay.example -all"],
        ("MX", f"bounces.{DOMAIN}"): [f"mx.{DOMAIN}"],
        ("TXT", f"_dmarc.{DOMAIN}"): ["v=DMARC1; p=quarantine; rua=mailto:dmarc@" + DOMAIN],
    })


def check(config, dns, relay=GOOD_RELAY):
    return run_checks(config, resolver=dns, probe=lambda settings: relay)


def by_status(checks, status):
    return [c.what for c in checks if c.status == status]


def only(checks, words):
    """The one check whose text contains ``words``."""
    found = [c for c in checks if words in c.what]
    assert len(found) == 1, (words, [c.what for c in checks])
    return found[0]


def test_a_good_setup_is_all_ok(config, dns):
    checks = check(config, dns)
    assert [c.status for c in checks] == [OK] * len(checks), checks
    assert [c.what for c in checks] == [
        "DKIM signing on (d=modelwire.news, s=mail, 2048-bit RSA key)",
        "DKIM d=modelwire.news is aligned with the From domain modelwire.news "
        "(NEWSLETTER_MAIL_FROM) for DMARC",
        "NEWSLETTER_BASE_URL is https (https://modelwire.news)",
        "postal address set (Modelwire, 12 rue de la Paix, 75002 Paris, France)",
        "relay relay.modelwire.news:587 answers EHLO (relay.modelwire.news)",
        "relay relay.modelwire.news:587: STARTTLS, certificate verified",
        "relay relay.modelwire.news:587 accepts the login of mailer",
        "bounce domain bounces.modelwire.news has MX mx.modelwire.news",
        "SPF record at bounces.modelwire.news (v=spf1 include:_spf.relay.example -all)",
        "DKIM record at mail._domainkey.modelwire.news matches the key",
        "DMARC record at _dmarc.modelwire.news (p=quarantine)",
    ]
    assert ("TXT", "_dmarc.modelwire.news") in dns.asked


def test_dkim_domain_not_aligned_with_from_fails(config, dns):
    config["DKIM_DOMAIN"] = "other-sender.net"
    dns.records[("TXT", "mail._domainkey.other-sender.net")] = dns.records[
        ("TXT", f"mail._domainkey.{DOMAIN}")]
    found = only(check(config, dns), "not aligned")
    assert found.status == FAIL
    assert "From domain modelwire.news (NEWSLETTER_MAIL_FROM)" in found.what
    assert "NEWSLETTER_DKIM_DOMAIN=modelwire.news" in found.fix


def test_a_parent_domain_signature_aligns_and_dmarc_is_found_at_the_parent(config, dns):
    config["MAIL_FROM"] = f"Modelwire <letters@mail.{DOMAIN}>"
    checks = check(config, dns)
    assert only(checks, "aligned with the From domain mail.modelwire.news").status == OK
    assert only(checks, "DMARC record").what == "DMARC record at _dmarc.modelwire.news " \
                                                "(p=quarantine)"
    assert dns.asked.index(("TXT", "_dmarc.mail.modelwire.news")) < dns.asked.index(
        ("TXT", "_dmarc.modelwire.news")), "the From domain's own record is asked first"


def test_account_mail_from_is_checked_too(config, dns):
    config["ACCOUNT_MAIL_FROM"] = "Modelwire accounts <hello@accounts.modelwire.news>"
    assert only(check(config, dns), "NEWSLETTER_ACCOUNT_MAIL_FROM").status == OK
    config["ACCOUNT_MAIL_FROM"] = "Modelwire accounts <hello@modelwire-accounts.com>"
    checks = check(config, dns)
    misaligned = [c for c in checks if "not aligned" in c.what]
    assert [c.status for c in misaligned] == [FAIL]
    assert "From domain modelwire-accounts.com (NEWSLETTER_ACCOUNT_MAIL_FROM)" in (
        misaligned[0].what)
    assert "no DMARC record at _dmarc.modelwire-accounts.com" in by_status(checks, FAIL)[1]


def test_organisational_domains():
    assert organisational_domain("a.b.modelwire.news") == "modelwire.news"
    assert organisational_domain("news.modelwire.co.uk") == "modelwire.co.uk"
    assert aligned("modelwire.news", "mail.modelwire.news")
    assert aligned("mail.modelwire.news", "modelwire.news"), "relaxed: same organisation"
    assert not aligned("co.uk", "modelwire.co.uk"), "a public suffix is nobody's parent"
    assert not aligned("modelwire.news", "modelwire.com")


def test_a_dkim_record_for_another_key_fails_and_shows_the_right_record(config, dns, key_file):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dns.records[("TXT", f"mail._domainkey.{DOMAIN}")] = [record_value(other.public_key())]
    found = only(check(config, dns), "DKIM record")
    assert found.status == FAIL and "does not match the key" in found.what
    assert zone_line("mail", DOMAIN, record_value(key_file[1].public_key())) in found.fix


def test_a_revoked_or_missing_dkim_record_fails(config, dns):
    dns.records[("TXT", f"mail._domainkey.{DOMAIN}")] = ["v=DKIM1; k=rsa; p="]
    assert only(check(config, dns), "DKIM record").status == FAIL
    del dns.records[("TXT", f"mail._domainkey.{DOMAIN}")]
    found = only(check(config, dns), "DKIM record")
    assert found.status == FAIL and found.what.startswith("no DKIM record at mail._domainkey")
    assert found.fix.startswith("publish this record: mail._domainkey.modelwire.news. IN TXT ")


def test_a_dkim_record_split_in_strings_and_spaced_out_still_matches(config, dns, key_file):
    value = record_value(key_file[1].public_key())
    head, _, p = value.partition("p=")
    spaced = head + "p=" + " ".join(p[i:i + 60] for i in range(0, len(p), 60))
    dns.records[("TXT", f"mail._domainkey.{DOMAIN}")] = ["v=spf1 -all", spaced]
    assert only(check(config, dns), "DKIM record").status == OK


def test_spf_missing_or_doubled_fails(config, dns):
    dns.records[("TXT", f"bounces.{DOMAIN}")] = ["google-site-verification=abc"]
    found = only(check(config, dns), "SPF")
    assert found.status == FAIL and "return-path domain bounces.modelwire.news" in found.what
    dns.records[("TXT", f"bounces.{DOMAIN}")] = ["v=spf1 a -all", "v=spf1 mx -all"]
    found = only(check(config, dns), "SPF")
    assert found.status == FAIL and found.what.startswith("2 SPF records")


def test_dmarc_missing_fails_with_a_record_to_publish(config, dns):
    del dns.records[("TXT", f"_dmarc.{DOMAIN}")]
    found = only(check(config, dns), "DMARC record")
    assert found.status == FAIL
    assert '"v=DMARC1; p=none; rua=mailto:dmarc-reports@modelwire.news"' in found.fix


def test_bounce_domain_without_mx_or_not_real_fails(config, dns):
    del dns.records[("MX", f"bounces.{DOMAIN}")]
    assert only(check(config, dns), "MX").status == FAIL
    dns.records[("MX", f"bounces.{DOMAIN}")] = ["."]
    assert "null MX" in only(check(config, dns), "bounce domain").what
    for fake in ("localhost", "news.example", "127.0.0.1", "mailhost", ""):
        config["BOUNCE_DOMAIN"] = fake
        checks = check(config, dns)
        found = [c for c in checks if c.what.startswith("bounce domain")]
        assert [c.status for c in found] == [FAIL], fake
        assert not any("SPF" in c.what for c in checks), "no SPF question for a fake domain"


def test_a_return_path_outside_the_from_organisation_warns(config, dns):
    config["BOUNCE_DOMAIN"] = "bounces.relay-provider.com"
    dns.records[("MX", "bounces.relay-provider.com")] = ["mx.relay-provider.com"]
    dns.records[("TXT", "bounces.relay-provider.com")] = ["v=spf1 -all"]
    assert only(check(config, dns), "not aligned").status == WARN


def test_silent_dns_warns_and_fails_nothing(config, dns):
    dns.silent = True
    config["ACCOUNT_MAIL_FROM"] = "Modelwire <hello@accounts.modelwire.news>"
    checks = check(config, dns)
    assert by_status(checks, FAIL) == []
    silent = [c for c in checks if "DNS did not answer" in c.what]
    assert [c.status for c in silent] == [WARN] * 4
    assert {c.what.split(":")[0] for c in silent} == {
        "MX of the bounce domain bounces.modelwire.news",
        "SPF record at bounces.modelwire.news",
        "DKIM record at mail._domainkey.modelwire.news",
        "DMARC record at _dmarc.modelwire.news",
    }


@pytest.mark.parametrize("url", ["http://modelwire.news", "https://localhost:5000",
                                 "https://127.0.0.1", "https://10.0.0.4", ""])
def test_base_url_must_be_public_https_outside_debug(config, dns, url):
    config["BASE_URL"] = url
    assert only(check(config, dns), "NEWSLETTER_BASE_URL").status == FAIL
    config["DEVELOPMENT"] = True
    found = only(check(config, dns), "NEWSLETTER_BASE_URL")
    assert found.status == WARN and "fine in development" in found.what


def test_development_wins_over_a_debug_flag_set_by_flask(config, dns):
    config.update(BASE_URL="http://modelwire.news", DEBUG=True, DEVELOPMENT=False)
    assert only(check(config, dns), "NEWSLETTER_BASE_URL").status == FAIL


@pytest.mark.parametrize("address", [PLACEHOLDER_ADDRESS, "", "   "])
def test_the_placeholder_or_no_postal_address_fails(config, dns, address):
    config["POSTAL_ADDRESS"] = address
    found = only(check(config, dns), "NEWSLETTER_POSTAL_ADDRESS")
    assert found.status == FAIL and "CAN-SPAM" in found.fix


def test_dkim_off_half_set_or_with_a_bad_key_fails(config, dns, tmp_path):
    off = dict(config, DKIM_SELECTOR=None, DKIM_DOMAIN=None, DKIM_PRIVATE_KEY_PATH=None)
    assert only(check(off, dns), "DKIM signing is off").status == FAIL
    half = dict(config, DKIM_DOMAIN="")
    found = only(check(half, dns), "DKIM needs all three")
    assert found.status == FAIL and "missing: NEWSLETTER_DKIM_DOMAIN" in found.what
    ec_path = tmp_path / "ec.pem"
    ec_path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    checks = check(dict(config, DKIM_PRIVATE_KEY_PATH=str(ec_path)), dns)
    found = only(checks, "DKIM key:")
    assert found.status == FAIL and "not an RSA key: it is an EC key" in found.what
    assert not any(c.what.startswith("DKIM record") for c in checks)
    missing = check(dict(config, DKIM_PRIVATE_KEY_PATH=str(tmp_path / "nope.pem")), dns)
    assert "No such file or directory" in only(missing, "DKIM key:").what


def test_a_1024_bit_key_warns(config, dns, tmp_path):
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    path = tmp_path / "small.pem"
    path.write_bytes(small.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                         serialization.NoEncryption()))
    config["DKIM_PRIVATE_KEY_PATH"] = str(path)
    dns.records[("TXT", f"mail._domainkey.{DOMAIN}")] = [record_value(small.public_key())]
    checks = check(config, dns)
    assert by_status(checks, WARN) == [
        "DKIM signing on (d=modelwire.news, s=mail) with a 1024-bit key; 2048 recommended"]
    assert by_status(checks, FAIL) == []


@pytest.mark.parametrize(("relay", "url", "status", "words"), [
    (ProbeResult(failure="cannot connect: [Errno 111] Connection refused",
                 failed_step="connect"), None, FAIL, "Connection refused"),
    (ProbeResult(failure="STARTTLS failed: the relay's certificate was not accepted",
                 failed_step="starttls", starttls_offered=True), None, FAIL, "certificate"),
    (ProbeResult(failure="the relay does not offer STARTTLS", failed_step="starttls"),
     None, FAIL, "does not offer STARTTLS"),
    (ProbeResult(failure="the relay refused the login of mailer: 535 5.7.8 no",
                 failed_step="auth", starttls_offered=True, tls=True, auth_offered=("PLAIN",)),
     None, FAIL, "refused the login"),
    (ProbeResult(starttls_offered=True), "smtp://relay.modelwire.news:25", WARN,
     "offers STARTTLS but NEWSLETTER_SMTP_URL does not use it"),
    (ProbeResult(auth_offered=("PLAIN",), logged_in=True),
     f"smtp://mailer:{PASSWORD}@relay.modelwire.news:25", WARN,
     "offers no TLS: mail and the password cross"),
])
def test_what_the_relay_said(config, dns, relay, url, status, words):
    if url:
        config["SMTP_URL"] = url
    checks = check(config, dns, relay)
    assert only(checks, words).status == status
    assert all(PASSWORD not in c.what and PASSWORD not in (c.fix or "") for c in checks)


def test_every_relay_is_probed_without_its_sending_options(config, dns):
    config["SMTP_URL"] = ("smtp://a.modelwire.news:587?starttls=true&weight=3&rate=20,"
                          "smtps://mailer:pw@b.modelwire.news:465?connections=2")
    probed = []

    def probe(settings):
        probed.append(settings)
        return GOOD_RELAY

    checks = run_checks(config, resolver=dns, probe=probe)
    assert [(s.host, s.port, s.starttls, s.implicit_tls, s.username) for s in probed] == [
        ("a.modelwire.news", 587, True, False, None),
        ("b.modelwire.news", 465, False, True, "mailer")]
    assert "relay b.modelwire.news:465: TLS (smtps), certificate verified" in by_status(
        checks, OK)


def test_a_bad_relay_url_or_a_transport_that_does_not_send_fails(config, dns):
    config["SMTP_URL"] = "smtp://relay.modelwire.news:587?starttls=maybe"
    assert only(check(config, dns), "NEWSLETTER_SMTP_URL").status == FAIL
    config["MAIL_TRANSPORT"] = "file"
    assert only(check(config, dns), "NEWSLETTER_MAIL_TRANSPORT is file").status == FAIL
    config["DEVELOPMENT"] = True
    assert only(check(config, dns), "NEWSLETTER_MAIL_TRANSPORT is file").status == WARN
