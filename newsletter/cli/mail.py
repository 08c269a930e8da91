"""``newsletter mail send-test``: the operator's check of the mail path."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group("mail")
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
    from newsletter.wiring import mail_setup, reader_services

    try:
        synthesis, address, result = send_test_email(to, slug, mail_setup(), reader_services())
    except PreviewError as exc:
        raise click.ClickException(str(exc)) from None
    from newsletter.cli.actors import record

    # As the admin area's test send: the synthesis, and the address (an operator's own).
    record("sent a test", f"synthesis {synthesis.id}", to=address)
    click.echo(f"Sent {synthesis.title!r} to {address}: {result.code} {result.reply}")


COMMANDS = (mail_group,)
