"""When a reader's next digest comes, in their own terms — for the welcome email, the page
after confirming and the preference centre.

The same schedule the digest job follows (:mod:`newsletter.editions.schedule`): their local
time in their timezone, their day if weekly, after any pause, never a date already handled.
A digest goes out only when something new was published in their topics, so the words say
"next digest", not a promise of content.
"""

from __future__ import annotations

from datetime import datetime

from newsletter.editions import schedule
from newsletter.subscribers.models import Reader, ReaderStatus


def next_for(reader: Reader, now: datetime) -> schedule.Due | None:
    """The reader's next digest after ``now``, or None (they get none: not active, digests
    stopped, or paused with no end)."""
    if reader.status != ReaderStatus.ACTIVE.value or not reader.gets_digests:
        return None
    plan = schedule.Plan(reader.timezone, reader.delivery_minute, reader.frequency,
                         reader.weekly_day)
    return schedule.next_digest(plan, now, paused_until=reader.paused_until,
                                handled_through=reader.last_digest_on)


def sentence(reader: Reader, now: datetime, hour_format: str = "24h") -> str | None:
    """"Wednesday 9 December at 07:00, Paris time", or None (see :func:`next_for`)."""
    due = next_for(reader, now)
    return schedule.describe(due, reader.timezone, hour_format=hour_format) if due else None
