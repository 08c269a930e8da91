"""What was sent to one reader, for "download my data"."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.db import db
from newsletter.delivery.models import Delivery
from newsletter.editions.models import Edition


def sent_to_reader(reader_id: int) -> list[dict]:
    rows = db.session.execute(
        select(Delivery, Edition.subject, Edition.kind)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.reader_id == reader_id).order_by(Delivery.id))
    return [{
        "edition": subject, "kind": kind, "status": delivery.status,
        "sent_at": delivery.sent_at.isoformat() if delivery.sent_at else None,
        "attempts": delivery.attempts,
        "first_opened_at": delivery.first_opened_at.isoformat()
        if delivery.first_opened_at else None,
        "first_clicked_at": delivery.first_clicked_at.isoformat()
        if delivery.first_clicked_at else None,
    } for delivery, subject, kind in rows]
