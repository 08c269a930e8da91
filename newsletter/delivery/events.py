"""What happens after a message left: bounces and complaints from DSNs, ARF reports and
provider webhooks, mapped to deliveries and turned into suppression.

Policy (configurable): a hard bounce suppresses; ``soft_limit`` soft bounces within
``soft_window`` suppress; a complaint unsubscribes the reader from everything and
suppresses. Every event is recorded once by (source, event id): replaying a report or a
webhook changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.db import db, utcnow
from newsletter.delivery.models import BounceEvent, Delivery, DeliveryStatus, ProcessedEvent
from newsletter.delivery.tokens import DeliveryTokens
from newsletter.subscribers import service as readers
from newsletter.subscribers.addresses import email_hash, normalise_email
from newsletter.subscribers.models import Reader, SuppressionReason

log = logging.getLogger(__name__)
ACTIONABLE = {"hard_bounce", "soft_bounce", "complaint"}


@dataclass(frozen=True)
class BouncePolicy:
    soft_limit: int = 3
    soft_window: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class Event:
    source: str                 # dsn, arf, ses, postmark, mailgun, sendgrid
    event_id: str
    kind: str                   # hard_bounce, soft_bounce, complaint, delivered, ...
    token: str | None = None
    recipient: str | None = None
    detail: str = ""
    occurred_at: datetime | None = None


def _locate(event: Event, tokens: DeliveryTokens,
            hash_key: bytes) -> tuple[Delivery | None, str | None]:
    """The delivery (by token) and the address hash the event is about."""
    delivery = None
    if event.token:
        delivery_id = tokens.read(event.token)
        if delivery_id is not None:
            delivery = db.session.get(Delivery, delivery_id)
    if delivery is not None:
        reader = db.session.get(Reader, delivery.reader_id)
        digest = reader.email_hash if reader and reader.email_hash else (
            email_hash(delivery.email, hash_key) if delivery.email else None)
        return delivery, digest
    if event.recipient:
        try:
            address = normalise_email(event.recipient)
        except ValueError:
            return None, None
        return None, email_hash(address, hash_key)
    return None, None


def handle(event: Event, *, tokens: DeliveryTokens, services: readers.ReaderServices,
           policy: BouncePolicy, now: datetime | None = None) -> str:
    """Apply one event; return what it did: duplicate, ignored, unknown, or the kind."""
    now = now or utcnow()
    db.session.add(ProcessedEvent(source=event.source, event_id=event.event_id[:200]))
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    if event.kind not in ACTIONABLE:
        db.session.commit()
        return "ignored"
    delivery, digest = _locate(event, tokens, services.hash_key)
    if digest is None:
        db.session.commit()
        log.warning("%s event %s names no known delivery or address", event.source,
                    event.event_id)
        return "unknown"
    db.session.add(BounceEvent(email_hash=digest, delivery_id=delivery.id if delivery else None,
                               kind=event.kind, source=event.source,
                               occurred_at=event.occurred_at or now,
                               detail=event.detail[:500]))
    if event.kind == "hard_bounce":
        readers.suppress_hash(digest, SuppressionReason.HARD_BOUNCE)
        if delivery is not None:
            db.session.execute(update(Delivery).where(
                Delivery.id == delivery.id,
                Delivery.status.in_((DeliveryStatus.SENT.value, DeliveryStatus.DEFERRED.value,
                                     DeliveryStatus.QUEUED.value)))
                .values(status=DeliveryStatus.BOUNCED.value, last_error=event.detail[:500]))
    elif event.kind == "soft_bounce":
        db.session.flush()
        recent = db.session.scalar(select(func.count(BounceEvent.id)).where(
            BounceEvent.email_hash == digest, BounceEvent.kind == "soft_bounce",
            BounceEvent.occurred_at >= now - policy.soft_window))
        if recent >= policy.soft_limit:
            readers.suppress_hash(digest, SuppressionReason.SOFT_BOUNCES)
    elif event.kind == "complaint":
        readers.suppress_hash(digest, SuppressionReason.COMPLAINT)
        reader = db.session.scalar(select(Reader).where(Reader.email_hash == digest))
        if reader is not None and reader.status != "unsubscribed":
            db.session.commit()
            readers.unsubscribe(services, reader, readers.Actor(source="complaint"))
    db.session.commit()
    return event.kind

