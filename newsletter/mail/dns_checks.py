"""The checks of ``newsletter check`` that ask DNS: the bounce domain's MX and SPF, the
published DKIM key, DMARC. A resolver that does not answer makes each a ``warn`` (it could
not be checked), never a pass or a failure. Run by :func:`setup_check.run_checks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from newsletter.mail.dkim_keys import record_matches, record_tags, record_value, zone_line
from newsletter.mail.dns_lookup import Resolver
from newsletter.mail.setup_check import (
    _NO_DNS,
    FAIL,
    OK,
    WARN,
    Check,
    _Dkim,
    _from_domains,
    _not_a_real_domain,
    aligned,
    organisational_domain,
)


def bounce_checks(config: Mapping[str, Any], resolver: Resolver) -> list[Check]:
    domain = str(config.get("BOUNCE_DOMAIN") or "").lower()
    problem = _not_a_real_domain(domain)
    if problem:
        return [Check(FAIL, f"bounce domain {domain or '(none)'} {problem}",
                      "set NEWSLETTER_BOUNCE_DOMAIN to a domain of yours whose MX receives "
                      "the bounces (return path bounces+<token>@domain)")]
    checks = []
    for setting, from_domain in _from_domains(config)[:1]:
        if from_domain and not aligned(domain, from_domain):
            checks.append(Check(
                WARN, f"return-path domain {domain} is not aligned with the From domain "
                      f"{from_domain} ({setting}): SPF cannot pass DMARC (DKIM still can)",
                f"set NEWSLETTER_BOUNCE_DOMAIN to {from_domain} or a subdomain of it "
                f"(bounces.{from_domain})"))
    hosts = resolver.mx(domain)
    if hosts is None:
        checks.append(Check(WARN, f"MX of the bounce domain {domain}: DNS did not answer",
                            _NO_DNS))
    elif not hosts or hosts == ["."]:
        what = "a null MX (it accepts no mail)" if hosts else "no MX record"
        checks.append(Check(FAIL, f"bounce domain {domain} has {what}: bounces are lost",
                            f"publish an MX record for {domain} pointing at the server that "
                            "receives bounces (it hands them to `newsletter bounces process` "
                            "or NEWSLETTER_BOUNCE_MAILDIR)"))
    else:
        checks.append(Check(OK, f"bounce domain {domain} has MX {', '.join(sorted(hosts))}"))
    checks.extend(spf_checks(domain, resolver))
    return checks


def spf_checks(domain: str, resolver: Resolver) -> list[Check]:
    records = resolver.txt(domain)
    if records is None:
        return [Check(WARN, f"SPF record at {domain}: DNS did not answer", _NO_DNS)]
    spf = [r for r in records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    if not spf:
        return [Check(FAIL, f"no SPF record (v=spf1) at the return-path domain {domain}",
                      f'publish a TXT record at {domain}: "v=spf1 include:<your relay\'s SPF '
                      'domain> -all" (the relay\'s documentation names it)')]
    if len(spf) > 1:
        return [Check(FAIL, f"{len(spf)} SPF records at {domain}: receivers take that as an "
                            "error (RFC 7208) and SPF fails",
                      "merge them into one v=spf1 record")]
    return [Check(OK, f"SPF record at {domain} ({spf[0]})")]


def dkim_record_checks(dkim: _Dkim, resolver: Resolver) -> list[Check]:
    assert dkim.public_key is not None
    name = f"{dkim.selector}._domainkey.{dkim.domain}"
    publish = "publish this record: " + zone_line(dkim.selector, dkim.domain,
                                                  record_value(dkim.public_key))
    records = resolver.txt(name)
    if records is None:
        return [Check(WARN, f"DKIM record at {name}: DNS did not answer", _NO_DNS)]
    keys = [r for r in records if "p" in record_tags(r)]
    if not keys:
        return [Check(FAIL, f"no DKIM record at {name}: receivers cannot verify the "
                            "signature", publish)]
    if any(record_matches(r, dkim.public_key) for r in keys):
        return [Check(OK, f"DKIM record at {name} matches the key")]
    return [Check(FAIL, f"the DKIM record at {name} does not match the key in {dkim.path}",
                  "point NEWSLETTER_DKIM_PRIVATE_KEY_PATH at the published key, or "
                  + publish)]


def dmarc_checks(config: Mapping[str, Any], resolver: Resolver) -> list[Check]:
    checks = []
    seen = set()
    for setting, from_domain in _from_domains(config):
        if not from_domain or from_domain in seen:
            continue
        seen.add(from_domain)
        problem = _not_a_real_domain(from_domain)
        if problem:
            checks.append(Check(FAIL, f"From domain {from_domain} ({setting}) {problem}",
                                f"set {setting} to an address at your own domain"))
            continue
        org = organisational_domain(from_domain)
        found = None
        # RFC 7489 §6.6.3: the From domain's own record first, then its organisational one.
        for name in dict.fromkeys([f"_dmarc.{from_domain}", f"_dmarc.{org}"]):
            records = resolver.txt(name)
            if records is None:
                found = False
                break
            dmarc = [r for r in records if record_tags(r).get("v", "").upper() == "DMARC1"]
            if dmarc:
                found = (name, record_tags(dmarc[0]).get("p", "?"))
                break
        if found is False:
            checks.append(Check(WARN, f"DMARC record at _dmarc.{org}: DNS did not answer",
                                _NO_DNS))
        elif found is None:
            checks.append(Check(
                FAIL, f"no DMARC record at _dmarc.{org}: Gmail and Yahoo require one of bulk "
                      "senders",
                f'publish a TXT record at _dmarc.{org}: "v=DMARC1; p=none; '
                f'rua=mailto:dmarc-reports@{org}" (p=none only reports; move to quarantine '
                "once the reports look clean)"))
        else:
            checks.append(Check(OK, f"DMARC record at {found[0]} (p={found[1]})"))
    # Two From domains of one organisation share its record: say so once.
    return list(dict.fromkeys(checks))


