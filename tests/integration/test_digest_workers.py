"""Digests with real workers: two at once, the scheduler wiring, `newsletter digest --now`,
and what a reader finally receives."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import time_machine
from sqlalchemy import func, select

from newsletter import create_app
from newsletter.db import db, utcnow
from newsletter.delivery import queue as dq
from newsletter.delivery.models import Delivery
from newsletter.editions.models import Edition
from newsletter.scheduler import jobs
from tests.factories import make_synthesis
from tests.factories_readers import make_reader
from tests.support.digests import compose_at, deliveries_by_reader, utc
from tests.support.editions import send
from tests.support.readers import outbox_messages

TOPIC_SETS = (("ai-policy-and-safety",), ("models-and-research",),
              ("models-and-research", "ai-policy-and-safety"))


def _many_readers(n: int, confirmed):
    readers = [make_reader(f"reader{i}@example.com", topics=TOPIC_SETS[i % 3],
                           timezone=("Europe/London", "UTC")[i % 2],
                           delivery_minute=7 * 60 + (i % 3) * 5) for i in range(n)]
    for reader in readers:
        reader.confirmed_at = confirmed
    db.session.commit()
    return readers


def test_two_workers_composing_at_once_create_each_edition_once(app_config, app, topics):
    from newsletter.delivery.fanout import queue_readers
    from newsletter.editions.digests import compose_due
    from newsletter.wiring import mail_setup

    readers = _many_readers(90, confirmed=utc(2026, 1, 1))
    workers = [create_app(app_config) for _ in range(2)]
    for day in range(1, 6):  # five mornings, so the race is run five times
        make_synthesis(title=f"Policy {day}", topics=["ai-policy-and-safety"],
                       published_at=f"2026-01-{10 + day:02d}T03:00:00+00:00")
        make_synthesis(title=f"Research {day}", topics=["models-and-research"],
                       published_at=f"2026-01-{10 + day:02d}T04:00:00+00:00")
        now = utc(2026, 1, 10 + day, 7, 10)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(worker, now=now, barrier=barrier, errors=errors):
            try:
                with worker.app_context():
                    barrier.wait()
                    compose_due(mail_setup(), queue=queue_readers, now=now,
                                grace=timedelta(hours=3), slot_minutes=15)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    db.session.expire_all()
    got = deliveries_by_reader()
    assert sorted(len(got[r.id]) for r in readers) == [5] * len(readers)
    keys = db.session.scalars(select(Edition.idempotency_key)).all()
    assert len(keys) == len(set(keys)) == 5 * 3  # three kinds of sections a morning
    empty_editions = db.session.scalar(select(func.count()).select_from(Edition).where(
        ~Edition.id.in_(select(Delivery.edition_id))))
    assert empty_editions == 0


def test_scheduler_has_the_jobs_with_their_misfire_settings(app):
    from newsletter.scheduler import build_scheduler

    scheduler = build_scheduler(app, poll_seconds=7)
    scheduler.start(paused=True)  # job defaults apply when jobs reach the store
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)
    assert set(jobs) == {"compose-digests", "start-due-editions", "poll-feeds",
                         "send-account-mail", "housekeeping", "heartbeat",
                         "run-reader-imports"}
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1
        assert job.misfire_grace_time is None
    assert jobs["compose-digests"].trigger.interval == timedelta(minutes=1)
    assert jobs["start-due-editions"].trigger.interval == timedelta(seconds=7)
    assert jobs["send-account-mail"].trigger.interval == timedelta(seconds=2)
    assert jobs["run-reader-imports"].trigger.interval == timedelta(seconds=5)


def test_the_worker_sends_a_digest_when_the_readers_time_comes(app, topics):
    from newsletter.scheduler import run_worker

    now = utcnow()
    due = now - timedelta(minutes=1)
    reader = make_reader("due@example.com", timezone="UTC",
                         delivery_minute=due.hour * 60 + due.minute,
                         topics=("ai-policy-and-safety",))
    reader.confirmed_at = now - timedelta(days=1)
    not_yet = make_reader("later@example.com", timezone="UTC",
                          delivery_minute=(due.hour * 60 + due.minute + 120) % 1440,
                          topics=("ai-policy-and-safety",))
    not_yet.confirmed_at = now - timedelta(days=1)
    db.session.commit()
    make_synthesis(title="Worker-made digest", published_at=(now - timedelta(hours=1))
                   .isoformat())
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(app, stop), kwargs={"poll_seconds": 1})
    worker.start()
    outbox = Path(app.config["OUTBOX_DIR"])
    try:
        deadline = time.monotonic() + 30
        while not outbox_messages(outbox) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        worker.join(timeout=30)
    (message,) = outbox_messages(outbox)
    assert message["To"] == "due@example.com"
    assert "Worker-made digest" in message["Subject"]
    assert "Worker-made digest" in message.get_body(("plain",)).get_content()


def test_digest_now_queues_what_each_reader_would_get_next(runner, app, topics):
    with_news = make_reader("news@example.com", topics=("ai-policy-and-safety",))
    make_reader("nothing@example.com", topics=("models-and-research",))
    make_reader("paused@example.com", topics=("ai-policy-and-safety",), frequency="paused",
                paused_until=(utcnow() + timedelta(days=5)).date())
    make_reader("pending@example.com", status="pending")
    story = make_synthesis(title="Fresh policy story",
                           published_at=(utcnow() - timedelta(hours=2)).isoformat())

    result = runner.invoke(args=["digest", "--now", "--send"])
    assert result.exit_code == 0, result.output
    assert "2 reader(s): 1 digest(s) queued in 1 edition(s), 1 with nothing new." in result.output
    (message,) = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    assert message["To"] == "news@example.com" and story.title in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert text.count(story.title) == 1

    again = runner.invoke(args=["digest", "--now"])
    assert "0 digest(s) queued" in again.output
    # It counts as the reader's next scheduled digest (today's or tomorrow's), so the
    # worker's job adds nothing today (test_digest_schedule walks the following days).
    db.session.expire_all()
    reader = db.session.get(type(with_news), with_news.id)
    assert reader.last_digest_on >= utcnow().date()
    jobs.compose_digests(app)
    assert len(deliveries_by_reader()[with_news.id]) == 1


def test_digest_command_needs_now(runner, app, topics):
    make_reader("news@example.com", topics=("ai-policy-and-safety",))
    make_synthesis(title="Story", published_at=(utcnow() - timedelta(hours=2)).isoformat())
    result = runner.invoke(args=["digest"])
    assert result.exit_code == 2 and "say --now" in result.output
    assert db.session.scalar(select(func.count()).select_from(Edition)) == 0


def test_a_digest_edition_stays_open_for_its_slot_then_finishes(app, topics):
    reader = make_reader("slot@example.com", topics=("ai-policy-and-safety",))
    reader.confirmed_at = utc(2026, 3, 1)
    db.session.commit()
    make_synthesis(title="Slot story", published_at="2026-03-02T05:00:00+00:00")
    compose_at(app, utc(2026, 3, 2, 7, 0))
    (delivery,) = deliveries_by_reader()[reader.id]
    edition = db.session.get(Edition, delivery.edition_id)
    assert edition.open_until == utc(2026, 3, 2, 10, 15)  # slot end + 3 h grace

    with time_machine.travel(utc(2026, 3, 2, 7, 1)):
        send(app, edition.id)
    db.session.refresh(edition)
    assert edition.status == "sending"  # readers due in its slot may still join
    with db.engine.connect() as conn:
        dq.finish_editions(conn, utc(2026, 3, 2, 10, 15))
    db.session.refresh(edition)
    assert edition.status == "sent"
    assert db.session.get(Delivery, delivery.id).status == "sent"
