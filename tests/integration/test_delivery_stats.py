"""delivery.stats: counts by status, engagement (people and machines), recent editions."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.db import db, utcnow
from newsletter.delivery import service as sending
from newsletter.delivery import stats
from newsletter.delivery.models import Delivery
from newsletter.wiring import mail_setup
from tests.support.editions import audience, special_edition


def test_counts_engagement_and_recent_editions(app, topics):
    readers = audience(4)
    edition = special_edition()
    other = special_edition("An older one")
    assert sending.start_sending(edition.id, mail_setup()) == 4
    rows = list(db.session.scalars(select(Delivery).where(Delivery.edition_id == edition.id)
                                   .order_by(Delivery.id)))
    now = utcnow()
    rows[0].status, rows[0].first_opened_at, rows[0].first_clicked_at = "sent", now, now
    rows[1].status, rows[1].first_opened_at, rows[1].machine_opens = "sent", now, 2
    rows[2].status = "bounced"
    db.session.commit()

    counts = stats.counts(edition.id)
    assert counts["sent"] == 2 and counts["bounced"] == 1 and counts["queued"] == 1
    assert counts["open"] == 1 and counts["failed"] == 0
    assert stats.engagement(edition.id) == {"deliveries": len(readers), "opened": 2,
                                            "clicked": 1, "machine_opens": 2}
    assert stats.engagement(other.id) == {"deliveries": 0, "opened": 0, "clicked": 0,
                                          "machine_opens": 0}
    recent = stats.recent_editions(10)
    assert [e.id for e, _ in recent] == [other.id, edition.id]
    assert recent[1][1] == counts
