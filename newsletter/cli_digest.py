"""``newsletter digest``: compose digests now instead of waiting for readers' times."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.command("digest")
@click.option("--now", "now_flag", is_flag=True, required=True,
              help="Compose and queue now the digest each reader would get next.")
@with_appcontext
def digest_command(now_flag: bool) -> None:
    """Compose and queue digests at once (see README: when a reader gets what)."""
    raise click.ClickException("not built yet")
