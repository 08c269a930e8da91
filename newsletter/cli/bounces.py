"""``newsletter bounces process``: bounce (DSN) and complaint (ARF) reports in."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import with_appcontext

EX_TEMPFAIL = 75  # sysexits.h: Postfix keeps the message and tries again later


@click.group("bounces")
def bounces_group() -> None:
    """Read bounce (DSN) and complaint (ARF) reports."""


@bounces_group.command("process")
@click.argument("source", default="-")
@with_appcontext
def bounces_process(source: str) -> None:
    """Read DSN/ARF messages from SOURCE: a Maildir, an mbox, an .eml file, or '-' for one
    message on standard input (an MTA pipe).

    A Maildir is read once per message: each one done moves to cur/ marked seen (:2,S),
    and only new/ and unseen cur/ messages are read. Other sources are read whole.

    Exit status: 0 when every message was processed, or reported and skipped because it
    is not a report (an MTA must never bounce a bounce); 75 (EX_TEMPFAIL) when a database
    error left messages for later — Postfix keeps a piped message and retries, a Maildir
    keeps them unseen; 1 when SOURCE cannot be read.
    """
    from flask import current_app

    from newsletter.delivery.bounces import process_maildir, process_messages, read_source
    from newsletter.delivery.events import BouncePolicy
    from newsletter.wiring import services

    parts = services()
    options = {"tokens": parts.delivery_tokens, "readers": parts.readers,
               "policy": BouncePolicy.from_config(current_app.config)}
    try:
        if source != "-" and Path(source).is_dir():
            run = process_maildir(source, **options)
        else:
            run = process_messages(list(read_source(source, stdin=sys.stdin.buffer)),
                                   **options)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in run.skipped + run.failed:
        click.echo(line, err=True)
    click.echo(run.summary)
    if run.failed:
        click.echo(f"newsletter: {run.stopped or 'database error'}; what was not processed "
                   "is kept for a later run", err=True)
        click.get_current_context().exit(EX_TEMPFAIL)


COMMANDS = (bounces_group,)
