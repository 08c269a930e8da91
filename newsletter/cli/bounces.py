"""``newsletter bounces process``: bounce (DSN) and complaint (ARF) reports in."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext


@click.group("bounces")
def bounces_group() -> None:
    """Read bounce (DSN) and complaint (ARF) reports."""


@bounces_group.command("process")
@click.argument("source", default="-")
@with_appcontext
def bounces_process(source: str) -> None:
    """Read DSN/ARF messages from SOURCE: a maildir, an mbox, an .eml file, or '-' for one
    message on standard input (an MTA pipe). Unreadable messages are reported and skipped;
    the exit code is 0 so an MTA never bounces a bounce."""
    from flask import current_app

    from newsletter.delivery.bounces import process_messages, read_source
    from newsletter.delivery.events import BouncePolicy
    from newsletter.wiring import services

    parts = services()
    try:
        messages = list(read_source(source, stdin=sys.stdin.buffer))
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    run = process_messages(messages, tokens=parts.delivery_tokens, readers=parts.readers,
                           policy=BouncePolicy.from_config(current_app.config))
    for line in run.skipped:
        click.echo(line, err=True)
    click.echo(run.summary)


COMMANDS = (bounces_group,)
