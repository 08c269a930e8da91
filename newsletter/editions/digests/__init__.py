"""Digests: every reader gets, at their own local time, what was published since their last.

Three steps, one module each: who is due (``due``), what they get (``selection``), and the
writes (``write``); this module runs them.

Contract of :func:`compose_due` (run every minute by the worker's scheduler):

* a reader is due when their latest scheduled time (``schedule.latest_due``: local time,
  IANA timezone, daily or weekly on their weekday; a paused reader from the day the pause
  ends) has passed, came after they confirmed, and their digest for that local date has
  not been handled yet (``readers.last_digest_on``);
* due less than ``grace`` ago: they get the syntheses published since their previous
  digest (``readers.digest_covered_until``; the first one reaches back a day, or a week for
  weekly readers; never more than a week) in the topics they follow, grouped by topic in
  their order, newest first, each synthesis once (under the first of its topics they
  follow); premium topics only for paying readers; nothing at all when nothing is new;
* due longer ago (a worker that was down): skipped and logged; the content waits for
  their next digest, since only a digest that was sent moves ``digest_covered_until``.

Readers due in the same UTC slot, on the same local date, with the same frequency and the
same sections share one edition (rendered once); its idempotency key is (kind, local date,
slot, frequency, hash of the sections). Each edition's reader updates and deliveries are
one transaction, and a reader row moves only by compare-and-set from the values this run
read, so a second worker, a restart or a crash between any two statements never gives a
reader two digests for one date, and never loses one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from newsletter.content.models import Topic
from newsletter.db import db
from newsletter.editions import schedule
from newsletter.editions.digests.due import Due, due_items, next_items
from newsletter.editions.digests.selection import (
    TopicInfo,
    digest_hash,
    group_items,
    recent,
    since,
)
from newsletter.editions.digests.write import QueueReaders, mark_handled, write_group

__all__ = ["ComposeResult", "QueueReaders", "compose_due", "compose_now"]

log = logging.getLogger(__name__)
# A digest covers what was listed until a few seconds before it was composed, so a
# synthesis whose (short) ingest transaction was still open then goes in the next one.
LISTING_MARGIN = timedelta(seconds=10)
# A digest edition that takes a reader stays open at least this long after, so finishing
# it (editions.open_until) can never race with adding a reader to it.
OPEN_MARGIN = timedelta(minutes=10)


@dataclass
class ComposeResult:
    due: int = 0            # readers whose digest time had come
    queued: int = 0         # deliveries queued
    empty: int = 0          # readers with nothing new (no email)
    skipped: int = 0        # readers whose time passed longer ago than the grace
    editions: list[int] = field(default_factory=list)  # editions that got readers this run


def compose_due(mail, *, queue: QueueReaders, now: datetime, grace: timedelta,
                slot_minutes: int) -> ComposeResult:
    """Queue the digests whose time has come; see the module docstring."""
    result = ComposeResult()
    fresh, stale = due_items(now, grace)
    if stale:
        result.skipped = mark_handled(stale)
        log.warning("skipped %d digest(s) due more than %s ago (the worker was not running); "
                    "their content goes in the readers' next digest (up to %s back)",
                    result.skipped, grace, schedule.lookback(schedule.DAILY))
    result.due = len(fresh)
    _compose(mail, fresh, queue=queue, now=now, slot_minutes=slot_minutes, grace=grace,
             result=result, prefix="digest")
    return result


def compose_now(mail, *, queue: QueueReaders, now: datetime,
                slot_minutes: int) -> ComposeResult:
    """Compose and queue at once the digest each active reader would get next.

    Their next digest is brought forward: it holds what was published since their last one
    (or the usual first window), and it counts as the digest of their next delivery date
    (today if their time is still ahead, else their next day or week), so nobody gets two
    digests for one date nor the same syntheses twice. Readers with nothing new get
    nothing; paused readers are left alone.
    """
    items = next_items(now)
    result = ComposeResult(due=len(items))
    _compose(mail, items, queue=queue, now=now, slot_minutes=slot_minutes, grace=timedelta(0),
             result=result, prefix="digest-now")
    return result


def _compose(mail, items: list[Due], *, queue: QueueReaders, now: datetime,
             slot_minutes: int, grace: timedelta, result: ComposeResult, prefix: str) -> None:
    if not items:
        return
    until = now - LISTING_MARGIN
    by_topic, syntheses = recent(min(since(item) for item in items), until,
                                 mail.config["BASE_URL"])
    groups, empty = group_items(items, now=now, until=until, slot_minutes=slot_minutes,
                                by_topic=by_topic)
    if empty:
        result.empty = mark_handled(empty)
    topics = {t.id: TopicInfo(t.name, t.slug) for t in db.session.scalars(select(Topic))}
    for (slot, label_date, frequency, sections), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], digest_hash(kv[0][3]))):
        edition_id, queued = write_group(
            mail, members, queue=queue, prefix=prefix, slot=slot, local_date=label_date,
            frequency=frequency, sections=sections, topics=topics, syntheses=syntheses,
            now=now, covered_until=until,
            open_until=max(slot + timedelta(minutes=slot_minutes) + grace,
                           now + OPEN_MARGIN))
        result.queued += queued
        if edition_id is not None and queued:
            result.editions.append(edition_id)
