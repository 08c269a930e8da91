"""What each due reader gets: the syntheses listed since their last digest, in the topics
they follow (and may have), grouped into shared digests."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from newsletter.billing import entitlements
from newsletter.content.models import Synthesis, SynthesisStatus, Topic
from newsletter.db import db
from newsletter.editions import schedule
from newsletter.editions.digests.due import Due
from newsletter.editions.render import synthesis_dict
from newsletter.subscribers.models import ReaderTopic

CHUNK = 2000  # ids per IN (...) list; far below every database's parameter limit
Sections = tuple[tuple[int, tuple[int, ...]], ...]  # ((topic_id, (synthesis ids…)), …)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    slug: str


def since(item: Due) -> datetime:
    """Where the reader's digest starts: their last digest's end (by listing time), or for
    a first digest the usual window (by publication time); never further back than the
    frequency's lookback."""
    floor = item.instant - schedule.lookback(item.frequency)
    since = item.old_until or item.instant - schedule.window(item.frequency)
    return max(since, floor)


def group_items(items: list[Due], *, now: datetime, until: datetime, slot_minutes: int,
                by_topic) -> tuple[dict[tuple, list[Due]], list[Due]]:
    """Readers by shared digest — (slot, local date, frequency, sections) — and the readers
    with nothing new. Premium topics count only for readers entitled to them."""
    topics_of = followed_topics([item.reader_id for item in items])
    premium = set(db.session.scalars(select(Topic.id).where(Topic.premium.is_(True))))
    groups: dict[tuple, list[Due]] = defaultdict(list)
    empty: list[Due] = []
    memo: dict[tuple, Sections] = {}
    for item in items:
        followed = tuple(t for t in topics_of.get(item.reader_id, ())
                         if entitlements.may_follow(item.billing_plan, premium=t in premium))
        start = since(item)
        first = item.old_until is None
        key = (followed, start, first)
        if key not in memo:
            memo[key] = sections_for(followed, start, by_topic, first=first)
        sections = memo[key]
        if not sections:
            empty.append(item)
            continue
        slot = schedule.floor_slot(item.instant, slot_minutes)
        groups[(slot, item.label_date, item.frequency, sections)].append(item)
    return groups, empty


def followed_topics(reader_ids: Sequence[int]) -> dict[int, list[int]]:
    followed: dict[int, list[int]] = defaultdict(list)
    for chunk in chunks(reader_ids):
        rows = db.session.execute(
            select(ReaderTopic.reader_id, ReaderTopic.topic_id)
            .where(ReaderTopic.reader_id.in_(chunk))
            .order_by(ReaderTopic.reader_id, ReaderTopic.position, ReaderTopic.topic_id))
        for reader_id, topic_id in rows:
            followed[reader_id].append(topic_id)
    return followed


def recent(since: datetime, until: datetime, base_url: str):
    """Syntheses listed (made visible) in (since, until], newest first: by topic id, and as
    the template's plain dicts by id (plain data: the per-edition commits expire ORM
    objects). ``listed_at >= published_at``, so this holds every synthesis published in
    the window too."""
    rows = list(db.session.scalars(
        select(Synthesis).where(Synthesis.status == SynthesisStatus.PUBLISHED.value,
                                Synthesis.listed_at > since,
                                Synthesis.listed_at <= until)
        .order_by(Synthesis.published_at.desc(), Synthesis.id.desc())))
    syntheses = {s.id: {**synthesis_dict(s, base_url), "listed_at": s.listed_at}
                 for s in rows}
    by_topic: dict[int, list[dict]] = defaultdict(list)
    for synthesis in rows:
        for topic in synthesis.topics:
            by_topic[topic.id].append(syntheses[synthesis.id])
    return by_topic, syntheses


def sections_for(followed: Iterable[int], since: datetime, by_topic, *, first: bool) -> Sections:
    """The reader's sections: after their last digest by listing time (so a back-dated or
    late-published synthesis still comes), or for a first digest by publication time."""
    seen: set[int] = set()
    sections = []
    when = "published_at" if first else "listed_at"
    for topic_id in followed:
        ids = []
        for synthesis in by_topic.get(topic_id, ()):
            if synthesis[when] > since and synthesis["id"] not in seen:
                seen.add(synthesis["id"])
                ids.append(synthesis["id"])
        if ids:
            sections.append((topic_id, tuple(ids)))
    return tuple(sections)


def digest_hash(sections: Sections) -> str:
    return hashlib.sha256(json.dumps(sections).encode()).hexdigest()[:16]


def chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    ids = list(ids)
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]
