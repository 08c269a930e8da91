"""The worker: APScheduler 3.11 runs the thin jobs, the sender runs the send loop.

``build_scheduler`` says what runs when, and why each job's misfire settings are what they
are. ``run_worker`` starts both and stops both.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from newsletter.delivery.workers import BEAT_SECONDS, process_name
from newsletter.scheduler import jobs

log = logging.getLogger(__name__)

__all__ = ["build_scheduler", "run_worker"]


def build_scheduler(app: Flask, *, poll_seconds: float = 10.0,
                    name: str | None = None) -> BackgroundScheduler:
    """A scheduler (not started) with the worker's jobs.

    Every job: ``coalesce`` (runs missed while busy or asleep collapse into one),
    ``max_instances=1`` (a slow run is never overlapped by the next), and no misfire limit
    (``misfire_grace_time=None``: a late run still runs). Lateness is judged by the
    services from the database, not by the scheduler: a digest due less than
    ``NEWSLETTER_DIGEST_GRACE`` ago still goes out, once; older ones are skipped and
    logged. Jobs live in memory: a restarted worker derives everything from the database,
    so there is no job state to lose. The first run of each is at start.
    """
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    now = datetime.now(UTC)
    name = name or process_name()
    scheduler.add_job(jobs.compose_digests, "interval", minutes=1, args=[app],
                      id="compose-digests", name="compose due digests", next_run_time=now)
    scheduler.add_job(jobs.start_due_editions, "interval", seconds=poll_seconds, args=[app],
                      id="start-due-editions", name="start scheduled editions",
                      next_run_time=now)
    scheduler.add_job(jobs.poll_feeds, "interval", minutes=1, args=[app], id="poll-feeds",
                      name="poll feeds", next_run_time=now)
    # Account mail is waited for by a person at a form: looked for every 2 s (one indexed
    # query when there is nothing to send).
    scheduler.add_job(jobs.send_account_mail, "interval", seconds=2, args=[app],
                      id="send-account-mail", name="send account mail", next_run_time=now)
    scheduler.add_job(jobs.heartbeat, "interval", seconds=BEAT_SECONDS, args=[app, name],
                      id="heartbeat", name="worker heartbeat", next_run_time=now)
    scheduler.add_job(jobs.housekeeping, "interval", hours=1, args=[app], id="housekeeping",
                      name="housekeeping", next_run_time=now)
    # An editor watches a big import's page: looked for every 5 s (one indexed query).
    scheduler.add_job(jobs.run_reader_imports, "interval", seconds=5, args=[app],
                      id="run-reader-imports", name="run reader imports", next_run_time=now)
    # Reports that an MTA files in a Maildir: each is read until applied, then moved to
    # cur/ as seen; several workers may read one Maildir (the contract is in
    # delivery.bounces). The poll keeps only whether the Maildir was readable, to log
    # changes.
    if app.config.get("BOUNCE_MAILDIR"):
        from newsletter.delivery.bounces import MaildirPoll

        scheduler.add_job(jobs.read_bounce_maildir, "interval",
                          seconds=app.config["BOUNCE_POLL_SECONDS"],
                          args=[app, MaildirPoll(app.config["BOUNCE_MAILDIR"])],
                          id="read-bounce-maildir", name="read bounce maildir",
                          next_run_time=now)
    return scheduler


def run_worker(app: Flask, stop: threading.Event, *, poll_seconds: float = 10.0) -> None:
    """Run the scheduler and the sender until ``stop``.

    The send loop is the sender's own (``delivery.sender``): it claims due deliveries,
    queued and deferred alike, so retries need no job of their own.
    """
    from newsletter.wiring import make_sender

    sender = make_sender(app)
    scheduler = build_scheduler(app, poll_seconds=poll_seconds)
    scheduler.start()
    try:
        sender.run(stop)
    finally:
        scheduler.shutdown(wait=True)
