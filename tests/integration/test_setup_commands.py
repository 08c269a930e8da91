"""`newsletter dkim generate` and `newsletter check` as an operator runs them, against a
real SMTP server and a real DNS server on loopback; and the DKIM key refused at start."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import dkim
import dns.message
import dns.rcode
import dns.rrset
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter import create_app
from newsletter.cli import main
from newsletter.cli import setup as setup_cli
from newsletter.config import ConfigError
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.dkim_keys import record_value
from newsletter.mail.dns_lookup import DnsResolver
from newsletter.mail.fastdkim import FastDkimSigner
from tests.conftest import TEST_SECRET, make_config
from tests.support.smtp import SMTPTestServer, _self_signed_certificate, free_port

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "modelwire.news"
PASSWORD = "p@ss:w/rd"


@dataclass
class StubResolver:
    """DNS as a dict of (type, name) -> records; ``None`` for every name when silent."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    silent: bool = False

    def txt(self, name):
        return None if self.silent else self.records.get(("TXT", name), [])

    def mx(self, name):
        return None if self.silent else self.records.get(("MX", name), [])


@pytest.fixture
def clean_env(monkeypatch):
    """No NEWSLETTER_* variable of the machine running the tests leaks in, and the flag
    Flask's command group sets in os.environ is taken back afterwards."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("FLASK_RUN_FROM_CLI", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)


def newsletter(*args: str, env: dict[str, str | None] | None = None):
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def message() -> bytes:
    return (b"From: Modelwire <newsletter@news.example>\r\nTo: reader@example.com\r\n"
            b"Subject: Today in AI\r\nDate: Mon, 07 Dec 2026 08:00:00 +0000\r\n"
            b"Message-ID: <1@news.example>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n")


def printed_record(output: str, name: str) -> bytes:
    line = next(line for line in output.splitlines() if " IN TXT " in line)
    assert line.startswith(f'{name}. IN TXT "v=DKIM1; k=rsa; p=')
    strings = re.findall(r'"([^"]*)"', line)
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings)
    assert line == f"{name}. IN TXT " + " ".join(f'"{s}"' for s in strings)
    return "".join(strings).encode()


# -- dkim generate ------------------------------------------------------------------------

def test_generate_writes_an_owner_only_key_whose_mail_verifies_with_the_printed_record(
        clean_env, tmp_path):
    instance = tmp_path / "instance"
    old_umask = os.umask(0)  # the mode must come from the creation, not from the umask
    try:
        result = newsletter("dkim", "generate", "--selector", "mail", "--domain",
                            "News.Example", env={"NEWSLETTER_DEBUG": "1",
                                                 "NEWSLETTER_INSTANCE_DIR": str(instance)})
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    path = instance / "dkim" / "mail._domainkey.news.example.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left"
    out = result.stdout
    assert f"NEWSLETTER_DKIM_SELECTOR=mail\nNEWSLETTER_DKIM_DOMAIN=news.example\n" \
           f"NEWSLETTER_DKIM_PRIVATE_KEY_PATH={path}\n" in out
    record = printed_record(out, "mail._domainkey.news.example")

    def dnsfunc(name, timeout=5):
        return record if name == b"mail._domainkey.news.example." else None

    for signer in (DkimSigner.from_files("mail", "news.example", path),
                   FastDkimSigner.from_files("mail", "news.example", path)):
        assert dkim.verify(signer.sign(message()), dnsfunc=dnsfunc), type(signer).__name__


def test_generate_refuses_to_overwrite_unless_forced(clean_env, tmp_path):
    path = tmp_path / "keys" / "mail.pem"
    args = ("dkim", "generate", "--selector", "mail", "--domain", "news.example",
            "--out", str(path))
    assert newsletter(*args).exit_code == 0
    first = path.read_bytes()

    again = newsletter(*args)
    assert again.exit_code == 1
    assert f"{path} exists already: pass --force" in again.output
    assert path.read_bytes() == first

    forced = newsletter(*args, "--force")
    assert forced.exit_code == 0, forced.output
    assert path.read_bytes() != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "It replaces the key that was there" in forced.stdout


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--selector", "ma il", "is not a DNS name"),
    ("--selector", "-mail", "is not a DNS name"),
    ("--selector", "mäil", "punycode"),
    ("--domain", "localhost", "at least 2 dot-separated parts"),
    ("--domain", "news..example", "is not a DNS name"),
    ("--domain", "10.0.0.1", "is an IP address"),
])
def test_generate_refuses_a_bad_selector_or_domain(clean_env, tmp_path, option, value, words):
    names = {"--selector": "mail", "--domain": "news.example", option: value}
    result = newsletter("dkim", "generate", "--selector", names["--selector"], "--domain",
                        names["--domain"], "--out", str(tmp_path / "k.pem"))
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output and words in result.output
    assert not (tmp_path / "k.pem").exists()


def test_generate_runs_while_the_app_refuses_the_key_it_is_about_to_make(
        clean_env, tmp_path, database_url):
    path = tmp_path / "dkim" / "mail.pem"
    dkim_settings = {"DKIM_SELECTOR": "mail", "DKIM_DOMAIN": "news.example",
                     "DKIM_PRIVATE_KEY_PATH": str(path)}
    with pytest.raises(ConfigError):
        create_app(make_config(tmp_path, database_url, **dkim_settings))
    result = newsletter("dkim", "generate", "--selector", "mail", "--domain", "news.example",
                        "--out", str(path),
                        env={f"NEWSLETTER_{k}": v for k, v in dkim_settings.items()})
    assert result.exit_code == 0, result.output
    assert create_app(make_config(tmp_path, database_url, **dkim_settings))


# -- check --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rsa_key_file(dkim_key_file):
    return dkim_key_file


@pytest.fixture
def dns_records(rsa_key_file):
    return StubResolver({
        ("TXT", f"mail._domainkey.{DOMAIN}"): [record_value(rsa_key_file[1].public_key())],
        ("TXT", f"bounces.{DOMAIN}"): ["v=spf1 ip4:127.0.0.1 -all"],
        ("MX", f"bounces.{DOMAIN}"): [f"mx.{DOMAIN}"],
        ("TXT", f"_dmarc.{DOMAIN}"): ["v=DMARC1; p=none"],
    })


@pytest.fixture
def settings(clean_env, tmp_path, rsa_key_file, dns_records, monkeypatch):
    """The environment of a production setup, but for the relay's URL."""
    monkeypatch.setattr(setup_cli, "resolver_factory", lambda: dns_records)
    return {
        "NEWSLETTER_SECRET_KEY": TEST_SECRET,
        "NEWSLETTER_INSTANCE_DIR": str(tmp_path / "instance"),
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
        "NEWSLETTER_BASE_URL": f"https://{DOMAIN}",
        "NEWSLETTER_POSTAL_ADDRESS": "Modelwire, 12 rue de la Paix, 75002 Paris, France",
        "NEWSLETTER_MAIL_FROM": f"Modelwire <newsletter@{DOMAIN}>",
        "NEWSLETTER_BOUNCE_DOMAIN": f"bounces.{DOMAIN}",
        "NEWSLETTER_MAIL_TRANSPORT": "smtp",
        "NEWSLETTER_DKIM_SELECTOR": "mail",
        "NEWSLETTER_DKIM_DOMAIN": DOMAIN,
        "NEWSLETTER_DKIM_PRIVATE_KEY_PATH": str(rsa_key_file[0]),
    }


