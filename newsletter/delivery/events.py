"""What happens after a message left: bounces and complaints from DSNs, ARF reports and
provider webhooks, mapped to deliveries and turned into suppression.

Policy (configurable): a hard bounce suppresses; ``soft_limit`` soft bounces within
``soft_window`` suppress; a complaint unsubscribes the reader from everything and
suppresses. Every event is recorded once by (source, event id): replaying a report or a
webhook changes nothing.

This module is also the one vocabulary of both readers (``providers/`` for webhooks,
``bounces/`` for DSN and ARF mail): the :class:`Event` they produce, its kinds, and the shape
of a token they may report.

Kinds: ``hard_bounce`` and ``complaint`` are what the caller suppresses; ``soft_bounce`` and
``deferred`` may be retried; ``delivered`` means accepted by the receiving server (not read);
``ignored`` is a provider event type we do not act on; ``unknown`` is a DSN or ARF report
whose Action, Status or feedback type says nothing we can act on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.db import db, utcnow
from newsletter.delivery.models import BounceEvent, Delivery, DeliveryStatus, ProcessedEvent
from newsletter.delivery.tokens import DeliveryTokens
from newsletter.mail.policy import DEFERRED, DELIVERED, HARD_BOUNCE, SOFT_BOUNCE, UNKNOWN
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.addresses import email_hash
from newsletter.subscribers.models import Reader, SuppressionReason

log = logging.getLogger(__name__)

# The kinds a reply or report may have are the send policy's (newsletter.mail.policy).
COMPLAINT = "complaint"
IGNORED = "ignored"
UNMATCHED = "unmatched"  # an outcome, not a kind: the event proved no message of ours
KINDS = frozenset({HARD_BOUNCE, SOFT_BOUNCE, COMPLAINT, DELIVERED, DEFERRED, IGNORED, UNKNOWN})
ACTIONABLE = {HARD_BOUNCE, SOFT_BOUNCE, COMPLAINT}

# What a token reported back to us (VERP address, X-Newsletter-Token, provider metadata) may
# look like. Anything else is dropped before it reaches DeliveryTokens.read, which alone
# decides whether the token is ours.
REPORTED_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{4,64}")
DETAIL_MAX = 500


@dataclass(frozen=True)
class BouncePolicy:
    soft_limit: int = 3
    soft_window: timedelta = timedelta(days=30)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BouncePolicy:
        """From ``SOFT_BOUNCE_LIMIT`` and ``SOFT_BOUNCE_WINDOW_DAYS``."""
        return cls(config["SOFT_BOUNCE_LIMIT"],
                   timedelta(days=config["SOFT_BOUNCE_WINDOW_DAYS"]))


@dataclass(frozen=True)
class Event:
    """One thing a provider or a report tells us about one recipient of one message."""

    source: str                 # dsn, arf, ses, postmark, mailgun, sendgrid
    event_id: str               # stable across redeliveries of the same webhook or report
    kind: str                   # one of KINDS
    token: str | None = None    # None unless it matches REPORTED_TOKEN_RE
    recipient: str | None = None  # lowercased address
    detail: str = ""            # one line, at most DETAIL_MAX characters
    occurred_at: datetime | None = None  # providers: aware, UTC; reports: None (now)


def _account_mail_reader_hash(event: Event, account_tokens) -> str | None:
    """The address hash of the reader an account-mail token names (its own stream's
    return path and header), or None."""
    reader_id = account_tokens.reader_of(event.token)
    reader = db.session.get(Reader, reader_id) if reader_id is not None else None
    return reader.email_hash if reader is not None else None


def _locate(event: Event, tokens: DeliveryTokens, hash_key: bytes,
            account_tokens) -> tuple[Delivery | None, str | None]:
    """The delivery the event proves it is about, and its reader's address hash.

    The proof is a delivery token we signed (echoed in the VERP address, the
    X-Newsletter-Token header, a provider's metadata, or our Message-ID). An address alone
    proves nothing — anyone can send a report naming any reader — so it never matches.
    """
    delivery_id = tokens.read(event.token) if event.token else None
    delivery = db.session.get(Delivery, delivery_id) if delivery_id is not None else None
    if delivery is None:
        return None, _account_mail_reader_hash(event, account_tokens)
    reader = db.session.get(Reader, delivery.reader_id)
    digest = reader.email_hash if reader and reader.email_hash else (
        email_hash(delivery.email, hash_key) if delivery.email else None)
    return delivery, digest


def handle(event: Event, *, tokens: DeliveryTokens, services: subscribers.ReaderServices,
           policy: BouncePolicy, now: datetime | None = None) -> str:
    """Apply one event; return what it did: duplicate, ignored, unmatched (no proof it is
    about a message we sent: recorded, changes nothing), or the kind."""
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
    delivery, digest = _locate(event, tokens, services.hash_key,
                               services.mailer.account_tokens)
    if digest is None:
        db.session.commit()
        log.warning("%s event %s carries no token of ours; recorded as unmatched, nothing "
                    "changed", event.source, event.event_id)
        return UNMATCHED
    db.session.add(BounceEvent(email_hash=digest, delivery_id=delivery.id if delivery else None,
                               kind=event.kind, source=event.source,
                               occurred_at=event.occurred_at or now,
                               detail=event.detail[:500]))
    if event.kind == HARD_BOUNCE:
        subscribers.suppress_hash(digest, SuppressionReason.HARD_BOUNCE)
        if delivery is not None:
            db.session.execute(update(Delivery).where(
                Delivery.id == delivery.id,
                Delivery.status.in_((DeliveryStatus.SENT.value, DeliveryStatus.DEFERRED.value,
                                     DeliveryStatus.QUEUED.value)))
                .values(status=DeliveryStatus.BOUNCED.value, last_error=event.detail[:500]))
    elif event.kind == SOFT_BOUNCE:
        db.session.flush()
        recent = db.session.scalar(select(func.count(BounceEvent.id)).where(
            BounceEvent.email_hash == digest, BounceEvent.kind == SOFT_BOUNCE,
            BounceEvent.occurred_at >= now - policy.soft_window))
        if recent >= policy.soft_limit:
            subscribers.suppress_hash(digest, SuppressionReason.SOFT_BOUNCES)
    elif event.kind == COMPLAINT:
        subscribers.suppress_hash(digest, SuppressionReason.COMPLAINT)
        reader = db.session.scalar(select(Reader).where(Reader.email_hash == digest))
        if reader is not None and reader.status != "unsubscribed":
            # In the event's own transaction: suppressed and unsubscribed together, or
            # (a crash) neither, and the report is read again.
            subscribers.leave(services, reader, subscribers.Actor(source="complaint"))
    db.session.commit()
    return event.kind


def account_mail_refused(reader_id: int, kind: str, reply: str, event_id: str, *,
                         tokens: DeliveryTokens, services: subscribers.ReaderServices,
                         policy: BouncePolicy) -> str:
    """A relay refused account mail for good (a 5xx at RCPT or DATA): the same event, and
    so the same suppression, as the DSN that would have said it later."""
    token = services.mailer.account_tokens.make_token(reader_id)
    return handle(Event(source="smtp", event_id=event_id, kind=kind, token=token,
                        detail=" ".join(reply.split())[:DETAIL_MAX]),
                  tokens=tokens, services=services, policy=policy)


def first_use_of_signature(source: str, nonce: str, event_ids: list[str]) -> bool:
    """Record a signature's one-time token (Mailgun signs only a timestamp and this token,
    not the event). False when the token was seen before and these events were not what
    it carried then: a captured signature replayed with a forged event. The same request
    delivered again (the provider retrying) is still accepted, as a duplicate."""
    db.session.add(ProcessedEvent(source=f"{source}-sig"[:20], event_id=nonce[:200]))
    try:
        db.session.commit()
        return True
    except IntegrityError:
        db.session.rollback()
    seen = set(db.session.scalars(select(ProcessedEvent.event_id).where(
        ProcessedEvent.source == source, ProcessedEvent.event_id.in_(event_ids))))
    return bool(event_ids) and set(event_ids) <= seen


def apply_events(events: Iterable[Event], *, tokens: DeliveryTokens,
                 readers: subscribers.ReaderServices, policy: BouncePolicy,
                 now: datetime | None = None) -> list[str]:
    """Apply each event in turn with :func:`handle`; return their outcomes in order.

    Each event is committed on its own, so a failure part-way leaves the earlier ones
    applied, and replaying the whole batch afterwards changes nothing for them.
    """
    return [handle(event, tokens=tokens, services=readers, policy=policy, now=now)
            for event in events]
