"""Feeds in: RSS/Atom feeds whose new entries become syntheses (drafts or published).

For publications that write elsewhere. ``add_feed`` checks a feed once and stores it;
``poll_feed`` fetches it (conditional GET with the stored ETag / Last-Modified) and turns
each entry never seen before into a synthesis through the ingest service; ``poll_due`` is
what the worker calls. An entry is remembered by its id (RSS ``guid``, Atom ``id``) or, when
it has none, its link, so it is imported once even if its text changes later.
"""

from __future__ import annotations

import calendar
import hashlib
import http.client
import io
import logging
import re
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import feedparser
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.content.models import Feed, FeedEntry, SynthesisStatus
from newsletter.content.service import Outcome, ingest, resolve_topics
from newsletter.content.validation import MAX_TOPICS, InvalidSynthesis, check_http_url
from newsletter.db import db, utcnow
from newsletter.validation import FieldError, InvalidInput

log = logging.getLogger(__name__)

USER_AGENT = "newsletter-feeds/1.0 (RSS/Atom poller of the newsletter publication system)"
FETCH_TIMEOUT = 15.0  # seconds per socket operation
FETCH_DEADLINE = 45.0  # seconds for the whole body, so a server that drips cannot hold a poll
MAX_FEED_BYTES = 5 * 1024 * 1024
MAX_URL_LENGTH = 2000
_SUMMARY_LIMIT = 5000
_TITLE_LIMIT = 300
_SOURCE_NAME_LIMIT = 200
_GUID_LIMIT = 500


class FeedError(Exception):
    """A feed could not be fetched or is not an RSS/Atom feed; the message says why."""


class FeedNotFound(LookupError):
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


# -- fetching ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Response:
    body: bytes
    url: str
    content_type: str
    etag: str | None
    modified: str | None


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme.lower() not in {"http", "https"}:
            raise urllib.error.HTTPError(newurl, code, "redirect to a non-HTTP URL refused",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_HttpOnlyRedirects)


def _fetch(url: str, etag: str | None = None, modified: str | None = None,
           timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_FEED_BYTES) -> _Response | None:
    """GET ``url``; None on 304 Not Modified. Raises ``FeedError`` with a one-line reason."""
    headers = {"User-Agent": USER_AGENT,
               "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, "
                         "text/xml;q=0.9, */*;q=0.1"}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    if urlsplit(url).scheme.lower() not in {"http", "https"}:
        raise FeedError("only http:// and https:// feeds can be fetched")
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
    deadline = time.monotonic() + FETCH_DEADLINE
    try:
        with _opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise FeedError(f"the feed is larger than {max_bytes // (1024 * 1024)} MB")
            chunks: list[bytes] = []
            size = 0
            # read1: whatever has arrived, so a server that drips bytes meets the deadline.
            while chunk := response.read1(65536):
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"the feed is larger than {max_bytes // (1024 * 1024)} MB")
                if time.monotonic() > deadline:
                    raise FeedError(f"the feed took longer than {FETCH_DEADLINE:.0f} s to "
                                    "download")
                chunks.append(chunk)
            body = _decode_content(b"".join(chunks), response.headers.get("Content-Encoding"),
                                   max_bytes)
            return _Response(body=body, url=response.geturl(),
                             content_type=response.headers.get("Content-Type", ""),
                             etag=response.headers.get("ETag"),
                             modified=response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None
        raise FeedError(f"HTTP {exc.code} {exc.reason}".strip()) from None
    except urllib.error.URLError as exc:
        raise FeedError(f"cannot reach {urlsplit(url).netloc}: {exc.reason}") from None
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise FeedError(f"cannot read {urlsplit(url).netloc}: "
                        f"{exc or type(exc).__name__}") from None
    except ValueError as exc:  # http.client's malformed responses, bad URLs
        raise FeedError(f"bad response: {exc}") from None


def _decode_content(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo a gzip/deflate Content-Encoding (never asked for, but some servers send it)."""
    encoding = (encoding or "").strip().lower()
    if encoding not in {"gzip", "x-gzip", "deflate"}:
        return body
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        inflated = zlib.decompressobj(wbits).decompress(body, max_bytes + 1)
    except zlib.error:
        raise FeedError("the feed's compressed body is corrupt") from None
    if len(inflated) > max_bytes:
        raise FeedError(f"the feed is larger than {max_bytes // (1024 * 1024)} MB")
    return inflated


def _parse(response: _Response) -> Any:
    """feedparser's result; raises ``FeedError`` when the body is not RSS or Atom."""
    parsed = feedparser.parse(io.BytesIO(response.body),
                              response_headers={"content-type": response.content_type,
                                                "content-location": response.url})
    if not parsed.get("version"):
        reason = parsed.get("bozo_exception")
        detail = f" ({str(reason).splitlines()[0][:150]})" if reason else ""
        raise FeedError(f"not an RSS or Atom feed{detail}")
    return parsed


# -- entries -> synthesis payloads ---------------------------------------------------------

_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main", "nav",
    "ol", "p", "pre", "section", "table", "tr", "ul",
})
# Elements whose content is never text a reader should see.
_HIDDEN_TAGS = frozenset({"script", "style", "template", "noscript", "iframe", "object",
                          "embed", "svg", "math", "head", "title", "select", "textarea"})
_VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
                        "meta", "source", "track", "wbr"})
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\x85]")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _HIDDEN_TAGS and tag not in _VOID_TAGS:
            self.hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS and tag not in _VOID_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def _tidy(text: str) -> str:
    """Trim every line, keep at most one blank line between paragraphs, drop controls."""
    text = _CONTROL_RE.sub(lambda m: "\n" if m.group() in "\u2028\u2029\x85" else " ",
                           text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    lines = [re.sub(r" {2,}", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: tags and scripts/styles gone, entities decoded,
    paragraphs and list items kept as blank-line-separated blocks and lines."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return _tidy("".join(parser.parts))


def _detail_text(entry: Any, key: str) -> str:
    """An entry's text field as plain text, parsing it as HTML only when it is HTML."""
    value = entry.get(key) or ""
    detail = entry.get(f"{key}_detail") or {}
    if detail.get("type", "text/html") == "text/plain":
        return _tidy(value)
    return html_to_text(value)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, ending with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" \n.,;:") + "…"


def entry_guid(entry: Any) -> str | None:
    """The entry's identity: its id (RSS guid / Atom id), else its link; None if neither."""
    for key in ("id", "link"):
        value = (entry.get(key) or "").strip()
        if value:
            if len(value) > _GUID_LIMIT:
                return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
            return value
    return None


def entry_published_at(entry: Any, now: datetime) -> datetime:
    """The entry's published (else updated, else created) time in UTC, never later than
    ``now`` — a date in the future would hide the synthesis until then; ``now`` if none."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: FeedParserDict maps a missing updated_parsed to published_parsed, warning.
        value = dict.get(entry, key)
        if value:
            try:
                parsed = datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, OSError):
                continue
            return min(parsed, now)
    return now


def entry_summary(entry: Any) -> str:
    """Summary/description as plain text; the first content block when there is none."""
    text = _detail_text(entry, "summary")
    if not text and entry.get("content"):
        block = entry["content"][0]
        value = block.get("value") or ""
        text = _tidy(value) if block.get("type") == "text/plain" else html_to_text(value)
    return _shorten(text, _SUMMARY_LIMIT)


def _importable(entry: Any) -> bool:
    link = (entry.get("link") or "").strip()
    return bool(_one_line(_detail_text(entry, "title")) and link
                and len(link) <= MAX_URL_LENGTH and not check_http_url(link))


def external_id_for(feed_id: int, guid: str) -> str:
    return f"feed-{feed_id}-{hashlib.sha256(guid.encode()).hexdigest()[:16]}"


def entry_payload(entry: Any, *, feed: Feed, guid: str, source_name: str,
                  now: datetime) -> dict[str, Any] | None:
    """The ingest payload for one entry, or None when it has no title or no http(s) link.

    (feedparser takes an RSS ``guid`` without ``isPermaLink="false"`` as the link when
    there is none; a guid that is no URL is then no link either.)
    """
    if not _importable(entry):
        return None
    title = _shorten(_one_line(_detail_text(entry, "title")), _TITLE_LIMIT)
    link = entry["link"].strip()
    return {
        "external_id": external_id_for(feed.id, guid),
        "title": title,
        # The ingest requires a summary; a title-only entry (a link post) repeats its title.
        "summary": entry_summary(entry) or title,
        "source_url": link,
        "source_name": source_name or _host(link),
        "published_at": entry_published_at(entry, now).isoformat(),
        "topics": list(feed.topics),
        "status": (SynthesisStatus.PUBLISHED if feed.publish else SynthesisStatus.DRAFT).value,
    }


def _host(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")[:_SOURCE_NAME_LIMIT]


def _feed_title(parsed: Any, url: str) -> str:
    title = _one_line(_detail_text(parsed.feed, "title"))
    return _shorten(title, _SOURCE_NAME_LIMIT) if title else _host(url)


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


def check_feed(url: str) -> FeedCheck:
    """Fetch ``url`` once and say what it holds; raises ``FeedError`` if it is no feed."""
    response = _fetch(url)
    if response is None:  # no validators were sent, so a 304 is a broken server
        raise FeedError("the server answered 304 Not Modified to a plain GET")
    parsed = _parse(response)
    entries = parsed.entries
    importable = sum(1 for e in entries if entry_guid(e) and _importable(e))
    return FeedCheck(title=_feed_title(parsed, url), entries=len(entries),
                     importable=importable)


def add_feed_checked(url: str, topics: list[str],
                     publish: bool = False) -> tuple[Feed, FeedCheck]:
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
        check = check_feed(url)
    except FeedError as exc:
        raise InvalidInput([FieldError("url", f"refused: {exc}")]) from None
    feed = Feed(url=url, title=check.title[:_TITLE_LIMIT], topics=slugs, publish=publish,
                active=True)
    db.session.add(feed)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise InvalidInput([FieldError("url", "is already added")]) from None
    return feed, check


def add_feed(url: str, topics: list[str], publish: bool = False) -> Feed:
    """Check and store a feed whose entries become syntheses in ``topics`` (slugs or names),
    drafts unless ``publish``. Nothing is imported yet: the next poll does that.

    Raises ``InvalidInput`` naming each problem — a URL that is not http(s), longer than
    2000 characters or already added; no topic or an unknown one; a feed that cannot be
    fetched or is not RSS/Atom — and then stores nothing.
    """
    return add_feed_checked(url, topics, publish)[0]


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


def poll_feed(feed_id: int, now: datetime | None = None) -> PollResult:
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
        response = _fetch(url, etag, modified)
        if response is None:
            result.not_modified = True
            _finish(feed, now, None)
            return result
        parsed = _parse(response)
    except FeedError as exc:
        result.errors.append(str(exc))
        _finish(feed, now, str(exc))
        log.warning("feed %s (%s): %s", feed.id, feed.url, exc)
        return result

    title = _feed_title(parsed, feed.url)
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
        if ingested.outcome is Outcome.CREATED:
            result.new += 1
        _record_entry(feed.id, guid, ingested.synthesis.id, now)

    feed.etag = response.etag if response.etag and len(response.etag) <= 300 else None
    feed.modified = (response.modified if response.modified and len(response.modified) <= 100
                     else None)
    if title and title != feed.title:
        feed.title = title[:_TITLE_LIMIT]
    error = None
    if result.errors:
        error = f"{len(result.errors)} entr{'y' if len(result.errors) == 1 else 'ies'} " \
                f"refused; first: {result.errors[0]}"
    _finish(feed, now, error)
    return result


def poll_due(now: datetime, every: timedelta) -> int:
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
            result = poll_feed(feed_id, now)
        except Exception:
            db.session.rollback()
            log.exception("polling feed %s failed", feed_id)
            continue
        polled += 1
        if result.new or result.skipped or result.errors:
            log.info("feed %s: %d new, %d skipped, %d error(s)", feed_id, result.new,
                     result.skipped, len(result.errors))
    return polled