@pytest.fixture
def trust_test_certificate(tmp_path, monkeypatch):
    """Make the test server's self-signed certificate trusted, as the system's would be."""
    cert = tmp_path / "ca.pem"
    cert.write_bytes(_self_signed_certificate().cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))


def lines(result, status: str) -> list[str]:
    return [line[6:] for line in result.stdout.splitlines() if line.startswith(status + " ")]


def test_check_of_a_good_setup_says_ok_to_everything_and_exits_0(
        settings, smtp_tls_server, trust_test_certificate):
    settings["NEWSLETTER_SMTP_URL"] = smtp_tls_server.url + "&weight=2&rate=50"
    result = newsletter("check", env=settings)
    assert result.exit_code == 0, result.output
    relay = f"relay 127.0.0.1:{smtp_tls_server.port}"
    assert result.stdout.splitlines() == [
        "ok    DKIM signing on (d=modelwire.news, s=mail, 2048-bit RSA key)",
        "ok    DKIM d=modelwire.news is aligned with the From domain modelwire.news "
        "(NEWSLETTER_MAIL_FROM) for DMARC",
        "ok    NEWSLETTER_BASE_URL is https (https://modelwire.news)",
        "ok    postal address set (Modelwire, 12 rue de la Paix, 75002 Paris, France)",
        f"ok    {relay} answers EHLO (localhost)",
        f"ok    {relay}: STARTTLS, certificate verified",
        f"ok    {relay} accepts the login of mailer",
        "ok    bounce domain bounces.modelwire.news has MX mx.modelwire.news",
        "ok    SPF record at bounces.modelwire.news (v=spf1 ip4:127.0.0.1 -all)",
        "ok    DKIM record at mail._domainkey.modelwire.news matches the key",
        "ok    DMARC record at _dmarc.modelwire.news (p=none)",
        "",
        "0 failed, 0 warnings, 11 ok",
    ]
    assert smtp_tls_server.messages == [], "nothing is sent"


