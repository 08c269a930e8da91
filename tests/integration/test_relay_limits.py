"""A relay's rate and hourly cap hold for every worker together (delivery.limits): slots
come from the database, so two throttles — two workers — never exceed them between them,
and a restart forgets nothing."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from newsletter.db import db, utcnow
from newsletter.delivery import service as sending
from newsletter.delivery.limits import SharedThrottle
from newsletter.delivery.models import Delivery, RelayMinute
from tests.support.editions import audience, special_edition
from tests.support.worker import log_tail, start_worker, stop_process, wait_for, worker_env


class FakeClock:
    """Unix time for the throttles, advanced only by their sleeps (shared by both)."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _throttle(app, clock, relay="relay#0", *, rate=0.0, hourly=0) -> SharedThrottle:
    return SharedThrottle(db.engine, relay, rate, hourly, clock=clock, sleep=clock.sleep)


def test_rate_spaces_messages_evenly(app):
    clock = FakeClock(1000.0)
    throttle = _throttle(app, clock, rate=10)
    for _ in range(5):
        assert throttle.wait()
    assert clock.now == pytest.approx(1000.4)


def test_two_workers_share_one_rate(app):
    clock = FakeClock()
    first, second = _throttle(app, clock, rate=10), _throttle(app, clock, rate=10)
    times = []
    for _ in range(20):
        for throttle in (first, second):
            assert throttle.wait()
            times.append(clock.now)
    # 40 messages at 10 a second, whoever sends them: at least 3.9 s from the first to the
    # last. Slots are 0.1 s apart and one is used less than half a slot late, so no
    # second holds more than 11 — never the 20 two workers alone would send.
    assert times[-1] - times[0] >= 3.9 - 1e-6
    for start in times:
        assert sum(1 for t in times if start <= t < start + 1.0) <= 10 + 1


def test_hourly_cap_waits_for_the_window(app):
    clock = FakeClock(1000.0)
    throttle = _throttle(app, clock, hourly=3)
    for _ in range(3):
        throttle.wait()
    assert clock.slept == []
    throttle.wait()
    assert clock.now >= 1000.0 + 3600


def test_a_long_wait_is_refused_with_a_hint(app):
    clock = FakeClock(1000.0)
    throttle = _throttle(app, clock, hourly=1)
    assert throttle.wait(max_wait=30)
    assert not throttle.wait(max_wait=30)
    # The cap counts whole minutes: room comes back within a minute after the hour.
    assert 3600 <= throttle.delay_hint <= 3660
    assert clock.slept == [], "it did not sleep"


def test_the_hourly_cap_is_shared_and_survives_a_restart(app):
    clock = FakeClock()
    first, second = _throttle(app, clock, hourly=5), _throttle(app, clock, hourly=5)
    allowed = sum(t.wait(max_wait=10) for t in (first, second, first, second, first,
                                                 second, first, second))
    assert allowed == 5
    restarted = _throttle(app, clock, hourly=5)  # a new process: no memory of its own
    clock.now += 1800
    assert not restarted.wait(max_wait=10)
    clock.now += 1900  # past the hour (and its last minute)
    assert restarted.wait(max_wait=10)
    other_relay = _throttle(app, clock, relay="other#1", hourly=5)
    assert other_relay.wait(max_wait=10), "each relay has its own cap"


def test_a_large_hourly_cap_is_taken_one_message_per_permit(app):
    """Permits are reserved ten at a time for a large cap; each is used, none wasted."""
    clock = FakeClock()
    throttle = _throttle(app, clock, hourly=1000)
    assert all(throttle.wait(max_wait=10) for _ in range(50))
    assert clock.slept == []
    counted = db.session.scalar(select(func.sum(RelayMinute.sent)))
    assert counted == 50, "the cap is charged exactly what was sent"


def _arrivals(server):
    stamps: list[float] = []

    def reply(received):
        stamps.append(time.time())
        return None

    server.reply = reply
    return stamps


@pytest.mark.parametrize("n_workers", [2])
def test_two_worker_processes_never_exceed_the_relay_rate_together(app, topics, smtp_server,
                                                                   tmp_path, n_workers):
    from newsletter.wiring import mail_setup

    rate = 10
    readers = audience(60)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    stamps = _arrivals(smtp_server)
    env = worker_env(app.config, smtp_url=f"{smtp_server.url}?rate={rate}",
                     instance_dir=tmp_path / "w", SEND_CONNECTIONS=2, SEND_BATCH=10)
    workers = []
    try:
        workers = [start_worker(env, tmp_path / f"w{i}.log") for i in range(n_workers)]
        wait_for(lambda: len(stamps) >= len(readers) or any(w.poll() is not None
                                                             for w in workers),
                 timeout=60, what="the edition to be sent")
        assert all(w.poll() is None for w in workers), log_tail(tmp_path / "w0.log")
    finally:
        for worker in workers:
            stop_process(worker)
    stamps.sort()
    assert Counter(m.rcpt_tos[0] for m in smtp_server.messages) == Counter(
        {r.email: 1 for r in readers})
    # Counted at the server, over every 2-second stretch: 2 × rate, +1 for a slot used
    # late at the stretch's edge, +2 for arrival jitter (a message delayed on its way
    # lands beside the next). Two workers each keeping the rate alone would send 40.
    busiest = max(sum(1 for t in stamps if start <= t < start + 2.0) for start in stamps)
    print(f"\n[{db.engine.dialect.name}] {len(stamps)} messages in "
          f"{stamps[-1] - stamps[0]:.1f} s, busiest 2 s: {busiest}")
    assert busiest <= 2 * rate + 3
    assert stamps[-1] - stamps[0] >= (len(readers) - 1) / rate - 0.5


def test_the_hourly_cap_holds_across_a_worker_restart(app, topics, smtp_server, tmp_path):
    from newsletter.wiring import mail_setup

    readers = audience(20)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    env = worker_env(app.config, smtp_url=f"{smtp_server.url}?hourly=8",
                     instance_dir=tmp_path / "w", SEND_CONNECTIONS=2, SEND_BATCH=5)
    first = second = None
    try:
        first = start_worker(env, tmp_path / "first.log")
        wait_for(lambda: len(smtp_server.messages) >= 8, timeout=30, what="8 messages")
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=15) == 0, log_tail(tmp_path / "first.log")
        # The first worker put the rest back for when the cap has room (an hour); make it
        # due now, so only the cap itself can hold the second worker back.
        db.session.execute(update(Delivery).where(Delivery.status == "queued")
                           .values(next_attempt_at=utcnow()))
        db.session.commit()
        second = start_worker(env, tmp_path / "second.log")

        def held_back() -> bool:
            # Evidence that the new worker claimed and the cap sent the rest back for later.
            db.session.rollback()
            return db.session.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.status == "queued",
                Delivery.next_attempt_at > utcnow() + timedelta(minutes=30))) == len(readers) - 8

        wait_for(held_back, timeout=30, what="the second worker to be held back by the cap")
        assert second.poll() is None, log_tail(tmp_path / "second.log")
    finally:
        stop_process(first)
        stop_process(second)
    assert len(smtp_server.messages) == 8, "the cap counts what the first worker sent"
    db.session.expire_all()
    statuses = Counter(db.session.scalars(select(Delivery.status)
                                          .where(Delivery.edition_id == edition.id)))
    assert statuses["sent"] == 8
    assert statuses["queued"] == len(readers) - 8, statuses
