"""Keeping no personal data longer than needed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, exists

from newsletter.db import db
from newsletter.subscribers.models import ConsentEvent, Reader, ReaderStatus


# -- name: expire-unconfirmed
# Contract: addresses that asked to subscribe, never confirmed, and have had no consent
# event (such as asking again) for ``days`` are deleted with their topics and consent
# events (they never consented to anything, so nothing is kept); confirmed readers are
# never touched.
def expire_unconfirmed(now: datetime, days: int) -> int:
    """Delete readers pending for longer than ``days``; returns how many."""
    cutoff = now - timedelta(days=days)
    result = db.session.execute(
        delete(Reader).where(Reader.status == ReaderStatus.PENDING.value,
                             Reader.confirmed_at.is_(None),
                             Reader.created_at < cutoff,
                             ~exists().where(ConsentEvent.reader_id == Reader.id,
                                             ConsentEvent.occurred_at >= cutoff))
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount or 0
