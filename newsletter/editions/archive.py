"""The public archive of editions: which editions are public, the lists of them, one by slug.

Only editions that went out (status ``sending`` or ``sent``, :data:`PUBLIC_STATUSES`) are
public; every other status is treated as if the edition did not exist. Lists are newest
first (by ``started_at``, which every edition that went out has), a page at a time.

Whether an edition is premium is asked of :mod:`newsletter.billing.entitlements`; this
module only says so on each :class:`ArchiveEntry` and never decides who may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, or_, select

from newsletter.billing.entitlements import (
    edition_is_premium,
    premium_synthesis_ids,
    section_synthesis_ids,
)
from newsletter.content.models import Topic
from newsletter.db import db
from newsletter.editions.markdown import sanitise
from newsletter.editions.models import Edition, EditionStatus, EditionTopic

__all__ = ["PAGE_SIZE", "PUBLIC_STATUSES", "ArchiveEntry", "ArchivePage", "entries",
           "public_edition", "public_editions", "topic_editions", "web_body"]

PAGE_SIZE = 20
PUBLIC_STATUSES = (EditionStatus.SENDING.value, EditionStatus.SENT.value)


@dataclass(frozen=True)
class ArchiveEntry:
    """An edition as the archive shows it: its date (when it went out) and whether it is
    for paying readers."""

    edition: Edition
    date: datetime
    premium: bool


@dataclass(frozen=True)
class ArchivePage:
    """One page of a list: at most ``page_size`` entries, and whether a later page has any."""

    entries: list[ArchiveEntry]
    has_next: bool


def _newest_first(query: Select) -> Select:
    """Editions that went out all have ``started_at`` (indexed): newest first."""
    return query.order_by(Edition.started_at.desc(), Edition.id.desc())


def _premium_slugs() -> set[str]:
    return set(db.session.scalars(select(Topic.slug).where(Topic.premium.is_(True))))


def entries(editions: list[Edition]) -> list[ArchiveEntry]:
    """``editions`` as archive entries, in the same order (one query for premium topics, one
    for premium syntheses)."""
    premium = _premium_slugs()
    syntheses = premium_synthesis_ids(section_synthesis_ids(e.content for e in editions))
    return [ArchiveEntry(edition, edition.started_at or edition.send_at or edition.created_at,
                         edition_is_premium(edition.audience, edition.content, premium,
                                            syntheses))
            for edition in editions]


def _page_of(query: Select, page: int, page_size: int) -> ArchivePage:
    # One row more than a page tells whether there is a next page without a count.
    editions = list(db.session.scalars(_newest_first(query)
                                       .offset((page - 1) * page_size).limit(page_size + 1)))
    return ArchivePage(entries(editions[:page_size]), has_next=len(editions) > page_size)


def public_editions(page: int = 1, page_size: int = PAGE_SIZE) -> ArchivePage:
    """Page ``page`` (from 1) of every edition that went out, newest first."""
    return _page_of(select(Edition).where(Edition.status.in_(PUBLIC_STATUSES)),
                    page, page_size)


def topic_editions(topic: Topic, page: int = 1, page_size: int = PAGE_SIZE) -> ArchivePage:
    """Page ``page`` (from 1) of the editions a follower of ``topic`` may have had, newest
    first: editions for that topic (their audience or a section; ``edition_topics``) and
    editions for everyone (no topics)."""
    tagged = select(EditionTopic.edition_id).where(EditionTopic.edition_id == Edition.id)
    return _page_of(select(Edition).where(
        Edition.status.in_(PUBLIC_STATUSES),
        or_(exists(tagged.where(EditionTopic.topic_id == topic.id)), ~exists(tagged))),
        page, page_size)


def public_edition(slug: str) -> ArchiveEntry | None:
    """The edition at ``slug`` if it went out, else ``None`` (unknown or not public)."""
    item = db.session.scalar(select(Edition).where(Edition.slug == slug,
                                                   Edition.status.in_(PUBLIC_STATUSES)))
    return entries([item])[0] if item is not None else None


def web_body(edition: Edition) -> str:
    """The edition's Markdown body as HTML for the web version, or ``""`` when it has none.

    Sanitised again for the site: no inline styles (the site's CSP forbids them and its
    stylesheet applies), and a body stored by any other path is held to the same rules.
    """
    body = (edition.content or {}).get("body_html") or ""
    return sanitise(body) if body else ""
