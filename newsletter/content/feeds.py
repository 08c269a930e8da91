"""Feeds in: RSS/Atom feeds whose new entries become syntheses (drafts or published).

For publications that write elsewhere. ``add_feed`` checks a feed once and stores it;
``poll_feed`` fetches it (conditional GET with the stored ETag / Last-Modified) and turns
each entry never seen before into a synthesis through the ingest service; ``poll_due`` is
what the worker calls. An entry is remembered by its id (RSS ``guid``, Atom ``id``) or, when
it has none, its link, so it is imported once even if its text changes later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.content.feed_entries import (
    MAX_URL_LENGTH,
    TITLE_LIMIT,
    entry_guid,
    entry_payload,
    feed_title,
    is_importable,
)
from newsletter.content.feed_fetch import FeedError, FeedFetcher, parse
from newsletter.content.models import Feed, FeedEntry
from newsletter.content.service import IngestOutcome, ingest, resolve_topics
from newsletter.content.validation import MAX_TOPICS, InvalidSynthesis, check_http_url
from newsletter.db import db, utcnow
from newsletter.errors import NotFound
from newsletter.validation import FieldError, InvalidInput

log = logging.getLogger(__name__)
# The fetcher used when a caller passes none; the app's own is built in newsletter.wiring.
DEFAULT_FETCHER = FeedFetcher()



class FeedNotFound(NotFound, LookupError):
    """No feed with that id or URL."""


@dataclass(frozen=True)
class FeedCheck:
    """What one fetch of a feed found: its title and how many entries could be imported."""

    title: str
    entries: int
    importable: int


@dataclass
class PollResult:
    """``new``: syntheses created; ``skipped``: entries without a title or link;
    ``errors``: a fetch error or entries the ingest refused (each message names the entry)."""

    new: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    not_modified: bool = False



# -- use cases -----------------------------------------------------------------------------

def _check_url(url: Any, errors: list[FieldError]) -> str | None:
    if not isinstance(url, str) or not url.strip():
        errors.append(FieldError("url", "is required"))
        return None
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        errors.append(FieldError("url", f"is {len(url)} characters long; the limit is "
                                        f"{MAX_URL_LENGTH}"))
        return None
    problem = check_http_url(url)
    if problem:
        errors.append(FieldError("url", problem))
        return None
    return url


def check_feed(url: str, fetcher: FeedFetcher = DEFAULT_FETCHER) -> FeedCheck:
    """Fetch ``url`` once and say what it holds; raises ``FeedError`` if it is no feed."""
    response = fetcher.fetch(url)
    if response is None:  # no validators were sent, so a 304 is a broken server
        raise FeedError("the server answered 304 Not Modified to a plain GET")
    parsed = parse(response)
    entries = parsed.entries
    importable = sum(1 for e in entries if entry_guid(e) and is_importable(e))
    return FeedCheck(title=feed_title(parsed, url), entries=len(entries),
                     importable=importable)


def add_feed_checked(url: str, topics: list[str], publish: bool = False,
                     fetcher: FeedFetcher = DEFAULT_FETCHER) -> tuple[Feed, FeedCheck]:
    """``add_feed``, also returning what the check fetch found."""
    errors: list[FieldError] = []
    url = _check_url(url, errors)
    slugs: list[str] = []
    if not topics:
        errors.append(FieldError("topics", "needs at least one topic"))
    elif len(topics) > MAX_TOPICS:
        errors.append(FieldError("topics", f"has {len(topics)} items; the limit is "
                                           f"{MAX_TOPICS}"))
    else:
        resolved, topic_errors = resolve_topics(list(topics))
        errors.extend(topic_errors)
        slugs = [topic.slug for topic in resolved]
    if errors:
        raise InvalidInput(errors)
    existing = db.session.scalar(select(Feed.id).where(Feed.url == url))
    if existing is not None:
        raise InvalidInput([FieldError("url", f"is already added (feed {existing})")])
    db.session.commit()  # hold no transaction open while the network is slow
    try:
        check = check_feed(url, fetcher)
    except FeedError as exc:
        raise InvalidInput([FieldError("url", f"refused: {exc}")]) from None
    feed = Feed(url=url, title=check.title[:TITLE_LIMIT], topics=slugs, publish=publish,
                active=True)
    db.session.add(feed)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise InvalidInput([FieldError("url", "is already added")]) from None
    return feed, check


def add_feed(url: str, topics: list[str], publish: bool = False,
             fetcher: FeedFetcher = DEFAULT_FETCHER) -> Feed:
    """Check and store a feed whose entries become syntheses in ``topics`` (slugs or names),
    drafts unless ``publish``. Nothing is imported yet: the next poll does that.

    Raises ``InvalidInput`` naming each problem — a URL that is not http(s), longer than
    2000 characters or already added; no topic or an unknown one; a feed that cannot be
    fetched or is not RSS/Atom — and then stores nothing.
    """
    return add_feed_checked(url, topics, publish, fetcher)[0]


def list_feeds() -> list[Feed]:
    return list(db.session.scalars(select(Feed).order_by(Feed.id)))


def get_feed(url_or_id: str | int) -> Feed:
    """The feed with this id (digits) or URL; raises ``FeedNotFound``."""
    key = str(url_or_id).strip()
    if key.isdigit() and len(key) > 18:
        raise FeedNotFound(f"no feed {key!r}")
    query = select(Feed).where(Feed.id == int(key)) if key.isdigit() else \
        select(Feed).where(Feed.url == key)
    feed = db.session.scalar(query)
    if feed is None:
        raise FeedNotFound(f"no feed {key!r}")
    return feed


def remove_feed(url_or_id: str | int) -> Feed:
    """Stop polling and forget a feed (and which entries it had). The syntheses already
    imported stay. Returns the removed feed; raises ``FeedNotFound``."""
    feed = get_feed(url_or_id)
    db.session.execute(FeedEntry.__table__.delete().where(FeedEntry.feed_id == feed.id))
    db.session.delete(feed)
    db.session.commit()
    return feed


def _seen_guids(feed_id: int) -> set[str]:
    return set(db.session.scalars(select(FeedEntry.guid).where(FeedEntry.feed_id == feed_id)))


def _record_entry(feed_id: int, guid: str, synthesis_id: int | None, now: datetime) -> None:
    db.session.add(FeedEntry(feed_id=feed_id, guid=guid, synthesis_id=synthesis_id,
                             seen_at=now))
    try:
        db.session.commit()
    except IntegrityError:
        # Another poller recorded it first; the synthesis is the same row (same external id).
        db.session.rollback()


def _finish(feed: Feed, now: datetime, error: str | None) -> None:
    feed.last_polled_at = now
    feed.last_error = error[:500] if error else None
    db.session.commit()


def poll_feed(feed_id: int, now: datetime | None = None,
              fetcher: FeedFetcher = DEFAULT_FETCHER) -> PollResult:
    """Fetch one feed and import each entry never seen before; raises ``FeedNotFound``.

    A network or HTTP error, or a body that is not a feed, is recorded in ``last_error`` and
    returned in ``errors`` — never raised. An entry without title or link is skipped (and
    looked at again next time, in case it was fixed); an entry the ingest refuses is
    reported and the others still go in. Every imported entry is recorded, so a later poll
    never imports it again, even if its text changed.
    """
    now = now or utcnow()
    feed = db.session.get(Feed, feed_id)
    if feed is None:
        raise FeedNotFound(f"no feed {feed_id}")
    result = PollResult()
    url, etag, modified = feed.url, feed.etag, feed.modified
    db.session.commit()  # hold no transaction open while the network is slow
    try:
        response = fetcher.fetch(url, etag, modified)
        if response is None:
            result.not_modified = True
            _finish(feed, now, None)
            return result
        parsed = parse(response)
    except FeedError as exc:
        result.errors.append(str(exc))
        _finish(feed, now, str(exc))
        log.warning("feed %s (%s): %s", feed.id, feed.url, exc)
        return result

    title = feed_title(parsed, feed.url)
    seen = _seen_guids(feed.id)
    for entry in parsed.entries:
        guid = entry_guid(entry)
        if guid is not None and guid in seen:
            continue
        payload = entry_payload(entry, feed=feed, guid=guid or "", source_name=title,
                                now=now) if guid else None
        if payload is None:
            result.skipped += 1
            continue
        seen.add(guid)
        try:
            ingested = ingest(payload)
        except InvalidSynthesis as exc:
            db.session.rollback()
            result.errors.append(f"entry {guid[:200]}: {exc}")
            continue
        if ingested.outcome is IngestOutcome.CREATED:
            result.new += 1
        _record_entry(feed.id, guid, ingested.synthesis.id, now)

    feed.etag = response.etag if response.etag and len(response.etag) <= 300 else None
    feed.modified = (response.modified if response.modified and len(response.modified) <= 100
                     else None)
    if title and title != feed.title:
        feed.title = title[:TITLE_LIMIT]
    error = None
    if result.errors:
        error = f"{len(result.errors)} entr{'y' if len(result.errors) == 1 else 'ies'} " \
                f"refused; first: {result.errors[0]}"
    _finish(feed, now, error)
    return result


def poll_due(now: datetime, every: timedelta, fetcher: FeedFetcher = DEFAULT_FETCHER) -> int:
    """Poll each active feed not polled within ``every``; the number of feeds polled.

    One bad feed is logged and never stops the others, nor raises to the scheduler.
    """
    due = list(db.session.scalars(
        select(Feed.id).where(Feed.active.is_(True),
                              or_(Feed.last_polled_at.is_(None),
                                  Feed.last_polled_at <= now - every))
        .order_by(Feed.id)
    ))
    polled = 0
    for feed_id in due:
        # Claim it (compare-and-set on last_polled_at), so several workers never fetch the
        # same feed at once, and a failing feed waits its interval like the others.
        claimed = db.session.execute(
            update(Feed).where(Feed.id == feed_id,
                               or_(Feed.last_polled_at.is_(None),
                                   Feed.last_polled_at <= now - every))
            .values(last_polled_at=now))
        db.session.commit()
        if claimed.rowcount != 1:
            continue
        try:
            result = poll_feed(feed_id, now, fetcher)
        except Exception:
            db.session.rollback()
            log.exception("polling feed %s failed", feed_id)
            continue
        polled += 1
        if result.new or result.skipped or result.errors:
            log.info("feed %s: %d new, %d skipped, %d error(s)", feed_id, result.new,
                     result.skipped, len(result.errors))
    return polled
