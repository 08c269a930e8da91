"""The queue when the database misbehaves, and the order of the claim: a lease that cannot
be renewed stops its messages before it runs out, the writer retries, locks never cross,
and a due retry never waits behind fresh mail."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.exc import OperationalError

from newsletter.db import db, utcnow
from newsletter.delivery import queue as dq
from newsletter.delivery import service as sending
from newsletter.delivery.models import Delivery, DeliveryAttempt
from newsletter.editions.models import EditionVariant
from newsletter.subscribers.models import Reader
from tests.support.editions import audience, special_edition


class _Fault:
    """Makes matching statements fail with OperationalError, as a database that is away
    or a deadlock victim would, for the threads named (all when none is named)."""

    def __init__(self, engine, needle: str, *, threads: set[str] | None = None,
                 times: int | None = None):
        self.engine, self.needle, self.threads, self.left = engine, needle, threads, times
        self.hits = 0

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._check)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._check)

    def _check(self, conn, cursor, statement, parameters, context, executemany):
        if self.needle not in statement:
            return
        if self.threads is not None and threading.current_thread().name not in self.threads:
            return
        if self.left is not None:
            if self.left <= 0:
                return
            self.left -= 1
        self.hits += 1
        raise OperationalError(statement, parameters, RuntimeError("injected fault"))


def _smtp(app, smtp_server, **settings):
    app.config.update(MAIL_TRANSPORT="smtp", SMTP_URL=smtp_server.url, **settings)


def _run_sender(app, name: str, stop: threading.Event, edition_id: int | None = None):
    from newsletter.wiring import make_sender

    def target():
        with app.app_context():
            make_sender(app, worker=name).run(stop, edition_id=edition_id)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread


def test_a_lease_that_cannot_be_renewed_is_not_sent_past_its_end(app, topics, smtp_server,
                                                                caplog):
    """Worker A claims everything but cannot renew its leases; worker B claims what expires.
    A stops sending before its leases run out, so nobody gets a message twice."""
    from newsletter.wiring import mail_setup

    _smtp(app, smtp_server, LEASE_SECONDS=6, SEND_BATCH=400, SEND_CONNECTIONS=2)
    readers = audience(240)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    smtp_server.reply = lambda received: time.sleep(0.03)  # ~33 messages a second
    stop_a, stop_b = threading.Event(), threading.Event()
    with _Fault(db.engine, "SET lease_until = ", threads={"worker-a"}) as fault, \
            caplog.at_level(logging.WARNING, logger="newsletter.delivery"):
        a = _run_sender(app, "worker-a", stop_a)
        deadline = time.monotonic() + 30
        while not db.session.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.lease_owner.like("worker-a/%"))):  # A claims the whole edition first
            assert time.monotonic() < deadline, "worker A never claimed"
            db.session.rollback()
            time.sleep(0.05)
        b = _run_sender(app, "worker-b", stop_b)
        deadline = time.monotonic() + 60
        while len({m.rcpt_tos[0] for m in smtp_server.messages}) < len(readers):
            assert time.monotonic() < deadline, "the edition was not sent"
            time.sleep(0.1)
        stop_a.set()
        stop_b.set()
        a.join(timeout=30)
        b.join(timeout=30)
    received = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    assert fault.hits >= 1, "A tried to renew and failed"
    assert "its lease could not be renewed in time" in caplog.text
    assert received == Counter({r.email: 1 for r in readers}), "each reader exactly once"
    by_worker = Counter(db.session.scalars(select(DeliveryAttempt.worker)))
    assert by_worker["worker-a"] > 0 and by_worker["worker-b"] > 0, by_worker


def test_the_outcome_writer_retries_a_failing_database_and_loses_nothing(app, topics,
                                                                         smtp_server):
    from tests.support.editions import send

    _smtp(app, smtp_server)
    readers = audience(30)
    edition = special_edition()
    with _Fault(db.engine, "INSERT INTO delivery_attempts", times=3) as fault:
        send(app, edition.id)
    assert fault.hits == 3
    db.session.expire_all()
    statuses = Counter(db.session.scalars(select(Delivery.status)
                                          .where(Delivery.edition_id == edition.id)))
    assert statuses == {"sent": len(readers)}
    assert len(smtp_server.messages) == len(readers), "nothing sent twice"
    assert db.session.scalar(select(DeliveryAttempt.id).limit(1)) is not None


def test_the_claimer_survives_a_database_that_goes_away(app, topics, smtp_server):
    from tests.support.editions import send

    _smtp(app, smtp_server, SEND_BATCH=10)
    readers = audience(40)
    edition = special_edition()
    with _Fault(db.engine, "SET status = 'claimed'", times=4) as fault:
        send(app, edition.id)
    assert fault.hits == 4
    assert Counter(m.rcpt_tos[0] for m in smtp_server.messages) == Counter(
        {r.email: 1 for r in readers})


def test_writer_and_lease_renewal_on_the_same_rows_never_deadlock(app, topics):
    """Both lock many deliveries at once; in one order (by id) they only ever wait."""
    from newsletter.wiring import mail_setup

    audience(150)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    with db.engine.connect() as conn:
        claimed = dq.claim(conn, worker="w", limit=150, lease_seconds=60,
                           now=utcnow() + timedelta(seconds=1))
    claim_id = claimed[0].claim_id
    errors: list[BaseException] = []
    engine = db.engine  # the threads have no app context

    def writer():
        # Outcomes for another claim: each write locks every row, and moves none.
        outcomes = [dq.SendOutcome(job.id, "released", attempted=False, claim_id="other")
                    for job in reversed(claimed)]
        try:
            with engine.connect() as conn:
                for _ in range(60):
                    dq.write_outcomes(conn, outcomes, worker="w", now=utcnow())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def renewer():
        try:
            with engine.connect() as conn:
                for _ in range(60):
                    dq.renew_leases(conn, [claim_id], lease_seconds=60, now=utcnow())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=renewer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db.session.expire_all()
    assert set(db.session.scalars(select(Delivery.lease_owner)
                                  .where(Delivery.edition_id == edition.id))) == {claim_id}


def test_a_due_retry_is_claimed_before_older_fresh_deliveries(app, topics):
    """10,000 fresh deliveries have waited longer than the retry; the next claim still
    takes the retry (claims take due retries first, oldest first)."""
    from newsletter.wiring import mail_setup

    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    variant = db.session.scalar(select(EditionVariant.id).where(
        EditionVariant.edition_id == edition.id, EditionVariant.key == "html"))
    now = utcnow()
    db.session.execute(insert(Reader), [
        {"email": f"bulk{i}@example.com", "email_hash": f"h{i}", "status": "active",
         "confirmed_at": now} for i in range(10_000)])
    ids = list(db.session.scalars(select(Reader.id).order_by(Reader.id)))
    retry_reader, fresh_readers = ids[-1], ids[:-1]
    long_ago = now - timedelta(minutes=10)
    db.session.execute(insert(Delivery), [
        {"edition_id": edition.id, "reader_id": r, "email": f"r{r}@example.com",
         "status": "queued", "attempts": 0, "next_attempt_at": long_ago,
         "created_at": long_ago, "variant_id": variant, "opens": 0, "machine_opens": 0,
         "clicks": 0} for r in fresh_readers])
    db.session.execute(insert(Delivery), [{
        "edition_id": edition.id, "reader_id": retry_reader, "email": "retry@example.com",
        "status": "deferred", "attempts": 1, "next_attempt_at": now + timedelta(seconds=1),
        "created_at": long_ago, "variant_id": variant, "opens": 0, "machine_opens": 0,
        "clicks": 0}])
    db.session.commit()
    with db.engine.connect() as conn:
        before_due = dq.claim(conn, worker="w", limit=200, lease_seconds=60, now=now)
        assert "retry@example.com" not in {job.email for job in before_due}, "not due yet"
        after_due = dq.claim(conn, worker="w", limit=200, lease_seconds=60,
                             now=now + timedelta(seconds=1, milliseconds=500))
    assert "retry@example.com" in {job.email for job in after_due}
    assert len(after_due) == 200


def test_a_lease_that_may_have_run_out_is_never_renewed_in_memory(app, topics):
    """A worker paused past its lease (a frozen VM) must not renew and send its backlog:
    another worker may have claimed those rows meanwhile."""
    from newsletter.wiring import make_sender

    sender = make_sender(app, worker="paused")
    now = utcnow()
    sender._held = {"paused/old": 3, "paused/fresh": 2}
    sender._lease_until = {"paused/old": now - timedelta(seconds=1),
                           "paused/fresh": now + timedelta(seconds=sender.settings.lease_seconds)}
    with db.engine.connect() as conn:
        sender._renew(conn)
    assert not sender.lease_ok("paused/old"), "given up, for good"
    assert sender.lease_ok("paused/fresh")


def test_a_dead_workers_claims_come_first_then_retries_then_fresh(app, topics):
    from newsletter.wiring import mail_setup

    readers = audience(6)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    now = utcnow()
    rows = list(db.session.scalars(select(Delivery).where(Delivery.edition_id == edition.id)
                                   .order_by(Delivery.id)))
    rows[4].status, rows[4].lease_owner = "claimed", "dead/1"
    rows[4].lease_until = now - timedelta(seconds=5)
    rows[5].status, rows[5].attempts = "deferred", 1
    rows[5].next_attempt_at = now - timedelta(seconds=1)
    db.session.commit()
    with db.engine.connect() as conn:
        first = dq.claim(conn, worker="w", limit=1, lease_seconds=60, now=now)
        second = dq.claim(conn, worker="w", limit=1, lease_seconds=60, now=now)
        third = dq.claim(conn, worker="w", limit=1, lease_seconds=60, now=now)
    assert [first[0].id, second[0].id] == [rows[4].id, rows[5].id]
    assert third[0].id in {r.id for r in rows[:4]}
    assert len(readers) == 6


def test_a_released_retry_stays_a_retry(app, topics):
    from newsletter.wiring import mail_setup

    audience(2)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    db.session.execute(update(Delivery).values(attempts=1, status="deferred",
                                               next_attempt_at=utcnow()))
    db.session.commit()
    with db.engine.connect() as conn:
        jobs = dq.claim(conn, worker="w", limit=2, lease_seconds=60,
                        now=utcnow() + timedelta(seconds=1))
        dq.write_outcomes(conn, [dq.SendOutcome(j.id, "released", attempted=False,
                                                claim_id=j.claim_id) for j in jobs],
                          worker="w", now=utcnow())
    db.session.expire_all()
    assert set(db.session.scalars(select(Delivery.status))) == {"deferred"}
