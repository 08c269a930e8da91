"""``newsletter editions``, ``edition …`` and ``send``: special editions and sending."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from newsletter.billing.entitlements import TIER_ALL, TIERS


@click.command("editions")
@with_appcontext
def editions_command() -> None:
    """List editions with their delivery counts."""
    from newsletter.delivery.stats import recent_editions

    click.echo(f"{'id':>5}  {'status':<10} {'kind':<8} {'queued':>7} {'sent':>7} "
               f"{'deferred':>8} {'bounced':>7} {'failed':>6}  subject")
    for edition, n in recent_editions(50):
        click.echo(f"{edition.id:>5}  {edition.status:<10} {edition.kind:<8} "
                   f"{n['queued'] + n['claimed']:>7} {n['sent']:>7} {n['deferred']:>8} "
                   f"{n['bounced']:>7} {n['failed']:>6}  {edition.subject[:60]}")


@click.group("edition")
def edition_group() -> None:
    """Create, pause, resume or cancel an edition."""


@edition_group.command("create")
@click.option("--subject", required=True)
@click.option("--preheader", default="",
              help="Inbox preview text (default for --markdown: the first paragraph).")
@click.option("--markdown", "markdown_file", type=click.File("rb"), default=None,
              help="Markdown file with the edition's body ('-' reads standard input).")
@click.option("--synthesis", "slugs", multiple=True, help="Slug of a synthesis to include.")
@click.option("--topics", default="", help="Comma-separated audience topic slugs (default all).")
@click.option("--tier", type=click.Choice(TIERS), default=TIER_ALL)
@click.option("--no-tracking", is_flag=True)
@click.option("--send-at", default=None,
              help="ISO 8601 time with offset, or 'now': schedule it (workers start it).")
@with_appcontext
def edition_create(subject, preheader, markdown_file, slugs, topics, tier, no_tracking,
                   send_at) -> None:
    """Create a special edition from a Markdown body and/or published syntheses (a draft
    unless --send-at); prints its id. Nothing is created when any input is wrong."""
    when = _parse_send_at(send_at)
    from newsletter.content import service as content
    from newsletter.editions import service as editions
    from newsletter.editions.markdown import MAX_BYTES
    from newsletter.editions.specials import create_special
    from newsletter.validation import InvalidInput

    ids = []
    for slug in slugs:
        synthesis = content.get_visible_synthesis(slug)
        if synthesis is None:
            raise click.ClickException(f"no published synthesis with slug {slug!r}")
        ids.append(synthesis.id)
    sections = [{"title": subject, "synthesis_ids": ids}] if ids else []
    audience = [t.strip() for t in topics.split(",") if t.strip()]
    try:
        if markdown_file is not None:
            # One byte more than the limit is enough to know the file is too large.
            source = markdown_file.read(MAX_BYTES + 1)
            edition = create_special(subject, source, topics=audience, tier=tier,
                                     send_at=when, preheader=preheader, sections=sections,
                                     tracking=not no_tracking)
        else:
            edition = editions.create_edition(
                subject=subject, preheader=preheader, sections=sections, topics=audience,
                tier=tier, tracking=not no_tracking, send_at=when)
    except InvalidInput as exc:
        name = getattr(markdown_file, "name", "")
        raise click.ClickException(
            "; ".join(f"{name}: {e.message}" if e.field == "markdown" and name else str(e)
                      for e in exc.errors)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {markdown_file.name}: {exc}") from None
    from newsletter.cli.actors import record
    from newsletter.db import db

    # The edition and its audit entry: one commit.
    record("scheduled edition" if edition.send_at else "saved draft", f"edition {edition.id}",
           commit=False, subject=edition.subject,
           send_at=edition.send_at.isoformat() if edition.send_at else None)
    db.session.commit()
    click.echo(edition.id)
    state = (f"scheduled for {edition.send_at.isoformat(timespec='minutes')}"
             if edition.send_at else "draft")
    click.echo(f"Edition {edition.id} created ({state}); web version /editions/{edition.slug}",
               err=True)


def _parse_send_at(send_at: str | None):
    """``--send-at``: None, 'now', or an ISO 8601 time with an offset (else a usage error)."""
    from datetime import datetime

    from newsletter.db import utcnow

    if not send_at:
        return None
    try:
        when = utcnow() if send_at == "now" else datetime.fromisoformat(
            send_at.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use ISO 8601 with an offset, or 'now'",
                                 param_hint="--send-at") from None
    if when.tzinfo is None:
        raise click.BadParameter("needs a timezone offset, e.g. 2026-12-01T07:00:00Z",
                                 param_hint="--send-at")
    return when


def _edition_action(action: str, edition_id: int) -> None:
    from datetime import timedelta

    from flask import current_app

    from newsletter.cli.actors import record
    from newsletter.delivery import service as sending
    from newsletter.editions import service as editions
    from newsletter.wiring import mail_setup

    stale = timedelta(seconds=current_app.config["START_STALE_SECONDS"])
    # Pausing moves only the edition; resuming may start a failed one again; cancelling
    # also cancels its deliveries.
    use_case = {"pause": editions.pause,
                "resume": lambda e: sending.resume(e, mail_setup(), stale_after=stale),
                "cancel": sending.cancel}[action]
    try:
        result = use_case(edition_id)
    except editions.EditionStateError as exc:
        raise click.ClickException(str(exc)) from None
    # The admin area's words for the same actions.
    record({"pause": "paused edition", "resume": "resumed edition",
            "cancel": "cancelled edition"}[action], f"edition {edition_id}",
           **({"deliveries": result} if isinstance(result, int) else {}))
    extra = {"cancel": f" ({result} deliveries cancelled)",
             "resume": f" ({result} deliveries queued)" if result else ""}.get(action, "")
    click.echo(f"Edition {edition_id}: {action} done{extra}.")


@edition_group.command("pause")
@click.argument("edition_id", type=int)
@with_appcontext
def edition_pause(edition_id: int) -> None:
    """Stop sending (workers notice within a second); resume goes on where it stopped."""
    _edition_action("pause", edition_id)


@edition_group.command("resume")
@click.argument("edition_id", type=int)
@with_appcontext
def edition_resume(edition_id: int) -> None:
    """Send the rest of a paused edition, or start again one that failed; readers already
    sent get nothing again."""
    _edition_action("resume", edition_id)


@edition_group.command("cancel")
@click.argument("edition_id", type=int)
@with_appcontext
def edition_cancel(edition_id: int) -> None:
    """Cancel every delivery not yet sent."""
    _edition_action("cancel", edition_id)


@click.command("send")
@click.argument("edition_id", type=int)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def send_command(edition_id: int, quiet: bool) -> None:
    """Start EDITION_ID if needed and send it in the foreground, with progress."""
    import threading
    import time
    from datetime import timedelta

    from flask import current_app

    from newsletter.cli.actors import record
    from newsletter.delivery import service as sending
    from newsletter.delivery.stats import counts as delivery_counts
    from newsletter.editions.service import EditionStateError
    from newsletter.wiring import mail_setup, make_sender

    try:
        queued = sending.ensure_sending(edition_id, mail_setup(), stale_after=timedelta(
            seconds=current_app.config["START_STALE_SECONDS"]))
    except EditionStateError as exc:
        raise click.ClickException(str(exc)) from None
    # Before the run, which may be stopped half-way: who started it is known already.
    record("sent edition", f"edition {edition_id}", recipients=queued)
    if queued is not None:
        click.echo(f"Edition {edition_id}: {queued} deliveries queued.", err=True)
    total = delivery_counts(edition_id)["open"]
    app = current_app._get_current_object()
    sender = make_sender(app)
    last = [0.0]

    def show(progress) -> None:
        now = time.monotonic()
        if quiet or now - last[0] < 0.5:
            return
        last[0] = now
        elapsed = max(now - progress.started, 1e-6)
        rate = progress.done / elapsed
        eta = (total - progress.done) / rate if rate else 0
        click.echo(f"\rsent {progress.sent} · deferred {progress.deferred} · bounced "
                   f"{progress.bounced} · failed {progress.failed} · {rate:,.0f}/s · "
                   f"ETA {eta:,.0f}s   ", err=True, nl=False)

    progress = sender.run(threading.Event(), edition_id=edition_id, on_progress=show)
    counts = delivery_counts(edition_id)
    click.echo(f"\nEdition {edition_id}: sent {counts['sent']}, deferred {counts['deferred']}, "
               f"bounced {counts['bounced']}, failed {counts['failed']}, cancelled "
               f"{counts['cancelled']} (this run: {progress.sent} sent).")
    if counts["deferred"]:
        click.echo("Deferred deliveries are retried by `newsletter worker`.")


COMMANDS = (editions_command, edition_group, send_command,)
