"""Feed entries turned into synthesis payloads: HTML to plain text, ids, dates."""

from __future__ import annotations

import calendar
import hashlib
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from newsletter.content.models import Feed, SynthesisStatus
from newsletter.content.validation import check_http_url

MAX_URL_LENGTH = 2000
_SUMMARY_LIMIT = 5000
TITLE_LIMIT = 300
_SOURCE_NAME_LIMIT = 200
_GUID_LIMIT = 500


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


def is_importable(entry: Any) -> bool:
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
    if not is_importable(entry):
        return None
    title = _shorten(_one_line(_detail_text(entry, "title")), TITLE_LIMIT)
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


def feed_title(parsed: Any, url: str) -> str:
    title = _one_line(_detail_text(parsed.feed, "title"))
    return _shorten(title, _SOURCE_NAME_LIMIT) if title else _host(url)

