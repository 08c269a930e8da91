"""Sending an edition: start it (render its variants, fan out), start the scheduled ones
whose time has come, resume one that failed or was paused, cancel it with its unsent
deliveries.

Every way an edition starts — the worker's schedule, ``newsletter send``, the in-process
sender of ``make run``, the admin area — goes through :func:`start_sending`, so readers
flow through one path. Starting is **claimed** by one statement (``claim-edition-start``):
only the worker holding the claim renders and fans out, only its own failure can fail the
edition, and a claim left by a worker that died is taken over once it is older than
``stale_after``. Rendering and fan-out are idempotent (variants by key, deliveries unique
per edition and reader), so a takeover, a retry or a resume sends each reader at most once.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError

from newsletter.billing import entitlements
from newsletter.content.models import Topic
from newsletter.db import UTCDateTime, db, utcnow
from newsletter.delivery.fanout import fan_out
from newsletter.editions import service as editions
from newsletter.editions.models import Edition, EditionKind, EditionStatus
from newsletter.editions.service import (
    HTML,
    TEXT,
    EditionStateError,
    render_variants,
    transition,
)

log = logging.getLogger(__name__)
_STARTABLE = (EditionStatus.DRAFT.value, EditionStatus.SCHEDULED.value)
DEFAULT_STALE_AFTER = timedelta(seconds=120)


class EditionBusy(EditionStateError):
    """Another worker holds the edition's start; it needs nothing from this one."""


# -- name: claim-edition-start
# Contract: moves the edition to 'starting' under a new claim id, from one of the given
# statuses or from a 'starting' claim older than :stale (its worker died or hung); returns
# one row only to the one caller that won. Everything the claimant writes afterwards is
# conditional on still holding this claim.
_CLAIM_START = """
UPDATE editions SET status = 'starting', start_claim = :claim, started_at = :now, error = NULL
WHERE id = :id AND (status IN :statuses OR (status = 'starting' AND started_at < :stale))
"""
# -- name: finish-edition-start
# Contract: the claimant's last word on its start — 'sending' (or 'failed' with its error);
# changes nothing once another worker has taken the claim over.
_FINISH_START = """
UPDATE editions SET status = :status, start_claim = NULL, started_at = :now, error = :error
WHERE id = :id AND status = 'starting' AND start_claim = :claim
"""


def _claim_start(edition_id: int, statuses: tuple[str, ...], stale_after: timedelta) -> str | None:
    # The claim's own time, not the caller's: a job that started many editions in a row
    # must not stamp a fresh claim with a time that already looks stale.
    now = utcnow()
    claim = uuid.uuid4().hex
    statement = text(_CLAIM_START).bindparams(
        bindparam("statuses", expanding=True), bindparam("now", type_=UTCDateTime()),
        bindparam("stale", type_=UTCDateTime()))
    result = db.session.execute(statement, {"id": edition_id, "claim": claim, "now": now,
                                            "statuses": list(statuses),
                                            "stale": now - stale_after})
    db.session.commit()
    return claim if result.rowcount == 1 else None


def _finish_start(edition_id: int, claim: str, status: str, now: datetime,
                  error: str | None = None) -> bool:
    statement = text(_FINISH_START).bindparams(bindparam("now", type_=UTCDateTime()))
    result = db.session.execute(statement, {"id": edition_id, "claim": claim, "now": now,
                                            "status": status, "error": error})
    db.session.commit()
    return result.rowcount == 1


