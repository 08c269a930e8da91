"""The relay circuit breaker (``mail.breaker``) on a clock the test moves."""

from __future__ import annotations

import logging

from newsletter.mail.breaker import MAX_DELAY, PROBE_TIMEOUT, THRESHOLD, RelayBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(records=None):
    clock = Clock()
    record = (lambda *args: records.append(args)) if records is not None else None
    return RelayBreaker("relay:25#0", clock=clock, record=record), clock


def test_a_relay_refusing_for_a_minute_is_dialled_about_ten_times_not_once_a_slot(caplog):
    """A sender with 8 connections asks to send every 10 ms; the relay refuses for 60 s."""
    breaker, clock = make()
    dials = 0
    caplog.set_level(logging.WARNING, logger="newsletter.mail.breaker")
    while clock.now < 60:
        if breaker.admit() is None:
            dials += 1
            breaker.failed("cannot connect to relay:25: [Errno 111] Connection refused")
        clock.now += 0.01
    # THRESHOLD failures, then probes after 1, 2, 4, 8, 16, 32 s (and at most one more).
    assert THRESHOLD + 5 <= dials <= THRESHOLD + 7
    assert breaker.is_open
    # Back: the next probe closes it, and every later send goes at once.
    clock.now += MAX_DELAY
    assert breaker.admit() is None
    breaker.succeeded()
    assert not breaker.is_open and breaker.admit() is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, "one line per change of state, not one per failure"
    assert "is down" in messages[0] and "is back" in messages[1]


def test_the_backoff_doubles_to_sixty_seconds_and_only_one_caller_probes():
    breaker, clock = make()
    for _ in range(THRESHOLD):
        breaker.failed("refused")
    delays = []
    for _ in range(9):
        clock.now += 1000
        assert breaker.admit() is None  # the probe
        assert breaker.admit() is not None, "a second caller waits while one probes"
        delays.append(breaker.failed("refused"))
    assert delays == [2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_fewer_failures_than_the_threshold_or_a_reply_keep_it_closed():
    breaker, _ = make()
    for _ in range(THRESHOLD - 1):
        assert breaker.failed("refused") == 0.0
    breaker.succeeded()  # any reply, even a 5xx about one message
    for _ in range(THRESHOLD - 1):
        breaker.failed("refused")
    assert not breaker.is_open


def test_an_abandoned_or_lost_probe_does_not_leave_it_stuck():
    breaker, clock = make()
    for _ in range(THRESHOLD):
        breaker.failed("refused")
    clock.now += 2
    assert breaker.admit() is None
    breaker.abandon()  # the prober had nothing to send
    assert breaker.admit() is None
    # This one never reports (its thread died): after PROBE_TIMEOUT another may probe.
    clock.now += PROBE_TIMEOUT + 1
    assert breaker.admit() is None


def test_each_change_and_each_failed_probe_is_recorded_for_the_dashboard():
    records = []
    breaker, clock = make(records)
    for _ in range(THRESHOLD):
        breaker.failed("refused")
    clock.now += 2
    breaker.admit()
    breaker.failed("still refused")
    clock.now += 5
    breaker.admit()
    breaker.succeeded()
    assert [(r[0], r[1] is not None, r[3]) for r in records] == [
        ("relay:25#0", True, "refused"), ("relay:25#0", True, "still refused"),
        ("relay:25#0", False, None)]
