"""``newsletter api-token``: create, list and revoke API tokens."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group("api-token")
def api_token() -> None:
    """Create, list and revoke API tokens."""


@api_token.command("create")
@click.argument("name")
@with_appcontext
def api_token_create(name: str) -> None:
    """Create a token called NAME and print its secret (shown once)."""
    from newsletter.accounts.service import TokenError, create_token

    try:
        token = create_token(name)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token.secret)
    click.echo(f"Token {name!r} created. Store the secret now: it is not shown again.",
               err=True)


@api_token.command("list")
@with_appcontext
def api_token_list() -> None:
    """List tokens (names and prefixes only)."""
    from newsletter.accounts.service import list_tokens

    for token in list_tokens():
        state = "revoked" if token.revoked_at else "active"
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        click.echo(f"{token.name}\t{token.prefix}…\t{state}\tlast used {used}")


@api_token.command("revoke")
@click.argument("name")
@with_appcontext
def api_token_revoke(name: str) -> None:
    """Revoke the token called NAME."""
    from newsletter.accounts.service import TokenError, revoke_token

    try:
        revoke_token(name)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Token {name!r} revoked.")


COMMANDS = (api_token,)
