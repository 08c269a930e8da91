"""``newsletter dkim generate`` and ``newsletter check``: set up sending, then see whether
it is set up.

Neither builds the app: both read the settings as every command checks them
(``load_settings`` then ``finish_config``), so they run while the app would refuse to start
over the very thing they make or diagnose — a DKIM key not generated yet, or a broken one.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from newsletter.config import ConfigError, finish_config, load_settings
from newsletter.mail.dkim_keys import (
    KEY_BITS,
    check_dns_name,
    generate_private_key,
    record_value,
    write_private_key,
    zone_line,
)
from newsletter.mail.dns_lookup import DnsResolver, Resolver
from newsletter.mail.setup_check import FAIL, OK, WARN, run_checks

#: Makes the resolver ``newsletter check`` asks (tests put a stub resolver here).
resolver_factory: Callable[[], Resolver] = DnsResolver


def _settings() -> dict[str, Any]:
    try:
        return finish_config(load_settings())
    except ConfigError as exc:
        click.echo(f"newsletter: {exc}", err=True)
        sys.exit(2)


def _dns_name(min_labels: int):
    def callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
        try:
            return check_dns_name(value, what=param.name or "name", min_labels=min_labels)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return callback


@click.group("dkim")
def dkim_group() -> None:
    """DKIM signing keys."""


@dkim_group.command("generate")
@click.option("--selector", required=True, callback=_dns_name(1),
              help="Selector (s=), e.g. mail or 2025a: the key is published at "
                   "<selector>._domainkey.<domain>.")
@click.option("--domain", required=True, callback=_dns_name(2),
              help="Signing domain (d=): the From domain, or a parent of it.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the private key (default: "
                   "instance/dkim/<selector>._domainkey.<domain>.pem).")
@click.option("--force", is_flag=True,
              help="Replace an existing key file (its published record stops matching).")
def dkim_generate(selector: str, domain: str, out: Path | None, force: bool) -> None:
    """Make a 2048-bit RSA key for DKIM; print its DNS record and the settings to set."""
    name = f"{selector}._domainkey.{domain}"
    if len(name) > 253:
        raise click.UsageError(f"{name} is too long for DNS (253 characters at most)")
    path = (out or Path(_settings()["INSTANCE_DIR"]) / "dkim" / f"{name}.pem").absolute()
    exists = click.ClickException(
        f"{path} exists already: pass --force to replace it (mail signed with the new key "
        "fails DKIM until its record replaces the published one; to rotate without a gap, "
        "use a new --selector)")
    replacing = path.exists()
    if replacing and not force:
        raise exists
    pem, key = generate_private_key(KEY_BITS)
    try:
        write_private_key(path, pem, replace=force)
    except FileExistsError:
        raise exists from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None

    click.echo(f"Wrote a {KEY_BITS}-bit RSA private key to {path} (readable by its owner "
               "only).")
    if replacing:
        click.echo("It replaces the key that was there: mail signed from now on fails DKIM "
                   "until the record below replaces the published one.")
    click.echo(f"\nPublish this TXT record in the DNS zone of {domain}:\n")
    click.echo(zone_line(selector, domain, record_value(key.public_key())))
    click.echo("\nThen set:\n")
    click.echo(f"NEWSLETTER_DKIM_SELECTOR={selector}")
    click.echo(f"NEWSLETTER_DKIM_DOMAIN={domain}")
    click.echo(f"NEWSLETTER_DKIM_PRIVATE_KEY_PATH={shlex.quote(str(path))}")
    click.echo("\nand run `newsletter check` once the record shows in DNS.")


@click.command("check")
def check_command() -> None:
    """Check the sending setup: DKIM, links, postal address, relays, bounce domain and DNS
    records. Prints ok, warn or FAIL for each, with the fix; exit status 1 if any fails."""
    checks = run_checks(_settings(), resolver=resolver_factory())
    for check in checks:
        click.echo(f"{check.status:<4}  {check.what}")
        if check.fix and check.status != OK:
            click.echo(f"      {check.fix}")
    failed = sum(check.status == FAIL for check in checks)
    warned = sum(check.status == WARN for check in checks)
    click.echo(f"\n{failed} failed, {warned} {'warning' if warned == 1 else 'warnings'}, "
               f"{len(checks) - failed - warned} ok")
    click.get_current_context().exit(1 if failed else 0)


COMMANDS = (dkim_group, check_command)
