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
    from newsletter.cli_digest import digest_command
    from newsletter.cli_feeds import feeds_group

    for command in (*commands.commands.values(), digest_command, feeds_group):
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
    stop = None
    if app.config["SEND_IN_WEB"]:
        import threading

        from newsletter.scheduler import run_worker

        stop = threading.Event()
        threading.Thread(target=run_worker, args=(app, stop), name="sender",
                         daemon=True).start()
    click.echo(f"Serving {app.config['PUBLICATION_NAME']} on http://{host}:{port}/ "
               f"(mail transport: {app.config['MAIL_TRANSPORT']}, sender "
               f"{'in this process' if stop else 'off: run newsletter worker'})")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False,
                   use_debugger=bool(app.config.get("DEBUG")))
    finally:
        if stop is not None:
            stop.set()


@commands.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when syntheses exist already.")
@with_appcontext
def seed_demo_command(if_empty: bool) -> None:
    """Load the demo topics and syntheses, and four demo readers whose digest times are a
    few minutes from now (in London, New York, Shanghai and UTC)."""
    from newsletter.content.demo import database_is_empty, seed_demo
    from newsletter.extensions import reader_services
    from newsletter.subscribers.demo import DEMO_READERS, seed_demo_readers

    if if_empty and not database_is_empty():
        click.echo("Content exists already; demo content not loaded.")
        return
    counts = seed_demo()
    click.echo(f"Demo content: {counts['topics']} topics added, {counts['created']} syntheses "
               f"created, {counts['updated']} updated, {counts['unchanged']} unchanged.")
    readers = seed_demo_readers(reader_services())
    click.echo(f"Demo readers: {readers} added ({', '.join(r[0] for r in DEMO_READERS)}); "
               "their digests reach the outbox within 15 minutes while a worker runs "
               "(`make run` runs one), or at once with `newsletter digest --now --send`.")


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

@commands.command("editions")
@with_appcontext
def editions_command() -> None:
    """List editions with their delivery counts."""
    from sqlalchemy import select

    from newsletter.db import db
    from newsletter.editions import service as editions
    from newsletter.editions.models import Edition

    click.echo(f"{'id':>5}  {'status':<10} {'kind':<8} {'queued':>7} {'sent':>7} "
               f"{'deferred':>8} {'bounced':>7} {'failed':>6}  subject")
    for edition in db.session.scalars(select(Edition).order_by(Edition.id.desc()).limit(50)):
        n = editions.counts(edition.id)
        click.echo(f"{edition.id:>5}  {edition.status:<10} {edition.kind:<8} "
                   f"{n['queued'] + n['claimed']:>7} {n['sent']:>7} {n['deferred']:>8} "
                   f"{n['bounced']:>7} {n['failed']:>6}  {edition.subject[:60]}")


@commands.group("edition")
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
@click.option("--tier", type=click.Choice(["all", "paid"]), default="all")
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
    from newsletter.editions import service as editions

    try:
        result = getattr(editions, action)(edition_id)
    except editions.EditionStateError as exc:
        raise click.ClickException(str(exc)) from None
    extra = f" ({result} deliveries cancelled)" if action == "cancel" else ""
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
    """Send the rest; readers already sent get nothing again."""
    _edition_action("resume", edition_id)


@edition_group.command("cancel")
@click.argument("edition_id", type=int)
@with_appcontext
def edition_cancel(edition_id: int) -> None:
    """Cancel every delivery not yet sent."""
    _edition_action("cancel", edition_id)


@commands.command("send")
@click.argument("edition_id", type=int)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def send_command(edition_id: int, quiet: bool) -> None:
    """Start EDITION_ID if needed and send it in the foreground, with progress."""
    import threading
    import time

    from flask import current_app

    from newsletter.db import db
    from newsletter.delivery.service import make_sender
    from newsletter.editions import service as editions
    from newsletter.editions.models import Edition
    from newsletter.extensions import mail_setup

    edition = db.session.get(Edition, edition_id)
    if edition is None:
        raise click.ClickException(f"no edition {edition_id}")
    if edition.status in ("draft", "scheduled"):
        queued = editions.start_sending(edition_id, mail_setup())
        click.echo(f"Edition {edition_id}: {queued} deliveries queued.", err=True)
    elif edition.status != "sending":
        raise click.ClickException(f"edition {edition_id} is {edition.status}")
    total = editions.counts(edition_id)["open"]
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
    counts = editions.counts(edition_id)
    click.echo(f"\nEdition {edition_id}: sent {counts['sent']}, deferred {counts['deferred']}, "
               f"bounced {counts['bounced']}, failed {counts['failed']}, cancelled "
               f"{counts['cancelled']} (this run: {progress.sent} sent).")
    if counts["deferred"]:
        click.echo("Deferred deliveries are retried by `newsletter worker`.")


@commands.command("worker")
@click.option("--poll", default=10.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between checks for scheduled editions that are due.")
@with_appcontext
def worker_command(poll: float) -> None:
    """Run the scheduler (digests at each reader's time, scheduled editions, feeds,
    housekeeping) and send continuously: claim deliveries, retry deferred ones."""
    import signal
    import threading

    from flask import current_app

    from newsletter.scheduler import run_worker

    stop = threading.Event()

    def _stop(signum, frame):
        click.echo("Stopping after the messages in flight…", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo("Worker started.", err=True)
    run_worker(current_app._get_current_object(), stop, poll_seconds=poll)


@commands.group("bounces")
def bounces_group() -> None:
    """Read bounce (DSN) and complaint (ARF) reports."""


@bounces_group.command("process")
@click.argument("source", default="-")
@with_appcontext
def bounces_process(source: str) -> None:
    """Read DSN/ARF messages from SOURCE: a maildir, an mbox, an .eml file, or '-' for one
    message on standard input (an MTA pipe). Unreadable messages are reported and skipped;
    the exit code is 0 so an MTA never bounces a bounce."""
    from datetime import timedelta

    from flask import current_app

    from newsletter.delivery import bounce_reports as br
    from newsletter.delivery.events import BouncePolicy, Event, handle
    from newsletter.delivery.service import delivery_tokens
    from newsletter.extensions import reader_services

    config = current_app.config
    policy = BouncePolicy(config["SOFT_BOUNCE_LIMIT"],
                          timedelta(days=config["SOFT_BOUNCE_WINDOW_DAYS"]))
    tokens = delivery_tokens(config)
    tally: dict[str, int] = {}
    try:
        messages = list(br.read_source(source, stdin=sys.stdin.buffer))
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for label, raw in messages:
        try:
            reports = br.parse_report(raw)
        except br.MalformedReport as exc:
            click.echo(f"{label}: skipped: {exc}", err=True)
            tally["skipped"] = tally.get("skipped", 0) + 1
            continue
        for report in reports:
            source_name = "arf" if report.kind == "complaint" else "dsn"
            outcome = handle(Event(source=source_name,
                                   event_id=f"{report.report_id}:{report.recipient or ''}",
                                   kind=report.kind, token=report.token,
                                   recipient=report.recipient,
                                   detail=report.diagnostic or report.status or ""),
                             tokens=tokens, services=reader_services(), policy=policy)
            tally[outcome] = tally.get(outcome, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(tally.items())) or "nothing"
    click.echo(f"{len(messages)} message(s): {summary}")


if __name__ == "__main__":  # python -m newsletter.cli
    main()
