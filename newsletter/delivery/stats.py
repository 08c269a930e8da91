"""Statistics of sending: counts of an edition's deliveries by status, engagement, and the
recent editions with their counts. Read-only queries for the CLI and the admin dashboard."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import case, func, select

from newsletter.db import db
from newsletter.delivery.models import (
    OPEN_STATUSES,
    BounceEvent,
    Delivery,
    DeliveryStatus,
    TrackingEvent,
)
from newsletter.editions.models import Edition, EditionLink


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


def queue_health(now: datetime) -> dict:
    """What waits to be sent: open deliveries (queued, claimed, deferred), those due now,
    the oldest one's creation time, and messages accepted by relays in the last minute and
    the last hour."""
    row = db.session.execute(select(
        func.count(Delivery.id),
        func.sum(case((Delivery.next_attempt_at <= now, 1), else_=0)),
        func.min(Delivery.created_at),
    ).where(Delivery.status.in_(OPEN_STATUSES))).one()
    sent = db.session.execute(select(
        func.sum(case((Delivery.sent_at >= now - timedelta(minutes=1), 1), else_=0)),
        func.count(Delivery.id),
    ).where(Delivery.sent_at >= now - timedelta(hours=1))).one()
    return {"open": row[0] or 0, "due": row[1] or 0, "oldest": row[2],
            "sent_last_minute": sent[0] or 0, "sent_last_hour": sent[1] or 0}


UNSUBSCRIBE_WINDOW = timedelta(days=7)


def funnel(edition_id: int) -> dict[str, int]:
    """What happened to an edition, step by step: its :func:`counts`, readers who opened it
    (people, not machines), readers who clicked, complaints, and readers who unsubscribed
    within :data:`UNSUBSCRIBE_WINDOW` of being sent it (unsubscribe links do not name the
    edition, so this is attributed by time)."""
    from newsletter.subscribers.models import ConsentEvent

    result = counts(edition_id)
    people = db.session.execute(select(
        # Set by a person's first open or click only (never by a machine's): a reader who
        # opened it once among scanners' opens, or clicked with images off, opened it.
        func.sum(case((Delivery.first_opened_at.is_not(None), 1), else_=0)),
        func.sum(case((Delivery.first_clicked_at.is_not(None), 1), else_=0)),
        func.sum(Delivery.machine_opens),
    ).where(Delivery.edition_id == edition_id)).one()
    complained = db.session.scalar(
        select(func.count(func.distinct(BounceEvent.delivery_id)))
        .join(Delivery, Delivery.id == BounceEvent.delivery_id)
        .where(Delivery.edition_id == edition_id, BounceEvent.kind == "complaint")) or 0
    last_sent = db.session.scalar(select(func.max(Delivery.sent_at))
                                  .where(Delivery.edition_id == edition_id))
    # The window's upper bound is taken from the edition's last send (computed here, not
    # in SQL: date arithmetic on a column differs between SQLite and PostgreSQL).
    until = (last_sent + UNSUBSCRIBE_WINDOW) if last_sent else None
    unsubscribed = 0 if until is None else db.session.scalar(
        select(func.count(func.distinct(ConsentEvent.reader_id)))
        .join(Delivery, Delivery.reader_id == ConsentEvent.reader_id)
        .where(Delivery.edition_id == edition_id, Delivery.sent_at.is_not(None),
               ConsentEvent.kind.in_(("unsubscribe", "unsubscribe_stream",
                                      "unsubscribe_topic")),
               ConsentEvent.occurred_at >= Delivery.sent_at,
               ConsentEvent.occurred_at < until)) or 0
    result.update(opened=people[0] or 0, clicked=people[1] or 0, machine_opens=people[2] or 0,
                  complained=complained, unsubscribed=unsubscribed)
    return result


def link_clicks(edition_id: int) -> list[tuple[int, str, int, int]]:
    """Each tracked link of the edition: ``(n, url, clicks, readers who clicked)``, most
    clicked first (from the click events kept, see ``TRACKING_RETENTION_DAYS``). Clicks by
    machines (link scanners, which follow every link) are not counted, as in :func:`funnel`."""
    clicks = {link: (n, people) for link, n, people in db.session.execute(
        select(TrackingEvent.link, func.count(TrackingEvent.id),
               func.count(func.distinct(TrackingEvent.delivery_id)))
        .join(Delivery, Delivery.id == TrackingEvent.delivery_id)
        .where(Delivery.edition_id == edition_id, TrackingEvent.kind == "click",
               TrackingEvent.machine.is_(False))
        .group_by(TrackingEvent.link))}
    links = db.session.execute(select(EditionLink.n, EditionLink.url)
                               .where(EditionLink.edition_id == edition_id))
    rows = [(n, url, *clicks.get(n, (0, 0))) for n, url in links]
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def failures(edition_id: int, limit: int = 50) -> list[Delivery]:
    """The edition's bounced, failed and deferred deliveries with the relay's last reply."""
    return list(db.session.scalars(
        select(Delivery).where(Delivery.edition_id == edition_id, Delivery.status.in_(
            (DeliveryStatus.BOUNCED.value, DeliveryStatus.FAILED.value,
             DeliveryStatus.DEFERRED.value)))
        .order_by(Delivery.id).limit(limit)))


def progress(edition_id: int, now: datetime) -> dict:
    """Live progress: the counts, the share finished, messages accepted in the last minute
    (the rate) and, from it, the seconds left."""
    result = counts(edition_id)
    total = sum(v for k, v in result.items() if k != "open")
    done = total - result["open"] - result["cancelled"]
    recent = db.session.scalar(select(func.count(Delivery.id)).where(
        Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.SENT.value,
        Delivery.sent_at >= now - timedelta(minutes=1))) or 0
    rate = recent / 60
    result.update(total=total, done=done,
                  percent=round(100 * done / (total - result["cancelled"]), 1)
                  if total - result["cancelled"] else 0.0,
                  rate_per_minute=recent,
                  eta_seconds=round(result["open"] / rate) if rate and result["open"] else None)
    return result


def recent_editions_of(kind: str, limit: int) -> list[Edition]:
    return list(db.session.scalars(select(Edition).where(Edition.kind == kind)
                                   .order_by(Edition.id.desc()).limit(limit)))


def digest_days(now: datetime, days: int) -> list[dict]:
    """Digest editions grouped by the (UTC) day they were made, newest first, from the
    whole day ``days`` days before ``now``: how many editions and the deliveries of all of
    them by status (one grouped query, however many editions a day has)."""
    # From the start of that day: a cut at now's time of day would show the oldest day with
    # only part of its editions, a count its own page contradicts.
    since = datetime.combine((now - timedelta(days=days)).date(), time.min, tzinfo=now.tzinfo)
    rows = db.session.execute(
        select(Edition.created_at, Edition.id, Delivery.status, func.count(Delivery.id))
        .outerjoin(Delivery, Delivery.edition_id == Edition.id)
        .where(Edition.kind == "digest", Edition.created_at >= since)
        .group_by(Edition.id, Edition.created_at, Delivery.status)).all()
    by_day: dict = {}
    for created, edition_id, status, n in rows:
        day = by_day.setdefault(created.date(), {"day": created.date(), "editions": set(),
                                                 **{s.value: 0 for s in DeliveryStatus}})
        day["editions"].add(edition_id)
        if status:
            day[status] += n
    result = []
    for day in sorted(by_day.values(), key=lambda d: d["day"], reverse=True):
        day["editions"] = len(day["editions"])
        day["open"] = sum(day[s] for s in OPEN_STATUSES)
        result.append(day)
    return result
