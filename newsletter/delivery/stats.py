"""Statistics of sending: counts of an edition's deliveries by status, engagement, and the
recent editions with their counts. Read-only queries for the CLI and the admin dashboard."""

from __future__ import annotations

from sqlalchemy import case, func, select

from newsletter.db import db
from newsletter.delivery.models import OPEN_STATUSES, Delivery, DeliveryStatus
from newsletter.editions.models import Edition


def counts(edition_id: int) -> dict[str, int]:
    """Deliveries of the edition by status (every status present), and ``open``: the ones
    not finished yet."""
    rows = db.session.execute(
        select(Delivery.status, func.count()).where(Delivery.edition_id == edition_id)
        .group_by(Delivery.status))
    result = {status.value: 0 for status in DeliveryStatus}
    result.update({status: n for status, n in rows})
    result["open"] = sum(result[s] for s in OPEN_STATUSES)
    return result


def engagement(edition_id: int) -> dict[str, int]:
    """Deliveries, readers who opened, readers who clicked, and opens made by machines."""
    row = db.session.execute(select(
        func.count(Delivery.id),
        func.sum(case((Delivery.first_opened_at.is_not(None), 1), else_=0)),
        func.sum(case((Delivery.first_clicked_at.is_not(None), 1), else_=0)),
        func.sum(Delivery.machine_opens),
    ).where(Delivery.edition_id == edition_id)).one()
    return {"deliveries": row[0] or 0, "opened": row[1] or 0, "clicked": row[2] or 0,
            "machine_opens": row[3] or 0}


def recent_editions(limit: int = 50) -> list[tuple[Edition, dict[str, int]]]:
    """The newest editions, newest first, each with its :func:`counts`."""
    editions = db.session.scalars(select(Edition).order_by(Edition.id.desc()).limit(limit))
    return [(edition, counts(edition.id)) for edition in editions]
