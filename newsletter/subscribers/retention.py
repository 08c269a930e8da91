"""Keeping no personal data longer than needed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete

from newsletter.db import db
from newsletter.subscribers.models import Reader, ReaderStatus


# -- name: expire-unconfirmed
# Contract: addresses that asked to subscribe and never confirmed within ``days`` are
# deleted with their topics and consent events (they never consented to anything, so
# nothing is kept); confirmed readers are never touched.
def expire_unconfirmed(now: datetime, days: int) -> int:
    """Delete readers pending for longer than ``days``; returns how many."""
    result = db.session.execute(
        delete(Reader).where(Reader.status == ReaderStatus.PENDING.value,
                             Reader.confirmed_at.is_(None),
                             Reader.created_at < now - timedelta(days=days))
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount or 0
