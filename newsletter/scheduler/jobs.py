"""The worker's scheduled jobs: each opens an app context and calls one service.

Every job is safe to run late, twice, or on several workers at once: its work is derived
from the database and every change it makes is a compare-and-set or unique-keyed insert.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask

from newsletter.db import db, utcnow

if TYPE_CHECKING:
    from newsletter.delivery.bounces import MaildirPoll

log = logging.getLogger(__name__)


def compose_digests(app: Flask) -> None:
    """Queue the digests whose readers' local time has come."""
    from newsletter.delivery.fanout import queue_readers
    from newsletter.editions.digests import compose_due
    from newsletter.wiring import mail_setup

    with app.app_context():
        config = app.config
        result = compose_due(mail_setup(), queue=queue_readers, now=utcnow(),
                             grace=timedelta(minutes=config["DIGEST_GRACE"]),
                             slot_minutes=config["DIGEST_SLOT_MINUTES"])
        if result.due or result.skipped:
            log.info("digests: %d due, %d queued in %d edition(s), %d with nothing new, "
                     "%d skipped as too late", result.due, result.queued,
                     len(result.editions), result.empty, result.skipped)


def start_due_editions(app: Flask) -> None:
    """Start the scheduled special editions whose time has come."""
    from newsletter.delivery.service import start_due_editions as start
    from newsletter.wiring import mail_setup

    with app.app_context():
        started = start(mail_setup(),
                        stale_after=timedelta(seconds=app.config["START_STALE_SECONDS"]))
        if started:
            log.info("started scheduled edition(s) %s", started)


def poll_feeds(app: Flask) -> None:
    """Poll the feeds whose interval has passed."""
    from newsletter.content.feeds import poll_due
    from newsletter.wiring import services

    with app.app_context():
        poll_due(utcnow(), timedelta(minutes=app.config["FEEDS_POLL_MINUTES"]),
                 services().feed_fetcher)


def send_account_mail(app: Flask) -> None:
    """Send the queued account mail (confirmations, sign-in links, address changes)."""
    from newsletter.subscribers.outbox import send_due
    from newsletter.wiring import reader_services

    with app.app_context():
        report = send_due(reader_services().mailer, utcnow())
        if report.retried or report.failed:
            log.warning("account mail: %d sent, %d to retry, %d failed", report.sent,
                        report.retried, report.failed)


def heartbeat(app: Flask, name: str) -> None:
    """Say that this worker is alive (the dashboard shows when each was last seen)."""
    from newsletter.delivery.workers import beat

    with app.app_context():
        beat(name, utcnow())


def housekeeping(app: Flask) -> None:
    """Delete never-confirmed addresses, old tracking detail, old account-mail records,
    admin sessions past their age and old sign-in failure counts; mark the paid plans whose
    time ended as free (their access had already stopped)."""
    from newsletter.accounts.admins import forget_old_failures
    from newsletter.accounts.sessions import forget_expired
    from newsletter.billing.access import lapse_ended
    from newsletter.delivery.tracking import prune_events
    from newsletter.subscribers.outbox import prune_finished
    from newsletter.subscribers.retention import expire_unconfirmed

    with app.app_context():
        now = utcnow()
        expired = expire_unconfirmed(now, app.config["UNCONFIRMED_DAYS"])
        pruned = prune_events(now, app.config["TRACKING_RETENTION_DAYS"])
        finished = prune_finished(now)
        lapsed = lapse_ended(now)
        forget_expired(timedelta(hours=app.config["ADMIN_SESSION_HOURS"]), now)
        forget_old_failures(now)
        db.session.commit()
        if lapsed:
            log.info("billing: %d paid plan(s) ended", lapsed)
        if expired or pruned or finished:
            log.info("housekeeping: %d unconfirmed address(es) deleted, %d tracking "
                     "event(s) pruned, %d account-mail record(s) deleted", expired, pruned,
                     finished)


def run_reader_imports(app: Flask) -> None:
    """Run the CSV imports of readers waiting for a worker (claimed one at a time), and
    delete uploaded files nobody started within a day."""
    from newsletter.subscribers.imports import prune_abandoned, run_due
    from newsletter.wiring import reader_services

    with app.app_context():
        ran = run_due(reader_services())
        pruned = prune_abandoned(utcnow())
        if ran or pruned:
            log.info("reader imports: %d run, %d abandoned upload(s) deleted", ran, pruned)


def read_bounce_maildir(app: Flask, maildir: MaildirPoll) -> None:
    """Read the new reports of the bounce Maildir (``NEWSLETTER_BOUNCE_MAILDIR``); ``maildir``
    is the :class:`~newsletter.delivery.bounces.MaildirPoll` the scheduler keeps."""
    from newsletter.delivery.events import BouncePolicy
    from newsletter.wiring import services

    with app.app_context():
        parts = services()
        run = maildir.run(tokens=parts.delivery_tokens, readers=parts.readers,
                          policy=BouncePolicy.from_config(app.config))
        if run is None:
            return
        for line in run.skipped + run.failed:
            log.warning("bounce maildir: %s", line)
        if run.messages:
            log.info("bounce maildir %s: %s%s", maildir.path, run.summary,
                     f"; stopped: {run.stopped}" if run.stopped else "")
