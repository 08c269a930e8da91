"""Mailgun JSON webhooks, signed with the account's webhook signing key.

The signature covers ``timestamp + token`` only, not the event: see the contract in
:mod:`newsletter.delivery.providers.base`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from newsletter.delivery.events import (
    COMPLAINT,
    DELIVERED,
    HARD_BOUNCE,
    IGNORED,
    SOFT_BOUNCE,
    Event,
)
from newsletter.delivery.providers.base import (
    METADATA_FIELD,
    PayloadError,
    SignatureError,
    WebhookResult,
    check_fresh,
    epoch_time,
    one_line,
    recipient_address,
    reported_token,
    utc_now,
)
from newsletter.validation import load_json

__all__ = ["MailgunProvider", "mailgun_events"]

_MAILGUN_KINDS = {"complained": COMPLAINT, "delivered": DELIVERED}


class MailgunProvider:
    """``/hooks/mailgun``, for the webhook ``signing_key``; a request older (or newer) than
    ``max_age`` seconds is refused."""

    name = "mailgun"

    def __init__(self, *, signing_key: str, max_age: int = 300) -> None:
        self.signing_key = signing_key
        self.max_age = max_age

    def parse(self, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """See :func:`mailgun_events`; the signature is in the body, no header is read.
        The signature's token comes back as the result's ``nonce``."""
        events, nonce = _verified_events(body, signing_key=self.signing_key,
                                         max_age=self.max_age)
        return WebhookResult(events, nonce=nonce)


def mailgun_events(
    body: bytes, *, signing_key: str, max_age: int = 300, now: datetime | None = None
) -> list[Event]:
    """The events of a verified webhook; see :func:`_verified_events`."""
    return _verified_events(body, signing_key=signing_key, max_age=max_age, now=now)[0]


def _verified_events(
    body: bytes, *, signing_key: str, max_age: int = 300, now: datetime | None = None
) -> tuple[list[Event], str]:
    """(events, the signature's one-time token) of a JSON webhook, once verified
    (``signature``: hex HMAC-SHA256 of ``timestamp + token`` under the
    webhook signing key, timestamp within ``max_age`` seconds of ``now``) and read ``event-data``.

    ``failed`` is a hard bounce when ``severity`` is ``permanent`` (this includes Mailgun refusing
    an address on its own suppression lists) and a soft bounce otherwise. ``event_id`` is
    ``event-data.id``. The signature does not cover the event: see the module docstring.
    """
    if not signing_key:
        raise ValueError("Mailgun webhook signing key is not configured")
    try:
        payload = load_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError("body is not a JSON Mailgun webhook") from exc
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict):
        raise SignatureError("Mailgun signature is missing")
    timestamp, nonce, given = (signature.get(k) for k in ("timestamp", "token", "signature"))
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not all(isinstance(v, str) and v for v in (timestamp, nonce, given)):
        raise SignatureError("Mailgun signature is incomplete")
    expected = hmac.new(signing_key.encode(), f"{timestamp}{nonce}".encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest().encode(), given.strip().lower().encode()):
        raise SignatureError("Mailgun signature does not match")
    check_fresh(timestamp, max_age, now)

    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise PayloadError("Mailgun webhook lacks event-data")
    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise PayloadError("Mailgun event-data has no id")
    name = data.get("event")
    severity = data.get("severity")
    if name == "failed":
        kind = HARD_BOUNCE if severity == "permanent" else SOFT_BOUNCE
    else:
        kind = _MAILGUN_KINDS.get(name, IGNORED)
    variables = data.get("user-variables") if isinstance(data.get("user-variables"), dict) else {}
    status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
    return [Event(
        source="mailgun", event_id=event_id, kind=kind,
        recipient=recipient_address(data.get("recipient")),
        token=reported_token(variables.get(METADATA_FIELD)),
        occurred_at=epoch_time(data.get("timestamp")) or utc_now(),
        detail=one_line(f"{name}{'/' + severity if severity else ''}:", data.get("reason"),
                        status.get("code"), status.get("message") or status.get("description")),
    )], nonce
