"""``newsletter admin …``: admin accounts from the command line (the first owner, and the
demo owner of ``make run``)."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from newsletter.accounts.roles import ROLES


@click.group("admin")
def admin_group() -> None:
    """Admin accounts: create, list, unlock."""


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


@admin_group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@with_appcontext
def admin_create(email: str, role: str) -> None:
    """Add an admin. The password is asked for (typed twice), or read as one line from
    standard input; weak passwords are refused."""
    from newsletter.accounts import admins, audit
    from newsletter.cli.actors import command_actor

    try:
        admin = admins.create_admin(email, _read_password(), role)
    except admins.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    audit.record(command_actor(), "added admin", admin.email,
                 {"role": role})
    click.echo(f"Admin {admin.email} created ({role}); sign in at /admin/login.")


@admin_group.command("list")
@with_appcontext
def admin_list() -> None:
    """Every admin with their role and state."""
    from newsletter.accounts import admins
    from newsletter.db import utcnow

    now = utcnow()
    for admin in admins.list_admins():
        state = ("disabled" if admin.disabled_at else
                 "locked" if admins.is_locked(admin.email, now) else "active")
        click.echo(f"{admin.email:<40} {admin.role:<7} {state:<8} "
                   f"{'2FA' if admin.totp_secret else ''}")


@admin_group.command("unlock")
@click.argument("email")
@with_appcontext
def admin_unlock(email: str) -> None:
    """Lift every lockout of an address (from every IP) after too many wrong passwords."""
    from newsletter.accounts import admins, audit
    from newsletter.cli.actors import command_actor
    from newsletter.db import db

    admin = admins.find_admin(email)
    if admin is None:
        raise click.ClickException(f"no admin {email!r}")
    admins.clear_failures(admin.email)
    audit.record(command_actor(), "unlocked admin", admin.email,
                 commit=False)
    db.session.commit()
    click.echo(f"{admin.email} can sign in again.")


@admin_group.command("demo")
@click.option("--email", default="owner@example.com", show_default=True)
@with_appcontext
def admin_demo(email: str) -> None:
    """Development only (``make run``): make sure a demo owner exists and print how to sign
    in. A new password is set at every run, so it is never one that was printed before."""
    from flask import current_app

    from newsletter.accounts import admins
    from newsletter.db import db

    if not current_app.config.get("DEVELOPMENT"):
        raise click.ClickException("the demo owner exists only in development "
                                   "(NEWSLETTER_DEBUG=1)")
    password = admins.new_demo_password()
    admin = admins.find_admin(email)
    if admin is None:
        admin = admins.create_admin(email, password, "owner")
    else:
        admins.set_password(admin, password)
        admins.clear_failures(admin.email)
        admin.disabled_at = None
        db.session.commit()
    from newsletter.cli.actors import record

    record("set the demo owner's password", admin.email)
    base = current_app.config["BASE_URL"].rstrip("/")
    click.echo(f"Admin: sign in at {base}/admin/ as {admin.email} with password {password}")


COMMANDS = (admin_group,)
