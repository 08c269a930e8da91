"""What every webhook provider is behind (:class:`WebhookProvider`) and the helpers they share.

Contract, for every provider's :meth:`WebhookProvider.parse` (and the ``*_events`` function it
calls):

* Nothing is read before the request is authenticated. :class:`SignatureError` (the view answers
  401) means the request is not proven to come from the provider: missing or wrong signature or
  credentials, a stale timestamp, an SNS topic we did not subscribe to, a certificate or
  subscription URL outside AWS, or a body too broken to even find its signature in.
  :class:`PayloadError` (400) means it *is* authenticated but cannot be read.
* Event types we do not act on come back with kind ``"ignored"``, not as errors, so the provider
  is answered 2xx and stops retrying.
* ``event_id`` is the same each time the provider delivers the same event (retries included), so
  the caller can store it and drop replays. Mailgun signs only ``timestamp + token``, not the
  event: the caller should also refuse a Mailgun ``signature.token`` it has seen before.
* No provider does network I/O: the SNS signing certificate comes through an injected
  :class:`CertificateFetcher`, and the SNS ``SubscribeURL`` is returned for the caller to GET.
  Errors raised by the fetcher propagate unchanged (a transient outage, not a forgery: answer 5xx
  so SNS retries).
* A ``ValueError`` that is not a :class:`PayloadError` is our own misconfiguration (an empty
  secret, an unreadable SendGrid key): a 500, never the sender's fault.

The events are :class:`newsletter.delivery.events.Event`, with ``source`` = the provider's name,
``occurred_at`` aware and in UTC, and ``detail`` one line of at most 500 characters; their kinds
are described there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from newsletter.delivery.events import DETAIL_MAX, REPORTED_TOKEN_RE, Event
from newsletter.errors import PayloadError, SignatureError
from newsletter.validation import load_json

__all__ = [
    "HEADER_FIELD",
    "METADATA_FIELD",
    "CertificateFetcher",
    "PayloadError",
    "SignatureError",
    "WebhookProvider",
    "WebhookResult",
]

METADATA_FIELD = "nl_token"
HEADER_FIELD = "x-newsletter-token"




class CertificateFetcher(Protocol):
    def fetch(self, url: str) -> bytes:
        """Return the PEM at ``url``; only called for URLs that passed ``ses.is_sns_url``."""
        ...


@dataclass(frozen=True)
class WebhookResult:
    """What one authenticated webhook request says.

    ``subscribe_url`` is set only for an SNS SubscriptionConfirmation: the caller GETs it to
    confirm the subscription, and there are no events. ``nonce`` is the one-time token of a
    signature that does not cover the events (Mailgun's): the caller must refuse one it has
    seen with other events (``events.first_use_of_signature``).
    """

    events: list[Event] = field(default_factory=list)
    subscribe_url: str | None = None
    nonce: str | None = None


class WebhookProvider(Protocol):
    """One email provider's webhook, built with its secrets (see ``build_providers``)."""

    name: str

    def parse(self, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """Verify the request (raw ``body`` and its ``headers``, looked up case-insensitively
        as Flask's ``request.headers`` does) and read it; raises :class:`SignatureError` or
        :class:`PayloadError` as the module contract says."""
        ...


# --- small helpers -------------------------------------------------------------------------------


def reported_token(value: Any) -> str | None:
    if isinstance(value, str) and REPORTED_TOKEN_RE.fullmatch(value.strip()):
        return value.strip()
    return None


def recipient_address(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    address = value.strip()
    # SES may copy a DSN's Final-Recipient, occasionally with a display name around it.
    if address.endswith(">") and "<" in address:
        address = address[address.rindex("<") + 1 : -1].strip()
    return address.lower() or None


def one_line(*parts: Any) -> str:
    text = " ".join(str(p) for p in parts if p not in (None, ""))
    return " ".join(text.split())[:DETAIL_MAX]


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime:
    if moment is None:
        return utc_now()
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return aware(moment).astimezone(UTC)


def epoch_time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def parse_json(body: bytes, error: type[Exception]) -> Any:
    try:
        return load_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error("body is not JSON") from exc


def check_fresh(timestamp: Any, max_age: int, moment: datetime | None) -> None:
    """Raise :class:`SignatureError` unless ``timestamp`` (epoch seconds) is within
    ``max_age`` seconds of ``moment`` (default: now)."""
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not isinstance(timestamp, str) or not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureError("timestamp is missing or not a number")
    age = aware(moment).timestamp() - int(timestamp)
    if abs(age) > max_age:
        raise SignatureError(f"timestamp is {int(age)} s from now, outside ±{max_age} s")
