"""Content use cases: ingest (upsert by external id) and the queries the site and API need."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from newsletter.content.models import (
    TOPIC_ORDER,
    Synthesis,
    SynthesisStatus,
    Topic,
    synthesis_topics,
)
from newsletter.content.validation import (
    FieldError,
    InvalidSynthesis,
    SynthesisInput,
    parse_synthesis,
)
from newsletter.db import db, utcnow


class IngestOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class IngestResult:
    synthesis: Synthesis
    outcome: IngestOutcome


def slugify(text: str, max_len: int = 80) -> str:
    """ASCII, lowercase, hyphen-separated; cut at a word boundary."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len].rsplit("-", 1)[0]
    return slug or "synthesis"


def unique_slug(column, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``… when a row has it in ``column`` already (any
    slug column: syntheses, editions)."""
    taken = set(db.session.scalars(
        select(column).where(or_(column == base, column.like(f"{base}-%")))))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def resolve_topics(keys: list[str]) -> tuple[list[Topic], list[FieldError]]:
    """Match topics by slug or by name (case-insensitive); unknown ones are named in errors."""
    topics = list(db.session.scalars(select(Topic)))
    by_key: dict[str, Topic] = {}
    for topic in topics:
        by_key[topic.slug.lower()] = topic
        by_key[topic.name.lower()] = topic
    resolved: list[Topic] = []
    errors: list[FieldError] = []
    for index, key in enumerate(keys):
        topic = by_key.get(key.strip().lower())
        if topic is None:
            errors.append(FieldError(f"topics[{index}]", f"unknown topic {key!r}"))
        elif topic not in resolved:
            resolved.append(topic)
    return resolved, errors


_COMPARED = ("title", "summary", "context", "analysis", "watch", "mentions", "byline",
             "source_name", "source_url", "status")


def _apply(synthesis: Synthesis, data: SynthesisInput, topics: list[Topic]) -> bool:
    changed = False
    for name in _COMPARED:
        value = getattr(data, name)
        if getattr(synthesis, name) != value:
            setattr(synthesis, name, value)
            changed = True
    if data.published_at is not None and synthesis.published_at != data.published_at:
        synthesis.published_at = data.published_at
        changed = True
    if [t.id for t in synthesis.topics] != [t.id for t in topics]:
        synthesis.topics = topics
        changed = True
    if synthesis.status == SynthesisStatus.PUBLISHED.value and synthesis.listed_at is None:
        synthesis.listed_at = max(utcnow(), synthesis.published_at)
    return changed


def upsert_synthesis(data: SynthesisInput) -> IngestResult:
    """Create the synthesis with ``data.external_id`` or update it in place.

    The same payload twice yields one row (the second call reports ``unchanged``). A slug,
    once given, never changes on update, so published links keep working. Raises
    ``InvalidSynthesis`` for unknown topics or a slug taken by another synthesis.
    """
    topics, errors = resolve_topics(data.topic_keys)
    if errors:
        raise InvalidSynthesis(errors)
    for attempt in range(2):
        existing = db.session.scalar(
            select(Synthesis).where(Synthesis.external_id == data.external_id)
        )
        if existing is not None:
            if data.slug and data.slug != existing.slug:
                _check_slug_free(data.slug, existing.id)
                existing.slug = data.slug
                _apply(existing, data, topics)
                db.session.commit()
                return IngestResult(existing, IngestOutcome.UPDATED)
            changed = _apply(existing, data, topics)
            db.session.commit()
            outcome = IngestOutcome.UPDATED if changed else IngestOutcome.UNCHANGED
            return IngestResult(existing, outcome)
        if data.slug:
            _check_slug_free(data.slug, None)
        synthesis = Synthesis(
            external_id=data.external_id,
            slug=data.slug or unique_slug(Synthesis.slug, slugify(data.title)),
            published_at=data.published_at or utcnow(),
        )
        _apply(synthesis, data, topics)
        db.session.add(synthesis)
        try:
            db.session.commit()
        except IntegrityError:
            # Another writer created the same external id (or slug) between our read and
            # write; the second pass sees its row and updates it.
            db.session.rollback()
            if attempt:
                raise
            continue
        return IngestResult(synthesis, IngestOutcome.CREATED)
    raise AssertionError("unreachable")  # pragma: no cover


def _check_slug_free(slug: str, exclude_id: int | None) -> None:
    owner = db.session.scalar(select(Synthesis.id).where(Synthesis.slug == slug))
    if owner is not None and owner != exclude_id:
        raise InvalidSynthesis([FieldError("slug", f"{slug!r} belongs to another synthesis")])


def ingest(payload: Any) -> IngestResult:
    """Validate a decoded JSON payload and upsert it; raises ``InvalidSynthesis``."""
    return upsert_synthesis(parse_synthesis(payload))


# -- queries -------------------------------------------------------------------------------

def _visible(now: datetime | None = None):
    """Published and not scheduled for later."""
    return (Synthesis.status == SynthesisStatus.PUBLISHED.value) & (
        Synthesis.published_at <= (now or utcnow())
    )


def list_topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(*TOPIC_ORDER)))


def get_topic(slug: str) -> Topic | None:
    """The topic with this slug, or None (also for text no slug can be: a NUL, which
    PostgreSQL refuses in a query, or other control characters)."""
    if not slug.isprintable():
        return None
    return db.session.scalar(select(Topic).where(Topic.slug == slug))


def get_visible_synthesis(slug: str) -> Synthesis | None:
    if not slug.isprintable():
        return None
    return db.session.scalar(select(Synthesis).where(Synthesis.slug == slug, _visible()))


def latest_syntheses(limit: int = 20, topic: Topic | None = None,
                     offset: int = 0) -> list[Synthesis]:
    """The newest visible syntheses, optionally within one topic."""
    query = select(Synthesis).where(_visible())
    if topic is not None:
        query = query.join(synthesis_topics).where(synthesis_topics.c.topic_id == topic.id)
    query = query.order_by(Synthesis.published_at.desc(), Synthesis.id.desc())
    return list(db.session.scalars(query.offset(offset).limit(limit)))


def count_visible(topic: Topic | None = None) -> int:
    query = select(func.count(Synthesis.id)).where(_visible())
    if topic is not None:
        query = query.join(synthesis_topics).where(synthesis_topics.c.topic_id == topic.id)
    return db.session.scalar(query) or 0


@dataclass(frozen=True)
class SynthesisPage:
    """One page of a list of syntheses, and whether a later page has any."""

    syntheses: list[Synthesis]
    has_next: bool


def latest_syntheses_page(page: int, page_size: int = 20,
                          topic: Topic | None = None) -> SynthesisPage:
    """Page ``page`` (from 1) of :func:`latest_syntheses`; past the last page, empty."""
    # One row more than a page tells whether there is a next page without a count.
    syntheses = latest_syntheses(page_size + 1, topic=topic, offset=(page - 1) * page_size)
    return SynthesisPage(syntheses[:page_size], has_next=len(syntheses) > page_size)


def related_syntheses(synthesis: Synthesis, limit: int = 3) -> list[Synthesis]:
    """Up to ``limit`` other visible syntheses of ``synthesis``'s first topic, newest first
    (none when it has no topic)."""
    return [
        other for topic in synthesis.topics[:1]
        for other in latest_syntheses(limit + 1, topic=topic) if other.id != synthesis.id
    ][:limit]


def count_visible_by_topic(topics: list[Topic]) -> dict[int, int]:
    """:func:`count_visible` of each topic, by topic id."""
    return {topic.id: count_visible(topic) for topic in topics}


def find_syntheses(*, topic: Topic | None = None, since: datetime | None = None,
                   status: str | None = SynthesisStatus.PUBLISHED.value,
                   limit: int = 50, offset: int = 0) -> list[Synthesis]:
    """Syntheses for API clients, oldest first so a client can sync with ``since``.

    ``since`` is exclusive and compares ``published_at``; ``status=None`` means any status.
    """
    query = select(Synthesis)
    if status is not None:
        query = query.where(Synthesis.status == status)
    if since is not None:
        query = query.where(Synthesis.published_at > since)
    if topic is not None:
        query = query.join(synthesis_topics).where(synthesis_topics.c.topic_id == topic.id)
    query = query.order_by(Synthesis.published_at, Synthesis.id).offset(offset).limit(limit)
    return list(db.session.scalars(query))


def synthesis_as_dict(synthesis: Synthesis, url: str | None = None) -> dict[str, Any]:
    data = {
        "id": synthesis.id,
        "external_id": synthesis.external_id,
        "slug": synthesis.slug,
        "title": synthesis.title,
        "summary": synthesis.summary,
        "context": synthesis.context,
        "analysis": synthesis.analysis,
        "watch": synthesis.watch,
        "mentions": list(synthesis.mentions or []),
        "byline": synthesis.byline,
        "source_name": synthesis.source_name,
        "source_url": synthesis.source_url,
        "status": synthesis.status,
        "published_at": synthesis.published_at.isoformat(),
        "updated_at": synthesis.updated_at.isoformat() if synthesis.updated_at else None,
        "topics": [topic.slug for topic in synthesis.topics],
    }
    if url:
        data["url"] = url
    return data
