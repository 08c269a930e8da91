"""The worker's housekeeping: unconfirmed addresses expire, old tracking detail is pruned."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from newsletter.db import db, utcnow
from newsletter.delivery.models import Delivery, TrackingEvent
from newsletter.scheduler import jobs
from newsletter.subscribers.models import ConsentEvent, Reader
from tests.factories_readers import make_reader
from tests.support.editions import audience, send, special_edition


def _age(reader: Reader, days: int) -> None:
    reader.created_at = utcnow() - timedelta(days=days)
    db.session.add(ConsentEvent(reader_id=reader.id, kind="subscribe_requested",
                                source="form", occurred_at=reader.created_at))
    db.session.commit()


def test_unconfirmed_addresses_expire_after_30_days_and_nothing_else(app, topics):
    old = make_reader("old-pending@example.com", status="pending")
    recent = make_reader("new-pending@example.com", status="pending")
    asked_again = make_reader("again@example.com", status="pending")
    active = make_reader("active@example.com")
    _age(old, 31)
    _age(recent, 29)
    _age(asked_again, 45)
    db.session.add(ConsentEvent(reader_id=asked_again.id, kind="subscribe_requested",
                                source="form", occurred_at=utcnow() - timedelta(days=2)))
    _age(active, 400)
    old_id = old.id

    jobs.housekeeping(app)

    db.session.expire_all()
    emails = set(db.session.scalars(select(Reader.email)))
    assert emails == {"new-pending@example.com", "again@example.com", "active@example.com"}
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent).where(
        ConsentEvent.reader_id == old_id)) == 0


def test_tracking_detail_older_than_the_setting_is_pruned_counts_stay(app, topics):
    audience(1)
    edition = special_edition()
    send(app, edition.id)
    delivery = db.session.scalar(select(Delivery))
    delivery.opens = 2
    db.session.add_all([
        TrackingEvent(delivery_id=delivery.id, kind="open",
                      occurred_at=utcnow() - timedelta(days=181)),
        TrackingEvent(delivery_id=delivery.id, kind="open",
                      occurred_at=utcnow() - timedelta(days=10)),
    ])
    db.session.commit()

    jobs.housekeeping(app)

    db.session.expire_all()
    kept = db.session.scalars(select(TrackingEvent)).all()
    assert len(kept) == 1 and kept[0].occurred_at > utcnow() - timedelta(days=11)
    assert db.session.get(Delivery, delivery.id).opens == 2
