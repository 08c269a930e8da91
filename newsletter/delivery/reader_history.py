"""What was sent to one reader and what they did with it, for their page in the admin area:
their latest deliveries (edition, status, when the relay accepted it, the relay's last
reply) and their latest opens and clicks.

Open and click detail is pruned after ``TRACKING_RETENTION_DAYS``; the counts on each
delivery stay, so totals can exceed what the event list shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select

from newsletter.db import db
from newsletter.delivery.models import Delivery, TrackingEvent
from newsletter.editions.models import Edition, EditionLink

RECENT = 20


@dataclass(frozen=True)
class SentItem:
    delivery_id: int
    edition_id: int
    subject: str
    kind: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    reply: str | None           # the relay's last answer, or the last error
    opens: int
    clicks: int


@dataclass(frozen=True)
class Activity:
    occurred_at: datetime
    kind: str                   # open, click
    machine: bool               # an open by a mail client's prefetcher, not a person
    subject: str
    url: str | None             # the clicked link


@dataclass(frozen=True)
class Totals:
    deliveries: int
    sent: int
    opened: int                 # deliveries a person opened
    clicked: int


def deliveries(reader_id: int, limit: int = RECENT) -> list[SentItem]:
    """The reader's latest ``limit`` deliveries, newest first."""
    rows = db.session.execute(
        select(Delivery, Edition.subject, Edition.kind)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.reader_id == reader_id)
        .order_by(Delivery.id.desc()).limit(limit))
    return [SentItem(d.id, d.edition_id, subject, kind, d.status, d.created_at, d.sent_at,
                     d.relay_reply or d.last_error, d.opens, d.clicks)
            for d, subject, kind in rows]


def activity(reader_id: int, limit: int = RECENT) -> list[Activity]:
    """The reader's latest ``limit`` opens and clicks, newest first."""
    rows = db.session.execute(
        select(TrackingEvent.occurred_at, TrackingEvent.kind, TrackingEvent.machine,
               Edition.subject, EditionLink.url)
        .join(Delivery, Delivery.id == TrackingEvent.delivery_id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .outerjoin(EditionLink, and_(EditionLink.edition_id == Delivery.edition_id,
                                     EditionLink.n == TrackingEvent.link))
        .where(Delivery.reader_id == reader_id)
        .order_by(TrackingEvent.occurred_at.desc(), TrackingEvent.id.desc()).limit(limit))
    return [Activity(*row) for row in rows]


def totals(reader_id: int) -> Totals:
    """How many deliveries the reader has, how many were sent, opened and clicked."""
    row = db.session.execute(
        select(func.count(Delivery.id), func.count(Delivery.sent_at),
               func.count(Delivery.first_opened_at), func.count(Delivery.first_clicked_at))
        .where(Delivery.reader_id == reader_id)).one()
    return Totals(*row)
