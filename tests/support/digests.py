"""Digest test helpers: run the scheduler's digest job at a given moment, read the results."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from sqlalchemy import select

from newsletter.db import db
from newsletter.delivery.models import Delivery
from newsletter.editions.models import Edition
from newsletter.scheduler import jobs
from tests.factories import make_synthesis


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def compose_at(app, when: datetime) -> None:
    """The worker's digest job, run with the clock at ``when`` (as the scheduler runs it)."""
    with time_machine.travel(when, tick=False):
        jobs.compose_digests(app)
    db.session.expire_all()


def walk(app, start: datetime, end: datetime, step: timedelta = timedelta(minutes=15)) -> None:
    """Run the digest job at every ``step`` from ``start`` to ``end`` (a worker's minutes)."""
    when = start
    while when <= end:
        compose_at(app, when)
        when += step


def publish_every(start: datetime, end: datetime, hours: int = 6,
                  topics=("ai-policy-and-safety",)) -> list:
    """A synthesis every few hours, so every digest in the window has something new."""
    made = []
    when = start
    while when <= end:
        made.append(make_synthesis(title=f"Published {when:%Y-%m-%d %H:%M} UTC",
                                   topics=list(topics), published_at=when.isoformat()))
        when += timedelta(hours=hours)
    return made


def deliveries_by_reader() -> dict[int, list[Delivery]]:
    rows = db.session.scalars(select(Delivery).order_by(Delivery.created_at, Delivery.id))
    result: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in rows:
        result[delivery.reader_id].append(delivery)
    return result


def local_times(deliveries, timezone: str) -> list[datetime]:
    """When each delivery was queued, on the reader's wall clock."""
    return [d.created_at.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
            for d in deliveries]


def sections_of(delivery) -> list[dict]:
    return db.session.get(Edition, delivery.edition_id).content["sections"]


def synthesis_ids_of(delivery) -> list[int]:
    return [i for section in sections_of(delivery) for i in section["synthesis_ids"]]
