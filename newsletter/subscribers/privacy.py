"""A reader's rights over their data: download it (export) and be forgotten (erasure)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from newsletter.db import db, utcnow
from newsletter.subscribers.models import (
    ConsentEvent,
    ImportProblem,
    Reader,
    ReaderStatus,
    SuppressionReason,
)
from newsletter.subscribers.outbox import forget_reader
from newsletter.subscribers.service import (
    Actor,
    ReaderServices,
    preferences_snapshot,
    record_event,
    suppress,
)


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value else None


def export_reader(reader: Reader) -> dict[str, Any]:
    """Everything we hold about the reader, as JSON-ready data."""
    events = db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.reader_id == reader.id)
        .order_by(ConsentEvent.occurred_at, ConsentEvent.id)
    )
    return {
        "profile": {
            "email": reader.email,
            "first_name": reader.first_name,
            "pending_email": reader.pending_email,
            "status": reader.status,
            "source": reader.source,
            "subscribed_at": _iso(reader.created_at),
            "confirmed_at": _iso(reader.confirmed_at),
            "unsubscribed_at": _iso(reader.unsubscribed_at),
        },
        "preferences": preferences_snapshot(reader),
        "consent_events": [
            {"kind": e.kind, "at": _iso(e.occurred_at), "source": e.source, "ip": e.ip,
             "user_agent": e.user_agent, "consent_version": e.consent_version,
             "detail": e.detail}
            for e in events
        ],
        "emails_sent": [],  # filled by the caller from delivery records
    }


def erase_reader(services: ReaderServices, reader: Reader, actor: Actor) -> None:
    """Erase the reader's personal data; keep a keyed hash so no import can bring it back.

    The row stays (status ``erased``, no address) with its consent events stripped of IP and
    user agent, so aggregate counts survive. Lines of import reports that hold the address
    go too (the report keeps its counts).
    """
    if services.before_erasure is not None:
        services.before_erasure(reader)
    if reader.email:
        suppress(services, reader.email, SuppressionReason.ERASED)
        db.session.execute(delete(ImportProblem).where(
            func.lower(ImportProblem.value) == reader.email.lower()))
    reader.followed = []
    forget_reader(reader.id)
    reader.email = None
    reader.email_hash = None
    reader.pending_email = None
    reader.first_name = None
    reader.status = ReaderStatus.ERASED.value
    reader.erased_at = utcnow()
    db.session.execute(update(ConsentEvent).where(ConsentEvent.reader_id == reader.id)
                       .values(ip=None, user_agent=None))
    record_event(services, reader, "erase", Actor(source=actor.source))
    db.session.commit()