def start_sending(edition_id: int, mail, now: datetime | None = None,
                  today: date | None = None, *, stale_after: timedelta = DEFAULT_STALE_AFTER,
                  statuses: tuple[str, ...] = _STARTABLE) -> int:
    """Claim the start, render the variants, fan out, mark the edition ``sending``; return
    the deliveries this start queued.

    Raises ``EditionBusy`` when another worker holds a fresh claim (nothing to do here),
    ``EditionStateError`` when the edition is missing or not in one of ``statuses`` (by
    default draft or scheduled). A render or fan-out error marks the edition ``failed`` —
    only while this worker still holds the claim — and is raised.
    """
    now = now or utcnow()
    edition = db.session.get(Edition, edition_id)
    if edition is None:
        raise EditionStateError(f"no edition {edition_id}")
    claim = _claim_start(edition_id, statuses, stale_after)
    if claim is None:
        db.session.refresh(edition)
        if edition.status == EditionStatus.STARTING.value:
            raise EditionBusy(f"edition {edition_id} is being started by another worker")
        raise EditionStateError(f"edition {edition_id} is {edition.status}; only a "
                                f"{' or '.join(statuses)} edition can start")
    try:
        count = _render_and_fan_out(edition, mail, now, today or now.date())
    except Exception as exc:
        db.session.rollback()
        if _finish_start(edition_id, claim, EditionStatus.FAILED.value, now,
                         error=str(exc)[:500]):
            log.exception("edition %s failed to start", edition_id)
        raise
    if not _finish_start(edition_id, claim, EditionStatus.SENDING.value, now):
        db.session.expire_all()
        if db.session.get(Edition, edition_id).status == EditionStatus.CANCELLED.value:
            cancel_open(edition_id)  # cancelled while starting: what was queued goes too
        else:
            # Too slow: another worker took the claim over and finishes the start. What this
            # one queued stays (fan-out is unique per reader): nobody lost, nobody doubled.
            log.info("edition %s: start taken over by another worker", edition_id)
    return count


def _render_and_fan_out(edition: Edition, mail, now: datetime, today: date) -> int:
    """Render (or find) the variants and fan out; committed. A second worker rendering at
    the same moment (a takeover of a slow start) makes the unique variant key refuse one
    of the two inserts: that one reads the other's variants and goes on."""
    for attempt in range(2):
        try:
            db.session.refresh(edition)
            variants = render_variants(edition, mail)
            break
        except IntegrityError:
            db.session.rollback()
            if attempt:
                raise
    topic_ids = list(db.session.scalars(select(Topic.id).where(
        Topic.slug.in_(edition.audience.get("topics", [])))))
    count = fan_out(edition.id, kind=edition.kind, html_variant=variants[HTML].id,
                    text_variant=variants[TEXT].id, topic_ids=topic_ids,
                    paid_only=_premium(edition), now=now,
                    today=today)
    db.session.commit()
    return count


def resume(edition_id: int, mail, *, stale_after: timedelta = DEFAULT_STALE_AFTER) -> int:
    """Send the rest of a paused edition, or start again one that failed to start (or whose
    start was left by a dead worker); returns the deliveries newly queued. Readers already
    sent, or already queued, get nothing twice."""
    edition = db.session.get(Edition, edition_id)
    if edition is None:
        raise EditionStateError(f"no edition {edition_id}")
    if edition.status == EditionStatus.PAUSED.value:
        editions.resume(edition_id)
        return 0
    if edition.kind == EditionKind.DIGEST.value:
        # A digest's readers were chosen when it was written; fanning it out would send it
        # to the whole topic audience.
        raise EditionStateError(f"edition {edition_id} is a digest; it cannot be resumed")
    if edition.status in (EditionStatus.FAILED.value, EditionStatus.STARTING.value):
        return start_sending(edition_id, mail, stale_after=stale_after,
                             statuses=(EditionStatus.FAILED.value,))
    raise EditionStateError(f"edition {edition_id} is {edition.status}; only a paused or "
                            "failed edition can resume")


def cancel(edition_id: int, now: datetime | None = None) -> int:
    """Stop the edition; every delivery not yet sent is cancelled. Returns how many."""
    # From starting too: the claimant's move to sending then changes nothing, and it
    # cancels what it queued (start_sending).
    if not transition(edition_id, (EditionStatus.DRAFT.value, EditionStatus.SCHEDULED.value,
                                   EditionStatus.STARTING.value, EditionStatus.SENDING.value,
                                   EditionStatus.PAUSED.value, EditionStatus.FAILED.value),
                      EditionStatus.CANCELLED.value, finished_at=now or utcnow()):
        raise EditionStateError(f"edition {edition_id} cannot be cancelled now")
    return cancel_open(edition_id)


