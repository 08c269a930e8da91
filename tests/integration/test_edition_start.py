"""Starting an edition is claimed by one worker: racing workers never fail it, a dead
worker's start is taken over, a failed edition resumes, and each reader gets one message."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from newsletter import create_app
from newsletter.db import db, utcnow
from newsletter.delivery import service as sending
from newsletter.delivery.models import Delivery
from newsletter.editions.models import Edition
from tests.support.editions import audience, send, special_edition


def _race(workers, edition_id: int) -> list[BaseException]:
    """Every worker app calls the scheduler's start job at the same instant."""
    from newsletter.wiring import mail_setup

    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(worker):
        try:
            with worker.app_context():
                barrier.wait()
                sending.start_due_editions(mail_setup())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("n_workers", [2, 4])
def test_workers_starting_one_edition_at_once_never_fail_it(app_config, app, topics, caplog,
                                                           n_workers):
    readers = audience(25)
    workers = [create_app(app_config) for _ in range(n_workers)]
    outcomes = Counter()
    with caplog.at_level(logging.INFO, logger="newsletter.delivery"):
        for round_ in range(20):
            edition = special_edition(f"Race {round_}", send_at=utcnow() - timedelta(seconds=1))
            assert _race(workers, edition.id) == []
            db.session.expire_all()
            status = db.session.scalar(select(Edition.status).where(Edition.id == edition.id))
            per_reader = Counter(db.session.scalars(
                select(Delivery.reader_id).where(Delivery.edition_id == edition.id)))
            outcomes[status] += 1
            assert status == "sending", f"round {round_}: {status}"
            assert per_reader == Counter({r.id: 1 for r in readers}), f"round {round_}"
    print(f"\n[{db.engine.dialect.name}, {n_workers} threads] 20 races: {dict(outcomes)}")
    assert outcomes == {"sending": 20}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], "losing a start is not an error"
    for worker in workers:
        with worker.app_context():
            db.engine.dispose()


def test_a_start_left_by_a_dead_worker_is_taken_over_and_a_fresh_one_left_alone(app,
                                                                                topics):
    from newsletter.wiring import mail_setup

    readers = audience(5)
    stale = special_edition("Left by a dead worker")
    fresh = special_edition("Being started right now")
    now = utcnow()
    for edition, when in ((stale, now - timedelta(seconds=121)), (fresh, now)):
        db.session.execute(update(Edition).where(Edition.id == edition.id).values(
            status="starting", start_claim="dead-worker", started_at=when))
    db.session.commit()

    assert sending.start_due_editions(mail_setup()) == [stale.id]
    db.session.expire_all()
    assert db.session.get(Edition, stale.id).status == "sending"
    assert db.session.get(Edition, stale.id).start_claim is None
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.edition_id == stale.id)) == len(readers)
    assert db.session.get(Edition, fresh.id).status == "starting", "a live claim is left alone"
    with pytest.raises(sending.EditionBusy):
        sending.start_sending(fresh.id, mail_setup())


def test_only_the_claimant_can_fail_a_start(app, topics, monkeypatch, caplog):
    from newsletter.wiring import mail_setup

    audience(3)
    edition = special_edition()

    def broken(edition, mail):
        raise RuntimeError("the template store is gone")

    monkeypatch.setattr(sending, "render_variants", broken)
    with caplog.at_level(logging.ERROR, logger="newsletter.delivery"), \
            pytest.raises(RuntimeError):
        sending.start_sending(edition.id, mail_setup())
    db.session.expire_all()
    failed = db.session.get(Edition, edition.id)
    assert (failed.status, failed.error) == ("failed", "the template store is gone")
    assert "failed to start" in caplog.text

    # A worker whose claim was taken over cannot fail the edition the new claimant starts.
    db.session.execute(update(Edition).where(Edition.id == edition.id).values(
        status="starting", start_claim="the-new-claimant", started_at=utcnow()))
    db.session.commit()
    assert not sending._finish_start(edition.id, "an-old-claim", "failed", utcnow(), "late")
    db.session.expire_all()
    assert db.session.get(Edition, edition.id).status == "starting"


def test_a_failed_edition_resumes_and_each_reader_gets_one_message(app_config, app, topics,
                                                                    smtp_server, runner):
    """The state the old race left behind: failed, with every delivery queued — and, here,
    some already sent before it stopped."""
    from newsletter.wiring import mail_setup

    app.config.update(MAIL_TRANSPORT="smtp", SMTP_URL=smtp_server.url)
    readers = audience(12)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    already = list(db.session.scalars(select(Delivery).where(Delivery.edition_id == edition.id)
                                      .order_by(Delivery.id).limit(4)))
    for delivery in already:
        delivery.status = "sent"
    db.session.execute(update(Edition).where(Edition.id == edition.id).values(
        status="failed", error="duplicate key value violates unique constraint"))
    db.session.commit()

    result = runner.invoke(args=["edition", "resume", str(edition.id)])
    assert result.exit_code == 0, result.output
    assert f"Edition {edition.id}: resume done." in result.output
    db.session.expire_all()
    assert db.session.get(Edition, edition.id).status == "sending"
    assert db.session.get(Edition, edition.id).error is None
    send(app, edition.id)
    received = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    skipped = {d.email for d in already}
    assert received == Counter({r.email: 1 for r in readers if r.email not in skipped})
    db.session.expire_all()
    assert db.session.get(Edition, edition.id).status == "sent"

    again = runner.invoke(args=["edition", "resume", str(edition.id)])
    assert again.exit_code == 1
    assert "only a paused or failed edition can resume" in again.output


