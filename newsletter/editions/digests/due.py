"""Who is due a digest: readers whose local delivery time has come (``due_items``), or
every active reader at once (``next_items``, for ``digest --now``). Eligibility is the one
rule of ``editions.audience``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, union_all

from newsletter.billing.entitlements import effective_plan
from newsletter.db import db
from newsletter.editions import audience, schedule
from newsletter.subscribers.models import Reader


@dataclass(frozen=True)
class Due:
    reader_id: int
    billing_plan: str | None  # the reader's plan in effect now (``billing.entitlements``)
    local_date: date
    instant: datetime
    frequency: str          # daily or weekly (paused readers whose pause ended: daily)
    old_on: date | None     # the reader row as read: compare-and-set values
    old_until: datetime | None
    label_date: date        # the reader's local date when it goes out (shown in the email)


def due_items(now: datetime, grace: timedelta) -> tuple[list[Due], list[Due]]:
    """Readers whose latest digest time has passed and is not handled yet: (due less than
    ``grace`` ago, due longer ago). A reader who confirmed after that time waits for their
    next one."""
    fresh: list[Due] = []
    stale: list[Due] = []
    for plan in plans():
        due = schedule.latest_due(plan, now)
        if due is None:
            continue
        for row in unhandled_readers(plan, due):
            if row.confirmed_at is not None and row.confirmed_at > due.instant:
                continue  # subscribed after that time: their first digest is the next one
            item = Due(row.id, effective_plan(row.plan, row.plan_until, now), due.local_date,
                       due.instant,
                       schedule.digest_frequency(plan.frequency), row.last_digest_on,
                       row.digest_covered_until, due.local_date)
            (fresh if now - due.instant < grace else stale).append(item)
    return fresh, stale


def next_items(now: datetime) -> list[Due]:
    """For each active reader not paused today (in their timezone), their next digest,
    brought forward to ``now``: it counts as the digest of their next delivery date."""
    rows = db.session.execute(
        select(Reader.id, Reader.plan, Reader.plan_until, Reader.timezone,
               Reader.delivery_minute,
               Reader.frequency, Reader.weekly_day, Reader.paused_until,
               Reader.last_digest_on, Reader.digest_covered_until)
        .where(audience.list_mail_clause(), audience.digest_stream_clause())
        .order_by(Reader.id)).all()
    items = []
    for row in rows:
        today = now.astimezone(schedule.zone(row.timezone)).date()
        if audience.is_paused(row.frequency, row.paused_until, today):
            continue
        plan = schedule.Plan(row.timezone, row.delivery_minute, row.frequency, row.weekly_day)
        upcoming = schedule.next_due(plan, now).local_date
        if row.last_digest_on is not None and row.last_digest_on >= upcoming:
            upcoming = schedule.next_due(
                plan, schedule.local_instant(row.last_digest_on, row.delivery_minute,
                                             schedule.zone(row.timezone))).local_date
        items.append(Due(row.id, effective_plan(row.plan, row.plan_until, now), upcoming, now,
                         schedule.digest_frequency(row.frequency), row.last_digest_on,
                         row.digest_covered_until, today))
    return items


# -- name: digest-plans
# Contract: the distinct schedules of all readers (a covering scan of ix_readers_schedule).
# Schedules are few (timezones × chosen times), so due dates are computed once per
# schedule, not per reader; schedules of readers who get nothing cost one empty lookup.
def plans() -> list[schedule.Plan]:
    rows = db.session.execute(
        select(Reader.timezone, Reader.delivery_minute, Reader.frequency, Reader.weekly_day)
        .distinct().order_by(Reader.timezone, Reader.delivery_minute, Reader.frequency,
                             Reader.weekly_day))
    return [schedule.Plan(*row) for row in rows]


# -- name: digest-unhandled-readers
# Contract: active readers on this schedule whose digest for the due local date is not
# handled yet, and who are not paused on that date. Two index ranges on
# ix_readers_schedule (handled before that date; never handled), so once a schedule's
# readers are handled for the day, looking again costs nothing.
def unhandled_readers(plan: schedule.Plan, due: schedule.Due):
    columns = (Reader.id, Reader.plan, Reader.plan_until, Reader.confirmed_at,
               Reader.last_digest_on,
               Reader.digest_covered_until)
    same_plan = (Reader.timezone == plan.timezone,
                 Reader.delivery_minute == plan.delivery_minute,
                 Reader.frequency == plan.frequency, Reader.weekly_day == plan.weekly_day)
    not_paused = audience.not_paused_clause(due.local_date)
    digests = audience.digest_stream_clause()
    query = union_all(
        select(*columns).where(*same_plan, Reader.last_digest_on < due.local_date,
                               audience.list_mail_clause(), digests, not_paused),
        select(*columns).where(*same_plan, Reader.last_digest_on.is_(None),
                               audience.list_mail_clause(), digests, not_paused))
    return sorted(db.session.execute(query).all(), key=lambda row: row.id)
