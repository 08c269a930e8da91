"""Where messages go: one or more relays, each with its connections, rate and hourly cap.

The one parser of ``NEWSLETTER_SMTP_URL``, for every sender (list mail, account mail, test
sends, the setup check). It may list several relays separated by commas; each URL may
carry the sending options ``weight`` (share of list mail, default 1), ``connections``
(parallel SMTP connections, default ``NEWSLETTER_SEND_CONNECTIONS``), ``rate`` (messages
per second, 0 = unlimited) and ``hourly`` (cap over any sliding hour, 0 = none) — rate and
cap hold for every worker together (``delivery.limits``) — beside the connection options
``starttls`` and ``timeout`` (``transports.parse_smtp_url``). Every option of every relay is
checked here, so a wrong one refuses to start (``wiring``) instead of failing each send.
Account mail and test sends go through :func:`account_relay`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from newsletter.mail.transports import parse_smtp_url

_SENDING_OPTIONS = {"weight", "connections", "rate", "hourly"}


@dataclass(frozen=True)
class RelayConfig:
    name: str
    config: dict[str, Any]        # what ``make_transport`` needs for this relay
    weight: float = 1.0
    connections: int = 4
    rate: float = 0.0
    hourly: int = 0


def _number(key: str, value: str, low: float, cast=float):
    try:
        number = cast(value)
    except ValueError:
        raise ValueError(f"SMTP URL option {key} must be a number, got {value!r}") from None
    if number < low:
        raise ValueError(f"SMTP URL option {key} must be at least {low}, got {value!r}")
    return number


def parse_relays(config: dict[str, Any]) -> list[RelayConfig]:
    """The relays the sender uses; the file and console transports are one relay each."""
    default_connections = int(config.get("SEND_CONNECTIONS", 4))
    if config["MAIL_TRANSPORT"] != "smtp":
        return [RelayConfig(name=config["MAIL_TRANSPORT"], config=dict(config), connections=1)]
    relays = []
    for index, url in enumerate(u.strip() for u in config["SMTP_URL"].split(",")):
        if not url:
            continue
        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        sending = {k: options.pop(k) for k in list(options) if k in _SENDING_OPTIONS}
        clean = urlunsplit(parts._replace(query=urlencode(options)))
        parse_smtp_url(clean)  # the connection options: raises on a wrong one
        relays.append(RelayConfig(
            name=f"{parts.hostname}:{parts.port or ''}#{index}",
            config={**config, "SMTP_URL": clean},
            weight=_number("weight", sending.get("weight", "1"), 0.0),
            connections=_number("connections", sending.get("connections",
                                                           str(default_connections)), 1, int),
            rate=_number("rate", sending.get("rate", "0"), 0.0),
            hourly=_number("hourly", sending.get("hourly", "0"), 0, int),
        ))
    if not relays:
        raise ValueError("NEWSLETTER_SMTP_URL names no relay")
    if not any(relay.weight > 0 for relay in relays):
        raise ValueError("at least one relay needs a weight above 0")
    return relays


def account_relay(config: dict[str, Any]) -> RelayConfig:
    """The relay of account mail and test sends: the first one list mail also uses (weight
    above 0), with the options it shares with list mail stripped like theirs."""
    return next(relay for relay in parse_relays(config) if relay.weight > 0)
