"""``newsletter seed-demo`` and ``newsletter import``: content in."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when syntheses exist already.")
@with_appcontext
def seed_demo_command(if_empty: bool) -> None:
    """Load the demo topics and syntheses, and four demo readers whose digest times are a
    few minutes from now (in London, New York, Shanghai and UTC)."""
    from newsletter.cli.actors import record
    from newsletter.content.demo import database_is_empty, seed_demo
    from newsletter.subscribers.demo import DEMO_READERS, seed_demo_readers
    from newsletter.wiring import reader_services

    if if_empty and not database_is_empty():
        click.echo("Content exists already; demo content not loaded.")
        return
    counts = seed_demo()
    click.echo(f"Demo content: {counts['topics']} topics added, {counts['created']} syntheses "
               f"created, {counts['updated']} updated, {counts['unchanged']} unchanged.")
    readers = seed_demo_readers(reader_services())
    record("loaded demo content", "demo", **counts, readers=readers)
    click.echo(f"Demo readers: {readers} added ({', '.join(r[0] for r in DEMO_READERS)}); "
               "their digests reach the outbox within 15 minutes while a worker runs "
               "(`make run` runs one), or at once with `newsletter digest --now --send`.")


@click.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@with_appcontext
def import_command(file) -> None:
    """Import syntheses from FILE (a JSON array or JSON Lines; '-' reads standard input).

    Exits 1 when any record was rejected; the others are imported all the same.
    """
    from newsletter.cli.actors import record
    from newsletter.content.importer import import_text

    try:
        text = file.read()
    except UnicodeDecodeError:
        raise click.ClickException(f"{file.name} is not UTF-8 text") from None
    report = import_text(text)
    if report.created or report.updated:
        record("imported syntheses", str(file.name)[:200], created=report.created,
               updated=report.updated, unchanged=report.unchanged,
               rejected=len(report.rejected))
    for rejection in report.rejected:
        click.echo(f"line {rejection.line}: rejected: {rejection.reason}", err=True)
    click.echo(f"{report.created} created, {report.updated} updated, "
               f"{report.unchanged} unchanged, {len(report.rejected)} rejected")
    if report.rejected:
        sys.exit(1)


COMMANDS = (seed_demo_command, import_command,)
