"""The ``newsletter`` command: thin wrappers that parse arguments and call services."""

from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup, with_appcontext

from newsletter.config import ConfigError


def _create_app():
    from newsletter import create_app

    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"newsletter: {exc}", err=True)
        sys.exit(2)


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main() -> None:
    """Newsletter: publish AI-news syntheses and send them to readers."""


@click.group()
def commands() -> None:
    """The project's commands; ``register_commands`` adds them to ``app.cli``."""


def register_commands(app) -> None:
    for command in commands.commands.values():
        app.cli.add_command(command)


@commands.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@with_appcontext
def serve(host: str, port: int) -> None:
    """Serve the site (threaded, no reloader: one process, so later the sender runs in it)."""
    from flask import current_app
    from werkzeug.serving import run_simple

    app = current_app._get_current_object()
    click.echo(f"Serving {app.config['PUBLICATION_NAME']} on http://{host}:{port}/ "
               f"(mail transport: {app.config['MAIL_TRANSPORT']})")
    run_simple(host, port, app, threaded=True, use_reloader=False,
               use_debugger=bool(app.config.get("DEBUG")))


@commands.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when syntheses exist already.")
@with_appcontext
def seed_demo_command(if_empty: bool) -> None:
    """Load the demo topics and syntheses."""
    from newsletter.content.demo import database_is_empty, seed_demo

    if if_empty and not database_is_empty():
        click.echo("Content exists already; demo content not loaded.")
        return
    counts = seed_demo()
    click.echo(f"Demo content: {counts['topics']} topics added, {counts['created']} syntheses "
               f"created, {counts['updated']} updated, {counts['unchanged']} unchanged.")


@commands.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@with_appcontext
def import_command(file) -> None:
    """Import syntheses from FILE (a JSON array or JSON Lines; '-' reads standard input).

    Exits 1 when any record was rejected; the others are imported all the same.
    """
    from newsletter.content.importer import import_text

    try:
        text = file.read()
    except UnicodeDecodeError:
        raise click.ClickException(f"{file.name} is not UTF-8 text") from None
    report = import_text(text)
    for rejection in report.rejected:
        click.echo(f"line {rejection.line}: rejected: {rejection.reason}", err=True)
    click.echo(f"{report.created} created, {report.updated} updated, "
               f"{report.unchanged} unchanged, {len(report.rejected)} rejected")
    if report.rejected:
        sys.exit(1)


@commands.group("api-token")
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


@commands.group("mail")
def mail_group() -> None:
    """Check the mail path."""


@mail_group.command("send-test")
@click.option("--to", "to", required=True, help="Address to send the test message to.")
@click.option("--synthesis", "slug", default=None,
              help="Slug of the synthesis to send (default: the latest published).")
@with_appcontext
def mail_send_test(to: str, slug: str | None) -> None:
    """Send one synthesis as an email through the configured transport."""
    from newsletter.editions.preview import PreviewError, send_test_email
    from newsletter.extensions import mail_setup, reader_services

    try:
        synthesis, address, result = send_test_email(to, slug, mail_setup(), reader_services())
    except PreviewError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Sent {synthesis.title!r} to {address}: {result.code} {result.reply}")

if __name__ == "__main__":  # python -m newsletter.cli
    main()
