"""Relay configuration and per-relay throttling."""

from __future__ import annotations

import pytest

from newsletter.mail.relays import account_relay, parse_relays


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


@pytest.mark.parametrize("url", [
    "smtp://relay.example:2525?connections=2",
    "smtp://relay.example:2525?rate=20",
    "smtp://relay.example:2525?weight=0, smtp://relay.example:2525?weight=2&hourly=100",
])
def test_account_mail_takes_its_relay_from_the_same_parser(url):
    """Sending options in the URL (connections, rate, weights) are list mail's; account
    mail and test sends get the first relay list mail also uses, with them stripped."""
    relay = account_relay(config(url))
    assert relay.config["SMTP_URL"] == "smtp://relay.example:2525"
    assert relay.weight > 0


@pytest.mark.parametrize("url,message", [
    ("smtp://a.example?starttls=maybe", "starttls must be true or false"),
    ("smtp://a.example?retries=3", "unknown SMTP URL option 'retries'"),
    ("smtp://a.example?timeout=0", "timeout must be seconds"),
    ("smtp://a.example, http://b.example", "must start with smtp://"),
])
def test_a_wrong_connection_option_of_any_relay_is_refused_by_the_one_parser(url, message):
    with pytest.raises(ValueError, match=message):
        parse_relays(config(url))


@pytest.mark.parametrize("url", ["smtp://a.example?retries=3", "smtp://a.example?rate=fast"])
def test_a_wrong_relay_option_refuses_to_start_in_one_line(url, monkeypatch):
    from newsletter import create_app
    from newsletter.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        create_app({"TESTING": True, "MAIL_TRANSPORT": "smtp", "SMTP_URL": url,
                    "DATABASE_URL": "sqlite://"})
    assert str(refused.value).startswith("NEWSLETTER_SMTP_URL: ")
    assert "\n" not in str(refused.value)
