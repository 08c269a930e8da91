"""SendGrid's Signed Event Webhook: ECDSA P-256/SHA-256 signatures under the account's
verification key.

The general contract is in :mod:`newsletter.delivery.providers.base`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.delivery.events import (
    COMPLAINT,
    DEFERRED,
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
    parse_json,
    recipient_address,
    reported_token,
    utc_now,
)

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "SendgridProvider", "sendgrid_events"]

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

_SENDGRID_KINDS = {"deferred": DEFERRED, "spamreport": COMPLAINT, "delivered": DELIVERED}
_SENDGRID_HARD_DROPS = {"Bounced Address", "Invalid"}


class SendgridProvider:
    """``/hooks/sendgrid``, for the verification key ``public_key`` (base64 DER or PEM).

    The key is read on the first request, not here, so a broken key is a 500 on the hook
    (our misconfiguration) rather than an app that does not start; then kept.
    """

    name = "sendgrid"

    def __init__(self, *, public_key: str, max_age: int = 300) -> None:
        self.public_key = public_key
        self.max_age = max_age
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}

    def parse(self, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """See :func:`sendgrid_events`; the signature and timestamp come in headers."""
        return WebhookResult(sendgrid_events(
            body, headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER),
            public_key_pem_or_b64=self.public_key, max_age=self.max_age, key_cache=self._keys))


def _sendgrid_key(configured: str,
                  cache: dict[str, ec.EllipticCurvePublicKey]) -> ec.EllipticCurvePublicKey:
    key = cache.get(configured)
    if key is not None:
        return key
    text = configured.strip()
    try:
        if "-----BEGIN" in text:
            loaded = serialization.load_pem_public_key(text.encode())
        else:
            loaded = serialization.load_der_public_key(
                base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ValueError("SendGrid verification key is neither base64 DER nor PEM") from exc
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise ValueError("SendGrid verification key is not an elliptic-curve key")
    cache[configured] = loaded
    return loaded


def _sendgrid_kind(event: dict[str, Any]) -> str:
    name = event.get("event")
    if name == "bounce":
        return SOFT_BOUNCE if event.get("type") == "blocked" else HARD_BOUNCE
    if name == "dropped":
        return HARD_BOUNCE if event.get("reason") in _SENDGRID_HARD_DROPS else IGNORED
    return _SENDGRID_KINDS.get(name, IGNORED)


def sendgrid_events(
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    public_key_pem_or_b64: str,
    max_age: int = 300,
    now: datetime | None = None,
    key_cache: dict[str, ec.EllipticCurvePublicKey] | None = None,
) -> list[Event]:
    """Verify a Signed Event Webhook post and read its events.

    ``signature`` and ``timestamp`` are the ``X-Twilio-Email-Event-Webhook-Signature`` (base64
    DER ECDSA) and ``-Timestamp`` headers; the signature is ECDSA P-256/SHA-256 over the timestamp
    followed by the raw body. ``event_id`` is ``sg_event_id``. The loaded key is kept in
    ``key_cache`` when one is given (:class:`SendgridProvider` passes its own).
    """
    key = _sendgrid_key(public_key_pem_or_b64, {} if key_cache is None else key_cache)
    if not signature or not timestamp:
        raise SignatureError("SendGrid signature headers are missing")
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, timestamp.strip().encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise SignatureError("SendGrid signature does not match") from exc
    check_fresh(timestamp.strip(), max_age, now)

    events = parse_json(body, PayloadError)
    if not isinstance(events, list):
        raise PayloadError("SendGrid webhook body is not a JSON array")
    return list(_sendgrid_records(events))


def _sendgrid_records(events: Iterable[Any]) -> Iterable[Event]:
    for event in events:
        if not isinstance(event, dict):
            raise PayloadError("SendGrid event is not a JSON object")
        event_id = event.get("sg_event_id")
        if not isinstance(event_id, str) or not event_id:
            raise PayloadError("SendGrid event has no sg_event_id")
        yield Event(
            source="sendgrid", event_id=event_id, kind=_sendgrid_kind(event),
            recipient=recipient_address(event.get("email")),
            token=reported_token(event.get(METADATA_FIELD)),
            occurred_at=epoch_time(event.get("timestamp")) or utc_now(),
            detail=one_line(
                f"{event.get('event')}{'/' + event['type'] if event.get('type') else ''}:",
                event.get("status"), event.get("reason") or event.get("response")),
        )
