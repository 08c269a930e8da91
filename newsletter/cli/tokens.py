"""``newsletter api-token``: create, list and revoke API tokens, each with its scopes."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from newsletter.accounts.scopes import ALL, DEFAULT


def _scope_help() -> str:
    return "\n".join(f"  {scope.value:<16} {scope.description}" for scope in ALL)


@click.group("api-token")
def api_token() -> None:
    """Create, list and revoke API tokens."""


@api_token.command("create", epilog="Scopes:\n\n\b\n" + _scope_help())
@click.argument("name")
@click.option("--scope", "scope_names", multiple=True, metavar="SCOPE",
              help="What the token may do (repeatable). Without it: "
                   f"{', '.join(sorted(DEFAULT))} only.")
@with_appcontext
def api_token_create(name: str, scope_names: tuple[str, ...]) -> None:
    """Create a token called NAME and print its secret (shown once). It may do only what
    its scopes say: ingest syntheses unless --scope says otherwise."""
    from newsletter.accounts import scopes
    from newsletter.accounts.service import TokenError, create_token
    from newsletter.cli.actors import command_actor

    try:
        granted = scopes.parse(scope_names) if scope_names else scopes.DEFAULT
        token = create_token(name, granted, actor=command_actor())
    except (TokenError, scopes.UnknownScope) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token.secret)
    click.echo(f"Token {name!r} created with scopes {' '.join(token.scopes)}. Store the "
               "secret now: it is not shown again.", err=True)


@api_token.command("list")
@with_appcontext
def api_token_list() -> None:
    """List tokens: name, prefix, state, scopes, last use (never the secret)."""
    from newsletter.accounts.scopes import ordered
    from newsletter.accounts.service import list_tokens

    for token in list_tokens():
        state = "revoked" if token.revoked_at else "active"
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        click.echo(f"{token.name}\t{token.prefix}…\t{state}\t"
                   f"{' '.join(ordered(token.scopes)) or '(no scope)'}\tlast used {used}")


@api_token.command("revoke")
@click.argument("name")
@with_appcontext
def api_token_revoke(name: str) -> None:
    """Revoke the token called NAME."""
    from newsletter.accounts.service import TokenError, revoke_token
    from newsletter.cli.actors import command_actor

    try:
        revoked = revoke_token(name, actor=command_actor())
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Token {name!r} revoked." if revoked else f"Token {name!r} was revoked already.")


COMMANDS = (api_token,)
