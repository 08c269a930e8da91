"""The sender's guarantee under failure: a worker killed mid-send, and a relay that misbehaves.

The sender promises (newsletter/delivery/sender.py): nothing lost, and the only duplicates
are the messages a relay accepted whose outcome was not yet committed — at most one per
SMTP connection. These tests check it against a real SMTP server on loopback, a real
``newsletter worker`` process killed with SIGKILL, and the test database (SQLite or the
PostgreSQL named by NEWSLETTER_TEST_DATABASE_URL).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from newsletter.db import db
from newsletter.delivery import service as sending
from newsletter.delivery.models import BounceEvent, Delivery, DeliveryAttempt
from newsletter.editions.models import Edition
from tests.support.editions import audience, send, special_edition
from tests.support.worker import (
    DROP,
    DeliveriesLock,
    enable_drops,
    log_tail,
    start_worker,
    stop_process,
    wait_for,
    worker_env,
)

CONNECTIONS = 4


def _statuses(edition_id: int) -> dict[str, str]:
    """email → delivery status, as committed now (the test's own transaction is ended)."""
    db.session.rollback()
    return dict(db.session.execute(select(Delivery.email, Delivery.status)
                                   .where(Delivery.edition_id == edition_id)).all())


def _edition_status(edition_id: int) -> str:
    db.session.rollback()
    return db.session.scalar(select(Edition.status).where(Edition.id == edition_id))


@pytest.mark.parametrize("stalled", [False, True], ids=["kill", "kill-while-writes-stall"])
def test_worker_killed_mid_send_loses_nothing_and_duplicates_at_most_one_per_connection(
        app, topics, smtp_server, tmp_path, stalled):
    """SIGKILL a worker a third of the way through, then let a second worker finish.

    ``kill``: the kill lands while the relay is accepting one message (so that one is always
    accepted and unrecorded). ``kill-while-writes-stall``: the deliveries table is locked
    first, so each connection ends up holding one accepted message whose outcome cannot be
    committed — the worst case the sender allows — and then the worker is killed.
    """
    from newsletter.wiring import mail_setup

    n_readers = 300
    readers = audience(n_readers)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    db.session.commit()
    everyone = {r.email for r in readers}

    kill_at = n_readers // 3
    victim: dict[str, int] = {}
    reached = threading.Event()
    lock = DeliveriesLock(app.config["DATABASE_URL"])

    def reply(received):
        # Runs in the server's event-loop thread: the sleep slows the whole server, and
        # whatever happens here happens while this message is accepted but not answered.
        time.sleep(0.008)
        if "pid" in victim and not reached.is_set() and len(smtp_server.messages) + 1 >= kill_at:
            if stalled:
                lock.acquire()
            else:
                os.kill(victim["pid"], signal.SIGKILL)
            reached.set()
        return None

    smtp_server.reply = reply
    # Batches of 50 keep every claimed job well inside the 3 s lease while it waits in the
    # worker's memory (see test_jobs_waiting_longer_than_their_lease_are_not_sent_twice).
    env = worker_env(app.config, smtp_url=smtp_server.url, instance_dir=tmp_path / "worker",
                     SEND_CONNECTIONS=CONNECTIONS, LEASE_SECONDS=3, SEND_BATCH=50)
    first_log, second_log = tmp_path / "worker1.log", tmp_path / "worker2.log"
    first = second = None
    try:
        first = start_worker(env, first_log)
        victim["pid"] = first.pid
        wait_for(lambda: reached.is_set() or first.poll() is not None, timeout=60,
                 what="the first worker to send a third of the edition")
        assert reached.is_set(), f"the worker exited on its own:\n{log_tail(first_log)}"
        if stalled:
            # Every connection is blocked once the relay hears nothing more.
            _wait_until_quiet(smtp_server, quiet=0.5, timeout=10)
            first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        lock.release()
        # Content already in the server's buffers may still be accepted; let it settle.
        _wait_until_quiet(smtp_server, quiet=0.5, timeout=5)

        accepted_at_kill = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
        statuses_at_kill = _statuses(edition.id)
        sent_at_kill = {e for e, s in statuses_at_kill.items() if s == "sent"}
        server_at_kill = sum(accepted_at_kill.values())
        in_flight = server_at_kill - len(sent_at_kill)
        print(f"\n[{db.engine.dialect.name}, {'stalled' if stalled else 'plain'}] at the kill: "
              f"server accepted {server_at_kill}, database sent {len(sent_at_kill)}, "
              f"in flight {in_flight}; rows {dict(Counter(statuses_at_kill.values()))}")
        assert 0 < len(sent_at_kill) < n_readers, "killed in the middle of the send"
        assert sent_at_kill <= set(accepted_at_kill), "sent means the relay accepted it"
        assert max(accepted_at_kill.values()) == 1, "no duplicate before the kill"
        if stalled:
            assert in_flight == CONNECTIONS, "one message held per blocked connection"
        unrecorded = set(accepted_at_kill) - sent_at_kill

        second = start_worker(env, second_log)
        wait_for(lambda: {m.rcpt_tos[0] for m in smtp_server.messages} >= everyone
                 or second.poll() is not None, timeout=60,
                 what="every reader to receive the edition")
        assert second.poll() is None, f"the second worker died:\n{log_tail(second_log)}"
        wait_for(lambda: _edition_status(edition.id) == "sent", timeout=30,
                 what="the edition to be marked sent")
        second.send_signal(signal.SIGTERM)
        try:
            exit_code = second.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker ignored SIGTERM:\n{log_tail(second_log)}")
        assert exit_code == 0, log_tail(second_log)
    finally:
        stop_process(first)
        stop_process(second)
        lock.release()

    received = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    duplicates = sum(received.values()) - len(received)
    print(f"[{db.engine.dialect.name}, {'stalled' if stalled else 'plain'}] received "
          f"{sum(received.values())} messages for {len(received)} readers: "
          f"{duplicates} duplicates")
    assert set(received) == everyone, "nothing lost"
    assert duplicates <= CONNECTIONS, "at most one accepted-but-unrecorded message per connection"
    assert {r for r, n in received.items() if n > 1} == unrecorded, \
        "exactly the messages accepted but not recorded at the kill went out again"
    assert duplicates == in_flight
    assert Counter(_statuses(edition.id).values()) == {"sent": n_readers}
    assert _edition_status(edition.id) == "sent"


def _wait_until_quiet(server, *, quiet: float, timeout: float) -> None:
    """Until the server has accepted nothing new for ``quiet`` seconds (at most ``timeout``)."""
    deadline = time.monotonic() + timeout
    last, since = len(server.messages), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len(server.messages) != last:
            last, since = len(server.messages), time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise AssertionError(f"the SMTP server kept receiving for {timeout:g} s")


# -- the flaky relay --------------------------------------------------------------------------

def _fate(address: str) -> str:
    """What the relay does with this address: fixed by a hash, so every run is the same."""
    bucket = int(hashlib.sha256(address.encode()).hexdigest(), 16) % 100
    if bucket < 10:
        return "451"     # try later, on the first attempt only
    if bucket < 12:
        return "550"     # no such user, always
    if bucket == 12:
        return "drop"    # connection dropped after the content, on the first attempt only
    return "ok"


@pytest.fixture
def flaky_config(app_config, smtp_server):
    app_config.update(MAIL_TRANSPORT="smtp", SMTP_URL=smtp_server.url,
                      SEND_CONNECTIONS=CONNECTIONS, RETRY_BASE_SECONDS=0)
    return app_config


def test_flaky_relay_retries_transient_failures_and_bounces_permanent_ones(
        flaky_config, app, topics, smtp_server):
    from newsletter.subscribers.service import is_suppressed
    from newsletter.wiring import reader_services

    readers = audience(400)
    fate = {r.email: _fate(r.email) for r in readers}
    by_fate: dict[str, set[str]] = {}
    for address, kind in fate.items():
        by_fate.setdefault(kind, set()).add(address)
    assert len(by_fate["451"]) >= 25 and len(by_fate["550"]) >= 4 and len(by_fate["drop"]) >= 2
    tries: Counter[str] = Counter()

    def reply(received):
        rcpt = received.rcpt_tos[0]
        tries[rcpt] += 1
        kind = fate.get(rcpt)
        if kind == "451" and tries[rcpt] == 1:
            return "451 4.3.0 try later"
        if kind == "550":
            return "550 5.1.1 no such user"
        if kind == "drop" and tries[rcpt] == 1:
            return DROP
        return None

    smtp_server.reply = reply
    enable_drops(smtp_server)
    edition = special_edition()
    for _ in range(10):  # each run sends what is due; retries are due at once (base 0 s)
        send(app, edition.id)
        if not {"queued", "claimed", "deferred"} & set(_statuses(edition.id).values()):
            break

    statuses = _statuses(edition.id)
    print(f"\n[{db.engine.dialect.name}] fates {({k: len(v) for k, v in by_fate.items()})}, "
          f"statuses {dict(Counter(statuses.values()))}, server tries {sum(tries.values())}")
    expected = {a: "bounced" if kind == "550" else "sent" for a, kind in fate.items()}
    assert statuses == expected, "every delivery ends sent or bounced"

    accepted = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    assert accepted == Counter({a for a, kind in fate.items() if kind != "550"}), \
        "one accepted message per reader, none for the unknown users"
    expected_tries = {"451": 2, "drop": 2, "550": 1, "ok": 1}
    assert {a: tries[a] for a in fate} == {a: expected_tries[k] for a, k in fate.items()}

    rows = db.session.execute(
        select(Delivery.email, Delivery.attempts, DeliveryAttempt.outcome, DeliveryAttempt.code,
               DeliveryAttempt.message)
        .join(DeliveryAttempt, DeliveryAttempt.delivery_id == Delivery.id)
        .where(Delivery.edition_id == edition.id).order_by(DeliveryAttempt.id)).all()
    attempts: dict[str, list[tuple]] = {}
    counted: dict[str, int] = {}
    for email, n, outcome, code, message in rows:
        attempts.setdefault(email, []).append((outcome, code, message))
        counted[email] = n
    assert counted == {a: expected_tries[k] for a, k in fate.items()}, \
        "deliveries.attempts counts every try"
    for address in by_fate["451"]:
        first, second = attempts[address]
        assert first == ("deferred", 451, "451 DATA: 4.3.0 try later")
        assert second[:2] == ("sent", 250)
    for address in by_fate["drop"]:
        first, second = attempts[address]
        assert first[:2] == ("deferred", None) and "connection lost" in first[2], first
        assert second[:2] == ("sent", 250)
    for address in by_fate["550"]:
        assert attempts[address] == [("bounced", 550, "550 DATA: 5.1.1 no such user")]
        assert is_suppressed(reader_services(), address)
    for address in by_fate["ok"]:
        assert [a[:2] for a in attempts[address]] == [("sent", 250)]
    bounce_events = db.session.scalar(select(func.count(BounceEvent.id)))
    assert bounce_events == len(by_fate["550"])
    assert _edition_status(edition.id) == "sent"


def test_jobs_waiting_longer_than_their_lease_are_not_sent_twice(flaky_config, app, topics,
                                                                  smtp_server):
    """One worker, no crash: 200 jobs claimed at once wait in memory for longer than the
    lease (a slow or rate-limited relay); none of them may go out twice."""
    app.config["LEASE_SECONDS"] = 1
    audience(300)
    smtp_server.reply = lambda received: time.sleep(0.01)  # at most 100 messages/s
    edition = special_edition()
    progress = send(app, edition.id)
    received = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    print(f"\n[{db.engine.dialect.name}] lease 1 s: {sum(received.values())} messages for "
          f"{len(received)} readers, progress.sent {progress.sent}")
    assert len(received) == 300
    assert sum(received.values()) == 300, "nothing sent twice"


def test_worker_killed_after_a_5xx_before_recording_it_tries_once_more_and_bounces_once(
        app, topics, smtp_server, tmp_path):
    """The other side of the crash window: the relay refused (550) and the worker died
    before the refusal was committed. The delivery is tried once more (a second 550) and
    recorded once: one bounce event, one suppression, the delivery bounced."""
    from newsletter.subscribers.service import is_suppressed
    from newsletter.wiring import mail_setup, reader_services

    readers = audience(12)
    victim = readers[5].email
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    db.session.commit()
    lock = DeliveriesLock(app.config["DATABASE_URL"])
    refused = threading.Event()
    tries: Counter[str] = Counter()

    def reply(received):
        rcpt = received.rcpt_tos[0]
        tries[rcpt] += 1
        if rcpt != victim:
            return None
        if not refused.is_set():
            lock.acquire()  # the refusal cannot be committed until the worker is dead
            refused.set()
        return "550 5.1.1 no such user"

    smtp_server.reply = reply
    env = worker_env(app.config, smtp_url=smtp_server.url, instance_dir=tmp_path / "worker",
                     SEND_CONNECTIONS=1, LEASE_SECONDS=2, SEND_BATCH=20)
    first = second = None
    try:
        first = start_worker(env, tmp_path / "first.log")
        wait_for(lambda: refused.is_set() or first.poll() is not None, timeout=60,
                 what="the relay to refuse the victim")
        assert refused.is_set(), log_tail(tmp_path / "first.log")
        time.sleep(0.3)  # the worker now waits to write the 550
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        lock.release()
        assert _statuses(edition.id)[victim] == "claimed", "the refusal was never recorded"
        second = start_worker(env, tmp_path / "second.log")
        wait_for(lambda: _edition_status(edition.id) == "sent" or second.poll() is not None,
                 timeout=60, what="the edition to be finished")
        assert second.poll() is None, log_tail(tmp_path / "second.log")
    finally:
        stop_process(first)
        stop_process(second)
        lock.release()
    events = len(db.session.scalars(select(BounceEvent.id)).all())
    print(f"\n[{db.engine.dialect.name}] 5xx then kill: the relay saw the refused delivery "
          f"{tries[victim]} times; bounce events {events}")
    assert tries[victim] == 2, "one extra attempt after the crash"
    statuses = _statuses(edition.id)
    assert statuses[victim] == "bounced"
    assert Counter(statuses.values()) == {"sent": len(readers) - 1, "bounced": 1}
    db.session.expire_all()
    bounces = db.session.scalars(select(BounceEvent.kind)).all()
    assert bounces == ["hard_bounce"], "recorded once"
    recorded = db.session.scalars(select(DeliveryAttempt.outcome).join(
        Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(Delivery.email == victim)).all()
    assert recorded == ["bounced"], "only the attempt whose outcome was committed is recorded"
    assert is_suppressed(reader_services(), victim)
    received = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    assert received == Counter({r.email: 1 for r in readers if r.email != victim})
