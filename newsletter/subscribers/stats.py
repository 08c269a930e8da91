"""Reader statistics for the dashboard: readers over time (in all, and for each topic),
new and lost readers per day, and today's readers by topic and tier.

A reader counts from the day they confirmed until the day they left (unsubscribed or were
erased). Topic and tier series use the topics and plan readers have now: a change of either
is not dated, so a reader who moved counts under the new one for the whole window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, or_, select

from newsletter.content.models import TOPIC_ORDER, Topic
from newsletter.db import db
from newsletter.subscribers.models import Reader, ReaderStatus, ReaderTopic


@dataclass(frozen=True)
class Series:
    days: list[date]
    readers: list[int]
    new: list[int]
    lost: list[int]


def _series(now: datetime, days: int, topic_id: int | None = None,
            plan: str | None = None) -> Series:
    start_day = now.date() - timedelta(days=days - 1)
    start = datetime.combine(start_day, datetime.min.time(), tzinfo=now.tzinfo)
    base = select(Reader.confirmed_at, Reader.unsubscribed_at).where(
        Reader.confirmed_at.is_not(None))
    count = select(func.count(Reader.id)).where(
        Reader.confirmed_at < start,
        or_(Reader.unsubscribed_at.is_(None), Reader.unsubscribed_at >= start))
    if topic_id is not None:
        member = and_(ReaderTopic.reader_id == Reader.id, ReaderTopic.topic_id == topic_id)
        base = base.join(ReaderTopic, member)
        count = count.join(ReaderTopic, member)
    if plan is not None:
        base = base.where(Reader.plan == plan)
        count = count.where(Reader.plan == plan)
    before = db.session.scalar(count) or 0
    # Only readers who joined or left inside the window are read, whatever the list's size.
    rows = db.session.execute(base.where(
        or_(Reader.confirmed_at >= start, Reader.unsubscribed_at >= start))).all()
    index = {start_day + timedelta(days=i): i for i in range(days)}
    new, lost = [0] * days, [0] * days
    for confirmed, left in rows:
        if confirmed >= start and confirmed.date() in index:
            new[index[confirmed.date()]] += 1
        if left is not None and left >= start and left.date() in index and left >= confirmed:
            lost[index[left.date()]] += 1
    readers, total = [], before
    for i in range(days):
        total += new[i] - lost[i]
        readers.append(total)
    return Series(days=list(index), readers=readers, new=new, lost=lost)


def readers_over_time(now: datetime, days: int = 30) -> Series:
    return _series(now, days)


def paying_over_time(now: datetime, days: int = 30) -> Series:
    """Readers on the paid plan now, over the window (a plan change is not dated either)."""
    return _series(now, days, plan="paid")


def topics_over_time(now: datetime, days: int = 30) -> dict[str, Series]:
    """One series per topic, in the topics' order."""
    return {t.name: _series(now, days, t.id)
            for t in db.session.scalars(select(Topic).order_by(*TOPIC_ORDER))}


def by_topic_and_tier() -> list[dict]:
    """Active readers of each topic by plan: ``[{"topic", "premium", "free", "paid"}]``."""
    rows = db.session.execute(
        select(Topic.name, Topic.premium, Reader.plan, func.count(Reader.id))
        .join(ReaderTopic, ReaderTopic.topic_id == Topic.id)
        .join(Reader, Reader.id == ReaderTopic.reader_id)
        .where(Reader.status == ReaderStatus.ACTIVE.value)
        .group_by(Topic.name, Topic.premium, Reader.plan, *TOPIC_ORDER)
        .order_by(*TOPIC_ORDER)).all()
    result: dict[str, dict] = {}
    for name, premium, plan, n in rows:
        entry = result.setdefault(name, {"topic": name, "premium": premium, "free": 0,
                                         "paid": 0})
        entry["paid" if plan == "paid" else "free"] += n
    return list(result.values())


def totals() -> dict[str, int]:
    """Readers by status and, for active ones, by plan."""
    result = {s.value: 0 for s in ReaderStatus} | {"free": 0, "paid": 0}
    for status, plan, n in db.session.execute(
            select(Reader.status, Reader.plan, func.count()).group_by(Reader.status,
                                                                     Reader.plan)):
        result[status] = result.get(status, 0) + n
        if status == ReaderStatus.ACTIVE.value:
            result["paid" if plan == "paid" else "free"] += n
    return result
