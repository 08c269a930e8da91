"""Stripe's webhook: ``POST /hooks/stripe``.

Contract:

* Nothing is read before the signature is checked on the raw body
  (:mod:`newsletter.billing.signature`): a missing, wrong, stale or tampered one raises
  :class:`SignatureError` (401) and changes nothing.
* Each event id is stored with the change it made, in one transaction: the same event
  again (Stripe delivers at least once, and retries) is answered 200 and changes nothing.
* Events are a nudge, not the truth: for ``checkout.session.completed``,
  ``customer.subscription.created|updated|deleted``, ``invoice.paid`` (and the older
  ``invoice.payment_succeeded``) and ``invoice.payment_failed`` the subscription is fetched
  from Stripe and applied (``billing.service.sync_subscription``), so events arriving out of
  order — ``updated`` before ``created``, a late ``updated`` after ``deleted`` — end in
  Stripe's latest state. A payment failure starts the grace period even when the fetched
  state does not show it yet.
* Stripe unreachable while handling: :class:`BillingUnavailable` (the view answers 503,
  nothing is stored, Stripe sends the event again later).
* Other event types are stored as ignored and answered 200, so Stripe stops sending them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter.billing.gateway import BillingRefused, invoice_subscription, reader_id_of
from newsletter.billing.models import BillingEvent
from newsletter.billing.service import Billing
from newsletter.billing.signature import SignatureError, verify
from newsletter.billing.sync import sync_subscription
from newsletter.db import db
from newsletter.errors import PayloadError
from newsletter.validation import load_json

__all__ = ["PayloadError", "SignatureError", "WebhookAnswer", "handle"]

SUBSCRIPTION_EVENTS = frozenset({"customer.subscription.created",
                                 "customer.subscription.updated",
                                 "customer.subscription.deleted",
                                 "customer.subscription.paused",
                                 "customer.subscription.resumed"})
PAID_EVENTS = frozenset({"invoice.paid", "invoice.payment_succeeded"})
FAILED_EVENTS = frozenset({"invoice.payment_failed"})




@dataclass(frozen=True)
class WebhookAnswer:
    event_id: str
    type: str
    outcome: str
    duplicate: bool = False


def _event(body: bytes) -> tuple[str, str, Mapping[str, Any]]:
    try:
        event = load_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("the body is not JSON") from exc
    if not isinstance(event, Mapping) or event.get("object", "event") != "event":
        raise PayloadError("the body is not a Stripe event")
    event_id, kind = event.get("id"), event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255 \
            or not event_id.isascii() or not event_id.isprintable():
        raise PayloadError("the event has no usable id")
    if not isinstance(kind, str) or not kind or len(kind) > 100:
        raise PayloadError("the event has no type")
    if not isinstance(obj, Mapping):
        raise PayloadError("the event has no data.object")
    return event_id, kind, obj


def _string_id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, str) and value and len(value) <= 255 and value.isascii():
        return value
    return None


def handle(billing: Billing, body: bytes, signature: str | None, now: datetime) -> WebhookAnswer:
    """Verify, deduplicate and apply one webhook request; committed."""
    verify(body, signature, billing.settings.webhook_secrets, now.timestamp())
    event_id, kind, obj = _event(body)
    if db.session.scalar(select(BillingEvent.id).where(BillingEvent.id == event_id)):
        return WebhookAnswer(event_id, kind, "already handled", duplicate=True)
    outcome = _apply(billing, kind, obj, now)
    db.session.add(BillingEvent(id=event_id, type=kind, outcome=outcome[:200], received_at=now))
    try:
        db.session.commit()
    except IntegrityError:  # the same event, handled at the same moment by another process
        db.session.rollback()
        return WebhookAnswer(event_id, kind, "already handled", duplicate=True)
    return WebhookAnswer(event_id, kind, outcome)


def _apply(billing: Billing, kind: str, obj: Mapping[str, Any], now: datetime) -> str:
    subscription: str | None = None
    hint: int | None = None
    if kind == "checkout.session.completed":
        if obj.get("mode") != "subscription":
            return "ignored: not a subscription checkout"
        subscription = _string_id(obj.get("subscription"))
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
        if metadata.get("site") == billing.settings.site:  # a session we made, not a link's
            hint = reader_id_of(obj.get("client_reference_id"))
    elif kind in SUBSCRIPTION_EVENTS:
        subscription = _string_id(obj.get("id"))
    elif kind in PAID_EVENTS or kind in FAILED_EVENTS:
        subscription = invoice_subscription(obj)
        if subscription is None:
            return "ignored: an invoice without a subscription"
    else:
        return "ignored"
    if subscription is None:
        raise PayloadError(f"a {kind} event without a subscription id")
    try:
        return sync_subscription(billing, subscription, now,
                                 payment_failed=kind in FAILED_EVENTS, reader_hint=hint)
    except BillingRefused as exc:
        return f"ignored: Stripe does not know subscription {subscription}: {exc}"[:200]
