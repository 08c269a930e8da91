"""Relay configuration and per-relay throttling."""

from __future__ import annotations

import pytest

from newsletter.delivery.relays import Throttle, parse_relays


def config(url: str, transport: str = "smtp") -> dict:
    return {"MAIL_TRANSPORT": transport, "SMTP_URL": url, "SEND_CONNECTIONS": 4}


def test_several_weighted_relays():
    relays = parse_relays(config(
        "smtp://a.example:587?starttls=true&weight=3&connections=8&rate=100&hourly=50000,"
        " smtps://u:p@b.example?weight=1"))
    assert [(r.weight, r.connections, r.rate, r.hourly) for r in relays] == [
        (3.0, 8, 100.0, 50000), (1.0, 4, 0.0, 0)]
    assert relays[0].config["SMTP_URL"] == "smtp://a.example:587?starttls=true"
    assert relays[1].config["SMTP_URL"] == "smtps://u:p@b.example"


def test_file_transport_is_one_relay():
    [relay] = parse_relays(config("", transport="file"))
    assert (relay.name, relay.connections) == ("file", 1)


@pytest.mark.parametrize("url,message", [
    ("smtp://a.example?weight=x", "weight must be a number"),
    ("smtp://a.example?connections=0", "connections must be at least 1"),
    ("smtp://a.example?weight=0", "at least one relay needs a weight"),
    (" , ", "names no relay"),
])
def test_bad_relay_options(url, message):
    with pytest.raises(ValueError, match=message):
        parse_relays(config(url))


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_spaces_messages_evenly():
    clock = FakeClock()
    throttle = Throttle(rate=10, hourly=0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert throttle.wait()
    assert clock.now == pytest.approx(1000.4)


def test_hourly_cap_waits_for_the_window():
    clock = FakeClock()
    throttle = Throttle(rate=0, hourly=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        throttle.wait()
    assert clock.slept == []
    throttle.wait()
    assert clock.now >= 1000.0 + 3600


def test_a_long_wait_is_refused_with_a_hint():
    clock = FakeClock()
    throttle = Throttle(rate=0, hourly=1, clock=clock, sleep=clock.sleep)
    assert throttle.wait(max_wait=30)
    assert not throttle.wait(max_wait=30)
    assert throttle.delay_hint == pytest.approx(3600)
    assert clock.slept == [], "it did not sleep"