def test_send_command_waits_for_the_worker_that_is_starting_it(app, topics, smtp_server,
                                                                runner):
    """`newsletter send` on an edition another worker is starting: it takes over the
    start once it is stale, and sends it; readers get one message each."""
    app.config.update(MAIL_TRANSPORT="smtp", SMTP_URL=smtp_server.url, START_STALE_SECONDS=1)
    readers = audience(6)
    edition = special_edition()
    db.session.execute(update(Edition).where(Edition.id == edition.id).values(
        status="starting", start_claim="a-worker-that-died", started_at=utcnow()))
    db.session.commit()
    result = runner.invoke(args=["send", str(edition.id), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "sent 6" in result.output
    assert Counter(m.rcpt_tos[0] for m in smtp_server.messages) == Counter(
        {r.email: 1 for r in readers})


@pytest.mark.parametrize("n_workers", [2, 4])
def test_worker_processes_started_together_send_twenty_editions_once_each(
        app, topics, smtp_server, tmp_path, n_workers):
    """Real `newsletter worker` processes, started at the same instant, polling every
    0.2 s: twenty editions fall due at once, so they race for every one of them."""
    from tests.support.worker import log_tail, start_worker, stop_process, wait_for, worker_env

    readers = audience(6)
    due = utcnow() + timedelta(seconds=4)  # after the workers are up
    editions = [special_edition(f"Edition {i}", send_at=due) for i in range(20)]
    env = worker_env(app.config, smtp_url=smtp_server.url, instance_dir=tmp_path / "w",
                     SEND_CONNECTIONS=2)
    workers = []

    def finished() -> bool:
        db.session.rollback()
        statuses = set(db.session.scalars(select(Edition.status)))
        return statuses <= {"sent", "failed"} or any(w.poll() is not None for w in workers)

    try:
        workers = [start_worker(env, tmp_path / f"w{i}.log", poll=0.2)
                   for i in range(n_workers)]
        wait_for(finished, timeout=90, what="every edition to be sent")
        assert all(w.poll() is None for w in workers), log_tail(tmp_path / "w0.log")
    finally:
        for worker in workers:
            stop_process(worker)
    db.session.rollback()
    statuses = Counter(db.session.scalars(select(Edition.status)))
    received = Counter((m.rcpt_tos[0], m.message["Subject"]) for m in smtp_server.messages)
    print(f"\n[{db.engine.dialect.name}, {n_workers} workers] editions {dict(statuses)}, "
          f"{sum(received.values())} messages, "
          f"{sum(n - 1 for n in received.values())} duplicates")
    assert statuses == {"sent": len(editions)}, "no edition ever ends failed"
    assert received == Counter({(r.email, e.subject): 1 for r in readers for e in editions})
    for i in range(n_workers):
        assert "Traceback" not in (tmp_path / f"w{i}.log").read_text(), log_tail(
            tmp_path / f"w{i}.log")


def test_an_edition_cancelled_while_starting_ends_cancelled_with_nothing_queued(app, topics,
                                                                              monkeypatch):
    from newsletter.wiring import mail_setup

    audience(5)
    edition = special_edition()
    real_fan_out = sending.fan_out

    def fan_out_while_an_operator_cancels(*args, **kwargs):
        assert db.session.get(Edition, edition.id).status == "starting"
        count = real_fan_out(*args, **kwargs)
        db.session.commit()
        sending.cancel(edition.id)  # the operator, at this very moment
        return count

    monkeypatch.setattr(sending, "fan_out", fan_out_while_an_operator_cancels)
    sending.start_sending(edition.id, mail_setup())
    db.session.expire_all()
    assert db.session.get(Edition, edition.id).status == "cancelled"
    assert set(db.session.scalars(select(Delivery.status).where(
        Delivery.edition_id == edition.id))) == {"cancelled"}


def test_a_digest_is_never_resumed_into_a_fan_out(app, topics):
    from newsletter.wiring import mail_setup

    edition = special_edition()
    db.session.execute(update(Edition).where(Edition.id == edition.id).values(
        kind="digest", status="failed"))
    db.session.commit()
    with pytest.raises(sending.EditionStateError, match="is a digest"):
        sending.resume(edition.id, mail_setup())
