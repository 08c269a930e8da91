"""Field-by-field validation of a synthesis as it arrives from the API, an import or a feed.

``parse_synthesis`` never stops at the first problem: it returns every problem it finds,
each naming its field, so a client can fix a payload in one round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from newsletter.content.models import SynthesisStatus
from newsletter.validation import FieldError, InvalidInput, aware_datetime

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Control characters other than tab and newline; CR is normalised away before this check.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAK_RE = re.compile(r"[\r\n\u2028\u2029\x85]")


@dataclass
class SynthesisInput:
    external_id: str
    title: str
    summary: str
    source_name: str
    source_url: str
    topic_keys: list[str]
    context: str = ""
    analysis: str = ""
    watch: str = ""
    mentions: list[str] = field(default_factory=list)
    byline: str = ""
    status: str = SynthesisStatus.PUBLISHED.value
    published_at: datetime | None = None
    slug: str | None = None


class InvalidSynthesis(InvalidInput):
    """The synthesis payload has problems; ``errors`` lists every one of them."""


@dataclass(frozen=True)
class _Text:
    max_len: int
    required: bool = False
    multiline: bool = False


_TEXT_FIELDS: dict[str, _Text] = {
    "external_id": _Text(200, required=True),
    "title": _Text(300, required=True),
    "summary": _Text(5000, required=True, multiline=True),
    "context": _Text(20000, multiline=True),
    "analysis": _Text(20000, multiline=True),
    "watch": _Text(2000, multiline=True),
    "byline": _Text(200),
    "source_name": _Text(200, required=True),
    "source_url": _Text(2000, required=True),
    "slug": _Text(200),
}
_OTHER_FIELDS = {"mentions", "topics", "status", "published_at"}
ALLOWED_FIELDS = frozenset(_TEXT_FIELDS) | _OTHER_FIELDS
MAX_MENTIONS = 50
MAX_TOPICS = 10


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", bool: "boolean", int: "number", float: "number",
            type(None): "null", str: "string"}.get(type(value), type(value).__name__)


def _check_text(name: str, value: Any, spec: _Text, errors: list[FieldError]) -> str | None:
    if value is None or value == "":
        if spec.required:
            errors.append(FieldError(name, "is required"))
        return ""
    if not isinstance(value, str):
        errors.append(FieldError(name, f"must be a string, not {_type_name(value)}"))
        return None
    text = value.replace("\r\n", "\n").strip()
    if spec.required and not text:
        errors.append(FieldError(name, "must not be blank"))
        return None
    if len(text) > spec.max_len:
        errors.append(FieldError(name, f"is {len(text)} characters long; the limit is "
                                       f"{spec.max_len}"))
        return None
    if not spec.multiline and _LINE_BREAK_RE.search(text):
        errors.append(FieldError(name, "must be a single line (no CR or LF)"))
        return None
    if _CONTROL_RE.search(text) or "\r" in text:
        errors.append(FieldError(name, "contains control characters"))
        return None
    return text


def check_http_url(url: str) -> str | None:
    """Return why ``url`` is not a safe absolute http(s) link, or None when it is."""
    if any(ch.isspace() for ch in url):
        return "must not contain spaces"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in {"http", "https"}:
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host"
    if parts.username or parts.password:
        return "must not carry a user name or password"
    return None


def _parse_datetime(name: str, value: Any, errors: list[FieldError]) -> datetime | None:
    if not isinstance(value, str):
        errors.append(FieldError(name, f"must be an ISO 8601 string, not {_type_name(value)}"))
        return None
    try:
        return aware_datetime(value)
    except ValueError as exc:
        errors.append(FieldError(name, f"{exc} (e.g. 2026-11-27T08:00:00Z)"))
        return None


def _check_string_list(name: str, value: Any, max_items: int, max_len: int,
                       errors: list[FieldError]) -> list[str] | None:
    if not isinstance(value, list):
        errors.append(FieldError(name, f"must be an array of strings, not {_type_name(value)}"))
        return None
    if len(value) > max_items:
        errors.append(FieldError(name, f"has {len(value)} items; the limit is {max_items}"))
        return None
    items: list[str] = []
    for index, item in enumerate(value):
        checked = _check_text(f"{name}[{index}]", item, _Text(max_len, required=True), errors)
        if checked:
            items.append(checked)
    return items


def parse_synthesis(payload: Any) -> SynthesisInput:
    """Validate a decoded JSON payload; raise ``InvalidSynthesis`` listing every problem.

    Topic names are only checked for shape here; the service resolves them against the
    database and reports unknown ones by name.
    """
    if not isinstance(payload, dict):
        raise InvalidSynthesis([FieldError("(body)", f"must be a JSON object, not "
                                                     f"{_type_name(payload)}")])
    errors: list[FieldError] = []
    for unknown in sorted(set(payload) - ALLOWED_FIELDS):
        errors.append(FieldError(str(unknown)[:100], "is not a known field"))

    values: dict[str, Any] = {}
    for name, spec in _TEXT_FIELDS.items():
        values[name] = _check_text(name, payload.get(name), spec, errors)

    if values.get("source_url"):
        problem = check_http_url(values["source_url"])
        if problem:
            errors.append(FieldError("source_url", problem))
    if values.get("slug") and not SLUG_RE.match(values["slug"]):
        errors.append(FieldError("slug", "must be lowercase letters, digits and single hyphens"))

    mentions = _check_string_list("mentions", payload.get("mentions", []), MAX_MENTIONS, 100,
                                  errors)
    topics = payload.get("topics")
    if topics is None or topics == []:
        errors.append(FieldError("topics", "needs at least one topic"))
        topic_keys = None
    else:
        topic_keys = _check_string_list("topics", topics, MAX_TOPICS, 120, errors)

    status = payload.get("status", SynthesisStatus.PUBLISHED.value)
    if status not in {s.value for s in SynthesisStatus}:
        errors.append(FieldError("status", "must be 'draft' or 'published'"))

    published_at = None
    if payload.get("published_at") is not None:
        published_at = _parse_datetime("published_at", payload["published_at"], errors)

    if errors:
        raise InvalidSynthesis(errors)
    return SynthesisInput(
        external_id=values["external_id"],
        title=values["title"],
        summary=values["summary"],
        context=values["context"] or "",
        analysis=values["analysis"] or "",
        watch=values["watch"] or "",
        byline=values["byline"] or "",
        source_name=values["source_name"],
        source_url=values["source_url"],
        slug=values["slug"] or None,
        mentions=mentions or [],
        topic_keys=topic_keys or [],
        status=status,
        published_at=published_at,
    )
