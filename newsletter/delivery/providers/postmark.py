"""Postmark webhooks, authenticated by the HTTP Basic credentials set on the webhook.

The general contract is in :mod:`newsletter.delivery.providers.base`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

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
    iso_time,
    one_line,
    parse_json,
    recipient_address,
    reported_token,
    utc_now,
)

__all__ = ["PostmarkProvider", "postmark_events"]

_POSTMARK_BOUNCE_KINDS = {
    # The address is gone or refused for good.
    "HardBounce": HARD_BOUNCE,
    "BadEmailAddress": HARD_BOUNCE,
    "ManuallyDeactivated": HARD_BOUNCE,  # Postmark will not send to it any more
    # Not delivered this time; the address itself may be fine.
    "Transient": SOFT_BOUNCE,
    "SoftBounce": SOFT_BOUNCE,
    "DnsError": SOFT_BOUNCE,
    "Blocked": SOFT_BOUNCE,  # the receiver blocked the sender or content, not the address
    "SpamNotification": SOFT_BOUNCE,  # filtered as spam by the receiver; no reader complained
    "VirusNotification": SOFT_BOUNCE,
    "DMARCPolicy": SOFT_BOUNCE,  # our authentication failed: worth seeing, not suppressing
    "Unknown": SOFT_BOUNCE,
    # The reader acted.
    "SpamComplaint": COMPLAINT,
    "Unsubscribe": COMPLAINT,  # an emailed "remove me": honoured like a complaint
}
# Everything else (AutoResponder, AddressChange, Subscribe, OpenRelayTest, ChallengeVerification,
# Unconfirmed, SMTPApiError, InboundError, TemplateRenderingFailed, …) is ignored.

_POSTMARK_SUPPRESSION_KINDS = {"HardBounce": HARD_BOUNCE, "SpamComplaint": COMPLAINT}


class PostmarkProvider:
    """``/hooks/postmark``, for the webhook's Basic credentials ``username`` / ``password``."""

    name = "postmark"

    def __init__(self, *, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def parse(self, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """See :func:`postmark_events`; the credentials come in ``Authorization``."""
        return WebhookResult(postmark_events(body, headers.get("Authorization"),
                                             username=self.username, password=self.password))


def _basic_auth_ok(authorization: str | None, username: str, password: str) -> bool:
    if not authorization:
        return False
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, secret = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return False
    user_ok = hmac.compare_digest(user, username.encode())
    secret_ok = hmac.compare_digest(secret, password.encode())
    return bool(sep) and user_ok and secret_ok


def postmark_events(
    body: bytes, authorization: str | None, *, username: str, password: str
) -> list[Event]:
    """Check the webhook's HTTP Basic credentials, then read its one record.

    ``event_id``: the bounce ``ID`` for Bounce and SpamComplaint records (one ID space);
    ``delivery:<MessageID>:<recipient>`` for Delivery and ``subscription:<recipient>:<ChangedAt>``
    for SubscriptionChange, which carry no ID of their own.
    """
    if not username or not password:
        raise ValueError("Postmark webhook credentials are not configured")
    if not _basic_auth_ok(authorization, username, password):
        raise SignatureError("missing or wrong HTTP Basic credentials")
    record = parse_json(body, PayloadError)
    if not isinstance(record, dict):
        raise PayloadError("Postmark webhook body is not a JSON object")

    record_type = record.get("RecordType")
    if record_type is None and "BouncedAt" in record:
        record_type = "Bounce"  # bounce hooks set up before RecordType existed
    metadata = record.get("Metadata") if isinstance(record.get("Metadata"), dict) else {}
    token = reported_token(metadata.get(METADATA_FIELD))

    def event(event_id: Any, kind: str, recipient: Any, when: Any, detail: str) -> Event:
        if event_id in (None, ""):
            raise PayloadError(f"Postmark {record_type} record has no identifier")
        return Event(source="postmark", event_id=str(event_id), kind=kind,
                     recipient=recipient_address(recipient), token=token,
                     occurred_at=iso_time(when) or utc_now(), detail=detail)

    if record_type in ("Bounce", "SpamComplaint"):
        bounce_type = record.get("Type")
        kind = COMPLAINT if record_type == "SpamComplaint" else _POSTMARK_BOUNCE_KINDS.get(
            bounce_type, IGNORED)
        return [event(record.get("ID"), kind, record.get("Email"), record.get("BouncedAt"),
                      one_line(f"{bounce_type}:", record.get("Description"),
                               record.get("Details")))]
    recipient = recipient_address(record.get("Recipient"))
    if record_type == "Delivery":
        message_id = record.get("MessageID")
        return [event(message_id and f"delivery:{message_id}:{recipient}", DELIVERED, recipient,
                      record.get("DeliveredAt"), one_line("Delivery:", record.get("Details")))]
    if record_type == "SubscriptionChange":
        # Broadcast streams report complaints only this way.
        reason = record.get("SuppressionReason")
        kind = (_POSTMARK_SUPPRESSION_KINDS.get(reason, IGNORED)
                if record.get("SuppressSending") is True else IGNORED)
        changed_at = record.get("ChangedAt")
        return [event(recipient and changed_at and f"subscription:{recipient}:{changed_at}",
                      kind, recipient, changed_at,
                      one_line("SubscriptionChange:",
                               "suppressed" if record.get("SuppressSending") else "reactivated",
                               reason, record.get("Origin")))]
    ident = record.get("ID") or record.get("MessageID")
    event_id = (f"{record_type}:{ident}:{recipient}" if ident
                else "sha256:" + hashlib.sha256(body).hexdigest())
    return [event(event_id, IGNORED,
                  recipient or record.get("Email"), record.get("ReceivedAt"),
                  one_line("Postmark", record_type or "record without RecordType"))]
