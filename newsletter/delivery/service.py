"""Sending an edition: start it (render its variants, fan out), start the scheduled ones
whose time has come, cancel it with its unsent deliveries.

The edition's own state machine lives in ``editions.service``; every move here goes
through its compare-and-set :func:`~newsletter.editions.service.transition`.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from sqlalchemy import select, update

from newsletter.billing import entitlements
from newsletter.content.models import Topic
from newsletter.db import db, utcnow
from newsletter.delivery.fanout import fan_out
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.editions.models import Edition, EditionStatus
from newsletter.editions.service import (
    HTML,
    TEXT,
    EditionStateError,
    render_variants,
    transition,
)

log = logging.getLogger(__name__)
_STARTABLE = (EditionStatus.DRAFT.value, EditionStatus.SCHEDULED.value)


def start_sending(edition_id: int, mail, now: datetime | None = None,
                  today: date | None = None) -> int:
    """Render, fan out and mark the edition ``sending``; return the deliveries queued.

    Only a draft or scheduled edition starts; the move to ``sending`` is a compare-and-set
    and fan-out is idempotent (unique per edition and reader). Two workers starting the
    same edition at once both render and fan out, and the loser's error path can still
    mark it failed: that race is issue #10's to close with a claim.
    """
    now = now or utcnow()
    edition = db.session.get(Edition, edition_id)
    if edition is None:
        raise EditionStateError(f"no edition {edition_id}")
    if edition.status not in _STARTABLE:
        raise EditionStateError(f"edition {edition_id} is {edition.status}; only a draft or "
                                "scheduled edition can start")
    try:
        variants = render_variants(edition, mail)
        topic_ids = list(db.session.scalars(select(Topic.id).where(
            Topic.slug.in_(edition.audience.get("topics", [])))))
        count = fan_out(edition.id, html_variant=variants[HTML].id,
                        text_variant=variants[TEXT].id, topic_ids=topic_ids,
                        paid_only=entitlements.tier_is_paid(edition.audience), now=now,
                        today=today or now.date())
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        transition(edition_id, _STARTABLE, EditionStatus.FAILED.value, error=str(exc)[:500])
        log.exception("edition %s failed to start", edition_id)
        raise
    transition(edition_id, _STARTABLE,
                EditionStatus.SENDING.value, started_at=now)
    return count


def cancel(edition_id: int, now: datetime | None = None) -> int:
    """Stop the edition; every delivery not yet sent is cancelled. Returns how many."""
    if not transition(edition_id, (EditionStatus.DRAFT.value, EditionStatus.SCHEDULED.value,
                                    EditionStatus.SENDING.value, EditionStatus.PAUSED.value),
                       EditionStatus.CANCELLED.value, finished_at=now or utcnow()):
        raise EditionStateError(f"edition {edition_id} cannot be cancelled now")
    # Claimed rows are included: a worker's outcome write only moves claimed rows, so a
    # message in flight at this moment is recorded as sent if the relay took it.
    result = db.session.execute(
        update(Delivery).where(Delivery.edition_id == edition_id,
                               Delivery.status.in_((DeliveryStatus.QUEUED.value,
                                                    DeliveryStatus.DEFERRED.value)))
        .values(status=DeliveryStatus.CANCELLED.value))
    db.session.commit()
    return result.rowcount or 0


def ensure_sending(edition_id: int, mail) -> int | None:
    """Start a draft or scheduled edition (returning the deliveries queued) or accept one
    already sending (``None``); any other state raises ``EditionStateError``."""
    edition = db.session.get(Edition, edition_id)
    if edition is None:
        raise EditionStateError(f"no edition {edition_id}")
    if edition.status in _STARTABLE:
        return start_sending(edition_id, mail)
    if edition.status != EditionStatus.SENDING.value:
        raise EditionStateError(f"edition {edition_id} is {edition.status}")
    return None


def start_due_editions(mail) -> list[int]:
    """Start every scheduled edition whose time has come; returns their ids."""
    now = utcnow()
    due = list(db.session.scalars(select(Edition.id).where(
        Edition.status == EditionStatus.SCHEDULED.value, Edition.send_at <= now)))
    started = []
    for edition_id in due:
        try:
            start_sending(edition_id, mail, now=now)
            started.append(edition_id)
        except EditionStateError:
            db.session.rollback()  # another worker started it first
    return started
