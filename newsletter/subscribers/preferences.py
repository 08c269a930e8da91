"""Parsing a reader's preference form (or API payload) into checked values.

Every field is checked and every problem reported by field name; nothing is saved unless
all of it is valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from zoneinfo import available_timezones

from newsletter.content.models import Topic
from newsletter.subscribers.models import Frequency, MailFormat, Stream
from newsletter.validation import FieldError, InvalidInput, single_line, whole_number

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_FIELD = 100
MAX_PAUSE = timedelta(days=366)


@cache
def timezones() -> tuple[str, ...]:
    """IANA zone names from the zone database, sorted (legacy aliases left out)."""
    return tuple(sorted(
        name for name in available_timezones()
        if "/" in name and not name.startswith(("Etc/", "SystemV/", "US/", "posix", "right"))
    ) + ["UTC"])


def valid_timezone(name: str) -> bool:
    return name in _zone_set()


@cache
def _zone_set() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


@dataclass
class Preferences:
    topics: list[Topic]
    frequency: str
    weekly_day: int
    paused_until: date | None
    delivery_minute: int
    timezone: str
    format: str
    # The streams chosen (``Stream`` values), or None when the form did not show them
    # (they stay as they are).
    streams: frozenset[str] | None = None


def _one(form: dict[str, list[str]], name: str, errors: list[FieldError],
         default: str = "") -> str:
    values = form.get(name) or [default]
    value = values[0] if isinstance(values, list) else values
    checked = single_line(name, value, MAX_FIELD, errors)
    return default if checked is None else checked


def parse_topics(form: dict[str, list[str]], available: list[Topic],
                 errors: list[FieldError]) -> list[Topic]:
    """Checked topic slugs in the reader's order: the page's ``order`` list (the slugs as the
    rows stand, moved up and down), or ``order-<slug>`` numbers (the API), then site order."""
    by_slug = {topic.slug: topic for topic in available}
    chosen: list[tuple[int, int, Topic]] = []
    raw = form.get("topic") or []
    if len(raw) > len(by_slug) + 5:
        errors.append(FieldError("topic", "too many topics"))
        return []
    listed = form.get("order") or []
    rank: dict[str, int] = {}
    if isinstance(listed, list) and len(listed) <= len(by_slug) + 5:
        for slug in listed:
            if isinstance(slug, str) and slug in by_slug:
                rank.setdefault(slug, len(rank) + 1)
    for slug in raw:
        if not isinstance(slug, str) or slug not in by_slug:
            errors.append(FieldError("topic", f"unknown topic {str(slug)[:60]!r}"))
            continue
        topic = by_slug[slug]
        if any(t is topic for _, _, t in chosen):
            continue
        order_text = _one(form, f"order-{slug}", errors, default="")
        order = rank.get(slug, 999)
        if order_text:
            order = whole_number(order_text, 1, 99) or 999
            if order == 999:
                errors.append(FieldError(f"order-{slug}", "must be a number from 1 to 99"))
        chosen.append((order, topic.position, topic))
    if not chosen and not any(e.field.startswith("topic") for e in errors):
        errors.append(FieldError("topic", "Choose at least one topic."))
    return [topic for _, _, topic in sorted(chosen, key=lambda item: (item[0], item[1]))]


NAME_MAX = 60


def parse_first_name(value: object, errors: list[FieldError]) -> str | None:
    """An optional first name for greetings: one line of printable text, at most 60
    characters, inner spaces squeezed; "" means none (None)."""
    if value is None:
        return None
    checked = single_line("first_name", value, NAME_MAX, errors)
    if checked is None:
        return None
    if not checked.isprintable():
        errors.append(FieldError("first_name", "must be printable text"))
        return None
    return " ".join(checked.split()) or None


def move_in_order(order: list[str], move: str,
                  ticked: list[str] | None = None) -> tuple[list[str], str | None]:
    """The ``order`` list with one ticked topic moved past the ticked one above or below it
    (unticked rows do not count: their order means nothing). ``move`` is ``<slug>:up`` or
    ``<slug>:down``. Returns the new list and the slug moved (None: nothing moved)."""
    slug, _, direction = move.rpartition(":")
    ticked_set = set(order if ticked is None else ticked)
    if direction not in ("up", "down") or slug not in order or slug not in ticked_set:
        return order, None
    moved = list(dict.fromkeys(order))  # each slug once
    index = moved.index(slug)
    step = -1 if direction == "up" else 1
    other = index + step
    while 0 <= other < len(moved) and moved[other] not in ticked_set:
        other += step
    if not 0 <= other < len(moved):
        return moved, None
    moved[index], moved[other] = moved[other], moved[index]
    return moved, slug


def parse_preferences(form: dict[str, list[str]], available: list[Topic],
                      today: date) -> Preferences:
    """Raise ``InvalidInput`` naming every bad field; return the checked preferences."""
    errors: list[FieldError] = []
    topics = parse_topics(form, available, errors)

    frequency = _one(form, "frequency", errors, Frequency.DAILY.value)
    if frequency not in {f.value for f in Frequency}:
        errors.append(FieldError("frequency", "must be daily, weekly or paused"))

    weekly_day = whole_number(_one(form, "weekly_day", errors, "0"), 0, 6)
    if weekly_day is None:
        errors.append(FieldError("weekly_day", "must be a day of the week"))
        weekly_day = 0

    paused_until = None
    if frequency == Frequency.PAUSED.value:
        until_text = _one(form, "paused_until", errors)
        try:
            paused_until = date.fromisoformat(until_text)
        except ValueError:
            errors.append(FieldError("paused_until", "Give the date the pause ends "
                                                     "(YYYY-MM-DD)."))
        else:
            if paused_until <= today:
                errors.append(FieldError("paused_until", "The pause must end after today."))
            elif paused_until - today > MAX_PAUSE:
                errors.append(FieldError("paused_until", "A pause lasts at most a year."))

    delivery_minute = 7 * 60
    time_text = _one(form, "delivery_time", errors, "07:00")
    match = _TIME_RE.match(time_text)
    if not match:
        errors.append(FieldError("delivery_time", "must be a time of day as HH:MM"))
    else:
        delivery_minute = int(match[1]) * 60 + int(match[2])

    timezone = _one(form, "timezone", errors, "UTC") or "UTC"
    if not valid_timezone(timezone):
        errors.append(FieldError("timezone", f"unknown timezone {timezone[:60]!r}"))

    mail_format = _one(form, "format", errors, MailFormat.HTML.value)
    if mail_format not in {f.value for f in MailFormat}:
        errors.append(FieldError("format", "must be html or text"))

    streams = parse_streams(form, errors)

    if errors:
        raise InvalidInput(errors)
    return Preferences(topics=topics, frequency=frequency, weekly_day=weekly_day,
                       paused_until=paused_until, delivery_minute=delivery_minute,
                       timezone=timezone, format=mail_format, streams=streams)


def parse_streams(form: dict[str, list[str]], errors: list[FieldError]) -> frozenset[str] | None:
    """The ``stream`` checkboxes, when the form says it showed them (``streams_shown``)."""
    if not form.get("streams_shown"):
        return None
    raw = form.get("stream") or []
    known = {stream.value for stream in Stream}
    if len(raw) > len(known) or any(not isinstance(v, str) or v not in known for v in raw):
        errors.append(FieldError("stream", "must be digest or special"))
        return None
    if not raw:
        errors.append(FieldError("stream", "Choose at least one kind of email, or "
                                           "unsubscribe from everything."))
        return None
    return frozenset(raw)