def test_check_of_a_relay_without_tls_warns(settings, smtp_server):
    settings["NEWSLETTER_SMTP_URL"] = smtp_server.url
    result = newsletter("check", env=settings)
    assert result.exit_code == 0, result.output
    assert lines(result, "warn") == [
        f"relay 127.0.0.1:{smtp_server.port} offers no TLS: mail crosses the network in clear"]
    assert "      use smtps:// or a relay that offers STARTTLS" in result.stdout


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_check_logs_in_to_a_relay_with_auth_and_no_tls(settings):
    with SMTPTestServer(auth=("mailer", PASSWORD)) as server:
        settings["NEWSLETTER_SMTP_URL"] = server.url
        result = newsletter("check", env=settings)
    assert result.exit_code == 0, result.output
    assert f"relay 127.0.0.1:{server.port} accepts the login of mailer" in lines(result, "ok")
    assert lines(result, "warn") == [f"relay 127.0.0.1:{server.port} offers no TLS: mail and "
                                     "the password cross the network in clear"]
    assert PASSWORD not in result.output


def test_check_with_a_wrong_password_fails_without_printing_it(
        settings, smtp_tls_server, trust_test_certificate):
    settings["NEWSLETTER_SMTP_URL"] = smtp_tls_server.url.replace("p%40ss", "wrong-pw")
    result = newsletter("check", env=settings)
    assert result.exit_code == 1
    assert lines(result, "FAIL") == [
        f"relay 127.0.0.1:{smtp_tls_server.port}: the relay refused the login of mailer: "
        "535 5.7.8 Authentication credentials invalid"]
    assert "wrong-pw" not in result.output and "w/rd" not in result.output


def test_check_fails_on_a_certificate_this_machine_does_not_trust(settings, smtp_tls_server):
    settings["NEWSLETTER_SMTP_URL"] = smtp_tls_server.url
    result = newsletter("check", env=settings)
    assert result.exit_code == 1
    assert lines(result, "FAIL") == [
        f"relay 127.0.0.1:{smtp_tls_server.port}: STARTTLS failed: the relay's certificate "
        "was not accepted: self-signed certificate"]


