"""Relay configuration and per-relay throttling."""

from __future__ import annotations

import pytest

from newsletter.delivery.relays import parse_relays


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
