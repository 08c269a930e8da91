"""The public archive of editions: the web version of each edition and the lists of them.

Only editions that went out (status ``sending`` or ``sent``) are public; any other status
answers 404, as an unknown slug does. The web version is rendered from the edition's content
(its sections' syntheses, by id, and its sanitised body), never from the variants that were
mailed, so it never carries a reader's links or tokens.

Premium editions — audience tier "paid", a section whose topic is premium, or an audience
made only of premium topics — show their subject and a note with HTTP 403, not their body,
until billing can tell a paying reader (a later issue).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, render_template, request
from markupsafe import Markup
from sqlalchemy import exists, or_, select

from newsletter.content import service as content
from newsletter.content.models import Topic
from newsletter.db import db
from newsletter.editions.markdown import sanitise
from newsletter.editions.models import Edition, EditionStatus, EditionTopic
from newsletter.editions.service import edition_sections

bp = Blueprint("editions", __name__)
PAGE_SIZE = 20
PUBLIC_STATUSES = (EditionStatus.SENDING.value, EditionStatus.SENT.value)


@dataclass(frozen=True)
class ArchiveEntry:
    edition: Edition
    date: datetime
    premium: bool


def _page() -> int:
    """``?page=N``: a whole number from 1; anything else is a 404 (no such page)."""
    page = request.args.get("page", "1")
    if not (page.isascii() and page.isdigit()) or not 1 <= int(page) <= 10_000:
        abort(404, "There is no such page of the archive.")
    return int(page)


def _newest_first(query):
    """Editions that went out all have ``started_at`` (indexed): newest first."""
    return query.order_by(Edition.started_at.desc(), Edition.id.desc())


def _premium_slugs() -> set[str]:
    return set(db.session.scalars(select(Topic.slug).where(Topic.premium.is_(True))))


def is_premium(edition: Edition, premium_slugs: set[str]) -> bool:
    """Paid tier, a premium section, or an audience made only of premium topics."""
    audience = edition.audience or {}
    if audience.get("tier") == "paid":
        return True
    sections = (edition.content or {}).get("sections", [])
    if any(section.get("topic") in premium_slugs for section in sections):
        return True
    topics = audience.get("topics") or []
    return bool(topics) and all(slug in premium_slugs for slug in topics)


def _entries(editions: list[Edition]) -> list[ArchiveEntry]:
    premium = _premium_slugs()
    return [ArchiveEntry(edition, edition.started_at or edition.send_at or edition.created_at,
                         is_premium(edition, premium)) for edition in editions]


@bp.get("/editions")
def archive():
    """Every edition that went out, newest first, ``PAGE_SIZE`` a page."""
    page = _page()
    editions = list(db.session.scalars(_newest_first(
        select(Edition).where(Edition.status.in_(PUBLIC_STATUSES)))
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    if page > 1 and not editions:
        abort(404, "There is no such page of the archive.")
    return render_template("editions/archive.html", entries=_entries(editions[:PAGE_SIZE]),
                           topics=content.list_topics(), archive_topic=None, page=page,
                           has_next=len(editions) > PAGE_SIZE)


@bp.get("/topics/<slug>/editions")
def topic_archive(slug: str):
    """The editions a follower of the topic may have had: editions for that topic (their
    audience or a section; ``edition_topics``) and editions for everyone (no topics).
    Unknown topic: 404."""
    topic = content.get_topic(slug)
    if topic is None:
        abort(404, "There is no topic at this address.")
    page = _page()
    tagged = select(EditionTopic.edition_id).where(EditionTopic.edition_id == Edition.id)
    editions = list(db.session.scalars(_newest_first(select(Edition).where(
        Edition.status.in_(PUBLIC_STATUSES),
        or_(exists(tagged.where(EditionTopic.topic_id == topic.id)), ~exists(tagged))))
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    if page > 1 and not editions:
        abort(404, "There is no such page of the archive.")
    return render_template("editions/archive.html", entries=_entries(editions[:PAGE_SIZE]),
                           topics=content.list_topics(), topic=topic, archive_topic=topic,
                           page=page, has_next=len(editions) > PAGE_SIZE)


@bp.get("/editions/<slug>")
def edition(slug: str):
    """The web version ("view in browser") of an edition that went out."""
    item = db.session.scalar(select(Edition).where(Edition.slug == slug,
                                                   Edition.status.in_(PUBLIC_STATUSES)))
    if item is None:
        abort(404, "There is no edition at this address.")
    entry = _entries([item])[0]
    if entry.premium:
        return render_template("editions/locked.html", entry=entry,
                               topics=content.list_topics()), 403
    # Sanitised again for the site: no inline styles (the CSP forbids them; the site's
    # stylesheet applies), and a body stored by any other path is held to the same rules.
    body = (item.content or {}).get("body_html") or ""
    return render_template("editions/edition.html", entry=entry,
                           body=Markup(sanitise(body)) if body else "",  # noqa: S704
                           sections=edition_sections(item, published_only=True),
                           topics=content.list_topics())