def cancel_open(edition_id: int) -> int:
    """Cancel every queued or deferred delivery of the edition; returns how many."""
    # Claimed rows are left alone: a worker's outcome write only moves claimed rows, so a
    # message in flight at this moment is recorded as sent if the relay took it (and the
    # worker cancels the rest of its claim within a second).
    lock = " FOR UPDATE" if db.session.get_bind().dialect.name == "postgresql" else ""
    result = db.session.execute(text(_CANCEL_OPEN.format(lock=lock)), {"id": edition_id})
    db.session.commit()
    return result.rowcount or 0


# -- name: cancel-open-deliveries
# Contract: every queued or deferred delivery of the edition becomes cancelled; rows are
# locked in id order (PostgreSQL), as every statement locking several deliveries does.
_CANCEL_OPEN = """
UPDATE deliveries SET status = 'cancelled'
WHERE id IN (SELECT id FROM deliveries WHERE edition_id = :id
               AND status IN ('queued', 'deferred') ORDER BY id{lock})
"""


def ensure_sending(edition_id: int, mail, *, stale_after: timedelta = DEFAULT_STALE_AFTER,
                   poll: float = 0.2) -> int | None:
    """Start a draft or scheduled edition (returning the deliveries queued), or wait for the
    worker that is starting it (``None``), or accept one already sending (``None``); any
    other state raises ``EditionStateError``."""
    deadline = time.monotonic() + 2 * stale_after.total_seconds()
    while True:
        edition = db.session.get(Edition, edition_id)
        if edition is None:
            raise EditionStateError(f"no edition {edition_id}")
        db.session.refresh(edition)
        if edition.status in _STARTABLE or edition.status == EditionStatus.STARTING.value:
            try:
                return start_sending(edition_id, mail, stale_after=stale_after)
            except EditionBusy:
                pass
            except EditionStateError:
                db.session.rollback()  # it moved on meanwhile: look again
                continue
            if time.monotonic() > deadline:
                raise EditionStateError(f"edition {edition_id} is still starting")
            time.sleep(poll)
            continue
        if edition.status != EditionStatus.SENDING.value:
            raise EditionStateError(f"edition {edition_id} is {edition.status}")
        return None


def start_due_editions(mail, *, stale_after: timedelta = DEFAULT_STALE_AFTER) -> list[int]:
    """Start every scheduled edition whose time has come, and take over every start left by
    a dead worker; returns the ids this worker started. Losing a start to another worker
    is normal and quiet."""
    now = utcnow()
    due = list(db.session.scalars(select(Edition.id).where(
        ((Edition.status == EditionStatus.SCHEDULED.value) & (Edition.send_at <= now))
        | ((Edition.status == EditionStatus.STARTING.value)
           & (Edition.started_at < now - stale_after)))
        .order_by(Edition.id)))
    started = []
    for edition_id in due:
        try:
            start_sending(edition_id, mail, now=now, stale_after=stale_after)
            started.append(edition_id)
        except EditionStateError:
            db.session.rollback()  # another worker started it first
        except Exception:  # noqa: BLE001 - logged as the edition's failure; go on with others
            db.session.rollback()
    return started


def audience_size(edition: Edition, today: date | None = None) -> int:
    """How many readers the edition would go to if it started now (fan-out's own rule)."""
    from newsletter.delivery.fanout import count_audience

    topic_ids = list(db.session.scalars(select(Topic.id).where(
        Topic.slug.in_(edition.audience.get("topics", [])))))
    now = utcnow()
    return count_audience(kind=edition.kind, topic_ids=topic_ids, paid_only=_premium(edition),
                          today=today or now.date(), now=now)


def _premium(edition: Edition) -> bool:
    """Whether only paying readers may get the edition (its tier, premium topics, or a
    premium synthesis in a section)."""
    return entitlements.edition_needs_payment(edition.audience, edition.content)