def test_check_warns_when_the_url_does_not_use_the_starttls_offered(settings, smtp_tls_server):
    settings["NEWSLETTER_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_tls_server.port}"
    result = newsletter("check", env=settings)
    assert result.exit_code == 0, result.output
    assert lines(result, "warn") == [
        f"relay 127.0.0.1:{smtp_tls_server.port} offers STARTTLS but NEWSLETTER_SMTP_URL "
        "does not use it: mail crosses the network in clear"]


def test_check_of_a_closed_port_fails_and_exits_1(settings, smtp_server):
    closed = free_port()
    settings["NEWSLETTER_SMTP_URL"] = f"{smtp_server.url},smtp://127.0.0.1:{closed}?weight=0"
    result = newsletter("check", env=settings)
    assert result.exit_code == 1
    assert lines(result, "FAIL") == [
        f"relay 127.0.0.1:{closed}: cannot connect: [Errno 111] Connection refused"]
    assert result.stdout.endswith("\n\n1 failed, 1 warning, 9 ok\n")


def test_check_reports_a_broken_key_the_app_refuses(settings, smtp_server, tmp_path):
    settings["NEWSLETTER_SMTP_URL"] = smtp_server.url
    settings["NEWSLETTER_DKIM_PRIVATE_KEY_PATH"] = str(tmp_path)
    result = newsletter("check", env=settings)
    assert result.exit_code == 1
    assert lines(result, "FAIL") == [
        f"DKIM key: cannot read the DKIM private key {tmp_path}: Is a directory"]


def test_check_when_dns_is_silent_warns_and_exits_0(settings, smtp_tls_server,
                                                     trust_test_certificate, dns_records):
    dns_records.silent = True
    settings["NEWSLETTER_SMTP_URL"] = smtp_tls_server.url
    result = newsletter("check", env=settings)
    assert result.exit_code == 0, result.output
    assert [line.split(":")[-1] for line in lines(result, "warn")] == [
        " DNS did not answer"] * 4


# -- the real resolver, against a DNS server on loopback -----------------------------------

class LoopbackDns:
    """A UDP DNS server on 127.0.0.1 answering from ``zone`` ((name, type) -> rdata
    texts); other names get NXDOMAIN, and ``deny_root`` makes the root zone NXDOMAIN too,
    as some offline sandboxes do for every name."""

    def __init__(self, zone: dict[tuple[str, str], list[str]], *, deny_root=False) -> None:
        self.zone = {(".", "NS"): ["a.root-servers.net."], **zone}
        if deny_root:
            del self.zone[(".", "NS")]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, client = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            question = query.question[0]
            answer = dns.message.make_response(query)
            rdtype = dns.rdatatype.to_text(question.rdtype)
            rdata = self.zone.get((question.name.to_text(), rdtype))
            if rdata:
                answer.answer.append(dns.rrset.from_text_list(question.name, 300, "IN",
                                                              rdtype, rdata))
            else:
                answer.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(answer.to_wire(), client)

    def close(self) -> None:
        self.sock.close()


def test_the_dns_resolver_reads_txt_and_mx_and_knows_silence():
    server = LoopbackDns({
        ("mail._domainkey.modelwire.news.", "TXT"): ['"v=DKIM1; k=rsa; " "p=MIIB"'],
        ("bounces.modelwire.news.", "MX"): ["10 mx.modelwire.news.", "20 mx2.modelwire.news."],
        ("null.modelwire.news.", "MX"): ["0 ."],
    })
    try:
        resolver = DnsResolver(timeout=2, nameservers=["127.0.0.1"], port=server.port)
        assert resolver.txt("mail._domainkey.modelwire.news") == ["v=DKIM1; k=rsa; p=MIIB"]
        assert sorted(resolver.mx("bounces.modelwire.news")) == ["mx.modelwire.news",
                                                                  "mx2.modelwire.news"]
        assert resolver.mx("null.modelwire.news") == ["."]
        assert resolver.txt("_dmarc.modelwire.news") == [], "no such name: answered, none"
    finally:
        server.close()

    denying = LoopbackDns({("bounces.modelwire.news.", "MX"): ["10 mx.modelwire.news."]},
                          deny_root=True)
    try:
        resolver = DnsResolver(timeout=2, nameservers=["127.0.0.1"], port=denying.port)
        assert resolver.mx("bounces.modelwire.news") is None
    finally:
        denying.close()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
        mute.bind(("127.0.0.1", 0))
        resolver = DnsResolver(timeout=0.3, nameservers=["127.0.0.1"],
                               port=mute.getsockname()[1])
        assert resolver.txt("modelwire.news") is None
        assert resolver.mx("modelwire.news") is None


# -- a broken DKIM key refuses to start ----------------------------------------------------

def _ec_key(path: Path) -> Path:
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return path


@pytest.mark.parametrize(("make_key", "reason"), [
    (lambda d: d / "missing.pem", "No such file or directory"),
    (lambda d: d, "Is a directory"),
    (lambda d: (d / "notes.txt").write_text("ssh-rsa AAAA... not a key") and d / "notes.txt",
     "is not a PEM RSA private key (PKCS#1 or PKCS#8): no PEM block"),
    (lambda d: _ec_key(d / "ec.pem"), "is not an RSA key: it is an EC key"),
])
def test_a_broken_dkim_key_refuses_create_app_in_one_line(tmp_path, database_url, make_key,
                                                         reason):
    folder = tmp_path / "keys"
    folder.mkdir()
    path = make_key(folder)
    with pytest.raises(ConfigError) as refused:
        create_app(make_config(tmp_path, database_url, DKIM_SELECTOR="mail",
                               DKIM_DOMAIN="news.example", DKIM_PRIVATE_KEY_PATH=str(path)))
    text = str(refused.value)
    assert "\n" not in text
    assert text.startswith("NEWSLETTER_DKIM_PRIVATE_KEY_PATH: ") and reason in text
    assert str(path) in text


def test_only_some_dkim_settings_refuse_create_app(tmp_path, database_url, rsa_key_file):
    with pytest.raises(ConfigError, match=r"^DKIM needs all three: .*\(missing: "
                                          r"NEWSLETTER_DKIM_SELECTOR\)"):
        create_app(make_config(tmp_path, database_url, DKIM_DOMAIN="news.example",
                               DKIM_PRIVATE_KEY_PATH=str(rsa_key_file[0])))


def test_the_command_line_says_why_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_DEBUG="1", NEWSLETTER_INSTANCE_DIR=str(tmp_path / "instance"),
               NEWSLETTER_DKIM_SELECTOR="mail", NEWSLETTER_DKIM_DOMAIN="news.example",
               NEWSLETTER_DKIM_PRIVATE_KEY_PATH=str(tmp_path / "missing.pem"))
    result = subprocess.run([sys.executable, "-m", "newsletter.cli", "api-token", "list"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == (f"newsletter: NEWSLETTER_DKIM_PRIVATE_KEY_PATH: cannot read the "
                             f"DKIM private key {tmp_path / 'missing.pem'}: No such file or "
                             "directory\n")
