"""``newsletter digest``: compose digests now instead of waiting for readers' times."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.command("digest")
@click.option("--now", "now_flag", is_flag=True,
              help="Compose and queue now the digest each reader would get next.")
@click.option("--send", is_flag=True,
              help="Also send them in the foreground (otherwise a worker sends them).")
@with_appcontext
def digest_command(now_flag: bool, send: bool) -> None:
    """Compose and queue at once the digest each confirmed reader would get at their next
    delivery time (readers with nothing new get nothing; paused readers are left alone).
    It counts as that delivery date's digest, so nobody gets two digests for one date nor
    the same syntheses twice."""
    import threading

    from flask import current_app

    from newsletter.db import utcnow
    from newsletter.delivery.fanout import queue_readers
    from newsletter.editions.digests import compose_now
    from newsletter.wiring import mail_setup

    if not now_flag:
        raise click.UsageError("say --now: digests otherwise go out at each reader's time "
                               "from `newsletter worker`")
    app = current_app._get_current_object()
    result = compose_now(mail_setup(), queue=queue_readers, now=utcnow(),
                         slot_minutes=app.config["DIGEST_SLOT_MINUTES"])
    if result.editions:
        from newsletter.cli.actors import record

        record("composed digests now", "digests", readers=result.due, queued=result.queued,
               editions=len(result.editions), send=send)
    click.echo(f"{result.due} reader(s): {result.queued} digest(s) queued in "
               f"{len(result.editions)} edition(s), {result.empty} with nothing new.")
    if not result.editions:
        return
    if not send:
        click.echo("A running `newsletter worker` (or `make run`) sends them; or run "
                   "`newsletter digest --now --send`.")
        return
    from newsletter.delivery.stats import counts
    from newsletter.wiring import make_sender

    for edition_id in result.editions:
        make_sender(app).run(threading.Event(), edition_id=edition_id)
    sent = sum(counts(edition_id)["sent"] for edition_id in result.editions)
    click.echo(f"{sent} sent.")


COMMANDS = (digest_command,)
