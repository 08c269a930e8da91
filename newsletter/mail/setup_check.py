"""Is this instance set up to send to real people? The checks behind ``newsletter check``.

:func:`run_checks` takes the settings (a plain mapping, as ``finish_config`` or
``app.config`` holds them), a :class:`~newsletter.mail.dns_lookup.Resolver` and a relay
probe, and returns one :class:`Check` per finding, in the order an operator works through
them: DKIM signing and its alignment with From, the links' base URL, the postal address,
the relays, the bounce domain, then what DNS publishes (the DKIM record, SPF, DMARC). It
sends no mail and changes nothing. When DNS does not answer, the DNS checks say ``warn``:
they could not be made, which is not the same as failing.

DMARC's organisational domain is approximated without the Public Suffix List: the last two
labels of a name, or three under a two-letter country code whose second level is generic
(``co.uk``, ``com.au``). Under relaxed alignment the DKIM ``d=`` domain and the From
domain must share it (``d=`` is typically the From domain or a parent of it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.config import PLACEHOLDER_ADDRESS
from newsletter.mail.dkim import DkimError, check_private_key, read_private_key
from newsletter.mail.dkim_keys import (
    dkim_settings,
)
from newsletter.mail.dns_lookup import Resolver
from newsletter.mail.probe import ProbeResult, probe_relay
from newsletter.mail.relays import parse_relays
from newsletter.mail.transports import SmtpSettings, parse_smtp_url

__all__ = ["FAIL", "OK", "WARN", "Check", "aligned", "organisational_domain", "run_checks"]

OK, WARN, FAIL = "ok", "warn", "FAIL"
RECOMMENDED_KEY_BITS = 2048

Probe = Callable[[SmtpSettings], ProbeResult]


@dataclass(frozen=True)
class Check:
    """One finding: ``status`` is ``ok``, ``warn`` or ``FAIL``; ``fix`` says what to do
    about a warn or a FAIL."""

    status: str
    what: str
    fix: str | None = None


@dataclass(frozen=True)
class _Dkim:
    selector: str
    domain: str
    path: str
    public_key: rsa.RSAPublicKey | None  # None: the key could not be read


_NO_DNS = "run the check again from a machine whose DNS answers"
_GENERIC_SECOND_LEVEL = frozenset(
    {"ac", "co", "com", "edu", "gov", "ltd", "mil", "ne", "net", "nic", "or", "org", "plc"})
_RESERVED_TLDS = frozenset(
    {"example", "home", "internal", "invalid", "lan", "local", "localdomain", "localhost",
     "test"})
_RESERVED_DOMAINS = ("example.com", "example.net", "example.org", "home.arpa")


def organisational_domain(domain: str) -> str:
    """The registrable part of ``domain``, approximately (see the module's docstring)."""
    labels = domain.lower().rstrip(".").split(".")
    keep = 3 if (len(labels) >= 3 and len(labels[-1]) == 2
                 and labels[-2] in _GENERIC_SECOND_LEVEL) else 2
    return ".".join(labels[-keep:])


def aligned(dkim_domain: str, from_domain: str) -> bool:
    """DMARC relaxed alignment: both names have the same organisational domain."""
    return organisational_domain(dkim_domain) == organisational_domain(from_domain)


def _not_a_real_domain(domain: str) -> str | None:
    """Why ``domain`` cannot receive mail from the internet, or ``None``."""
    name = domain.strip().lower().rstrip(".")
    if not name:
        return "is not set"
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return "is an IP address, not a domain"
    if name == "localhost" or name.endswith(".localhost"):
        return "is this machine (localhost)"
    if "." not in name:
        return "is a single name, not a domain"
    if name.rsplit(".", 1)[1] in _RESERVED_TLDS or any(
            name == reserved or name.endswith("." + reserved) for reserved in _RESERVED_DOMAINS):
        return "is a reserved name that receives no mail from the internet"
    return None


def _is_local_host(host: str) -> bool:
    """Whether links to ``host`` would reach only this machine or its network."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return not host or host == "localhost" or host.endswith(".localhost") or "." not in host
    return address.is_loopback or address.is_private or address.is_unspecified


def _debug(config: Mapping[str, Any]) -> bool:
    # DEVELOPMENT is what NEWSLETTER_DEBUG asked for; Flask's CLI may reset DEBUG.
    return bool(config["DEVELOPMENT"] if "DEVELOPMENT" in config else config.get("DEBUG"))


def _from_domains(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(setting, domain) of each From address in use: list mail's and account mail's."""
    found = []
    for key in ("MAIL_FROM", "ACCOUNT_MAIL_FROM"):
        if config.get(key):
            domain = parseaddr(config[key])[1].rpartition("@")[2].lower()
            found.append((f"NEWSLETTER_{key}", domain))
    return found


# -- DKIM ---------------------------------------------------------------------------------

def _dkim_checks(config: Mapping[str, Any]) -> tuple[list[Check], _Dkim | None]:
    try:
        parts = dkim_settings(config)
    except DkimError as exc:
        return [Check(FAIL, str(exc), "set the missing ones (`newsletter dkim generate` "
                                      "prints all three), or unset all three")], None
    if parts is None:
        return [Check(FAIL, "DKIM signing is off (NEWSLETTER_DKIM_* unset): receivers "
                            "treat unsigned bulk mail as spam",
                      "run `newsletter dkim generate --selector mail --domain <your From "
                      "domain>`, publish the DNS record it prints and set the three settings "
                      "it names")], None
    selector, domain, path = parts
    try:
        key = check_private_key(read_private_key(path), f"the DKIM private key {path}")
    except DkimError as exc:
        return [Check(FAIL, f"DKIM key: {exc}",
                      "point NEWSLETTER_DKIM_PRIVATE_KEY_PATH at the PEM file of an "
                      "unencrypted RSA key, or make one with `newsletter dkim generate`")], \
            _Dkim(selector, domain, path, None)
    dkim = _Dkim(selector, domain, path, key.public_key())
    if key.key_size < RECOMMENDED_KEY_BITS:
        return [Check(WARN, f"DKIM signing on (d={domain}, s={selector}) with a "
                            f"{key.key_size}-bit key; {RECOMMENDED_KEY_BITS} recommended",
                      "make a 2048-bit key under a new selector (`newsletter dkim generate "
                      "--selector NEW …`), publish its record, then switch the settings")], dkim
    return [Check(OK, f"DKIM signing on (d={domain}, s={selector}, {key.key_size}-bit RSA "
                      "key)")], dkim


def _alignment_checks(config: Mapping[str, Any], dkim: _Dkim) -> list[Check]:
    checks = []
    for setting, from_domain in _from_domains(config):
        if not from_domain:
            checks.append(Check(FAIL, f"{setting} has no address",
                                f"set {setting} to `Name <address@your.domain>`"))
        elif aligned(dkim.domain, from_domain):
            checks.append(Check(OK, f"DKIM d={dkim.domain} is aligned with the From domain "
                                    f"{from_domain} ({setting}) for DMARC"))
        else:
            checks.append(Check(
                FAIL, f"DKIM d={dkim.domain} is not aligned with the From domain "
                      f"{from_domain} ({setting}): DMARC fails for this mail",
                f"sign as NEWSLETTER_DKIM_DOMAIN={organisational_domain(from_domain)} (the "
                f"From domain or a parent of it), or send from an address at {dkim.domain}"))
    return checks


# -- links, address, relays ---------------------------------------------------------------

def _base_url_checks(config: Mapping[str, Any]) -> list[Check]:
    url = str(config.get("BASE_URL") or "")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    problems = []
    if parts.scheme != "https":
        problems.append("is not https")
    if _is_local_host(host):
        problems.append("does not name a public host")
    if not problems:
        return [Check(OK, f"NEWSLETTER_BASE_URL is https ({url})")]
    fix = ("set NEWSLETTER_BASE_URL=https://<the site's public host>: every link in mail, "
           "the one-click unsubscribe (RFC 8058) included, is built on it")
    what = f"NEWSLETTER_BASE_URL {url or '(empty)'} {' and '.join(problems)}"
    if _debug(config):
        return [Check(WARN, what + " (fine in development, not in production)", fix)]
    return [Check(FAIL, what, fix)]


def _postal_address_checks(config: Mapping[str, Any]) -> list[Check]:
    address = str(config.get("POSTAL_ADDRESS") or "").strip()
    fix = ("set NEWSLETTER_POSTAL_ADDRESS to the publication's real postal address: every "
           "email must carry it (CAN-SPAM)")
    if not address:
        return [Check(FAIL, "NEWSLETTER_POSTAL_ADDRESS is empty", fix)]
    if address == PLACEHOLDER_ADDRESS:
        return [Check(FAIL, "NEWSLETTER_POSTAL_ADDRESS is the placeholder "
                            f"({PLACEHOLDER_ADDRESS})", fix)]
    return [Check(OK, f"postal address set ({address})")]


def _relay_checks(config: Mapping[str, Any], probe: Probe) -> list[Check]:
    transport = config.get("MAIL_TRANSPORT")
    if transport != "smtp":
        where = "written to the outbox folder" if transport == "file" else "printed"
        status = WARN if _debug(config) else FAIL
        return [Check(status, f"NEWSLETTER_MAIL_TRANSPORT is {transport}: messages are "
                              f"{where}, not sent",
                      "set NEWSLETTER_MAIL_TRANSPORT=smtp and NEWSLETTER_SMTP_URL="
                      "smtp://user:password@relay:587?starttls=true")]
    try:
        relays = parse_relays(dict(config))
    except ValueError as exc:
        return [Check(FAIL, f"NEWSLETTER_SMTP_URL: {exc}", "fix the relay URL")]
    checks: list[Check] = []
    for relay in relays:
        try:
            settings = parse_smtp_url(relay.config["SMTP_URL"])
        except ValueError as exc:
            checks.append(Check(FAIL, f"NEWSLETTER_SMTP_URL: {exc}", "fix the relay URL"))
            continue
        checks.extend(_one_relay(settings, probe(settings)))
    return checks


def _one_relay(s: SmtpSettings, result: ProbeResult) -> list[Check]:
    name = f"relay {s.host}:{s.port}"
    if not result.reached:
        return [Check(FAIL, f"{name}: {result.failure}",
                      "check the host and port in NEWSLETTER_SMTP_URL, that the relay runs, "
                      "and that this machine may connect to it (firewalls; many clouds "
                      "block port 25)")]
    checks = [Check(OK, f"{name} answers EHLO"
                        + (f" ({result.hostname})" if result.hostname else ""))]
    if s.implicit_tls:
        checks.append(Check(OK, f"{name}: TLS (smtps), certificate verified"))
    elif s.starttls:
        if result.failed_step == "starttls":
            fix = ("use a relay that offers STARTTLS, or smtps:// (port 465)"
                   if not result.starttls_offered else
                   f"the relay's certificate must be valid for {s.host} and trusted here "
                   "(the system's trust store, or SSL_CERT_FILE)")
            return [*checks, Check(FAIL, f"{name}: {result.failure}", fix)]
        checks.append(Check(OK, f"{name}: STARTTLS, certificate verified"))
    elif result.starttls_offered:
        checks.append(Check(WARN, f"{name} offers STARTTLS but NEWSLETTER_SMTP_URL does not "
                                  "use it: mail crosses the network in clear",
                            "add starttls=true to the relay's URL (…:587?starttls=true)"))
    else:
        what = "mail and the password cross" if s.username else "mail crosses"
        checks.append(Check(WARN, f"{name} offers no TLS: {what} the network in clear",
                            "use smtps:// or a relay that offers STARTTLS (a relay on this "
                            "machine, over loopback, needs none)"))
    if s.username:
        if result.failed_step == "auth":
            checks.append(Check(FAIL, f"{name}: {result.failure}",
                                "check the user and password in NEWSLETTER_SMTP_URL "
                                "(percent-encode : / @ in them)"))
        elif result.logged_in:
            checks.append(Check(OK, f"{name} accepts the login of {s.username}"))
    return checks


def run_checks(config: Mapping[str, Any], *, resolver: Resolver,
               probe: Probe = probe_relay) -> list[Check]:
    """Every check, in order; see the module's docstring. ``probe`` is called once per
    relay when ``MAIL_TRANSPORT`` is ``smtp``; ``resolver`` answers the DNS questions."""
    checks, dkim = _dkim_checks(config)
    if dkim is not None:
        checks += _alignment_checks(config, dkim)
    checks += _base_url_checks(config)
    checks += _postal_address_checks(config)
    checks += _relay_checks(config, probe)
    from newsletter.mail import dns_checks  # it builds on this module's helpers

    checks += dns_checks.bounce_checks(config, resolver)
    if dkim is not None and dkim.public_key is not None:
        checks += dns_checks.dkim_record_checks(dkim, resolver)
    checks += dns_checks.dmarc_checks(config, resolver)
    return checks
