"""What the preference centre's form offers, in the reader's own terms: the topics in their
order, delivery times in their locale's clock, timezones grouped by region with the current
offset, pauses as lengths with the date they end, and a saved message that says what
changed. Presentation only: the values posted are the ones ``subscribers.preferences``
checks (``HH:MM``, IANA names, ISO dates, slugs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from newsletter.content.models import Topic
from newsletter.subscribers.models import Reader
from newsletter.subscribers.preferences import WEEKDAYS, timezones

# Where the 12-hour clock is the everyday one (CLDR's "h" hour cycle), by region; a
# language without a region counts as its most common one.
TWELVE_HOUR_REGIONS = frozenset({"US", "CA", "AU", "NZ", "IN", "PH", "PK", "BD", "EG", "SA",
                                 "MX", "CO", "MY", "IE"})
TWELVE_HOUR_LANGUAGES = frozenset({"en", "hi", "ar", "bn", "ur"})
STEP_MINUTES = 15
PAUSES = ((7, "1 week"), (14, "2 weeks"), (30, "1 month"), (91, "3 months"))


def hour_format(accept_languages) -> str:
    """``12h`` or ``24h`` for the browser's first language (``Accept-Language``)."""
    best = next(iter(accept_languages.values()), "") if accept_languages else ""
    language, _, region = best.replace("_", "-").partition("-")
    if region:
        return "12h" if region.upper() in TWELVE_HOUR_REGIONS else "24h"
    return "12h" if language.lower() in TWELVE_HOUR_LANGUAGES else "24h"


def clock(minute: int, fmt: str) -> str:
    hour, minute = divmod(minute, 60)
    if fmt == "12h":
        return f"{(hour % 12) or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"
    return f"{hour:02d}:{minute:02d}"


def time_choices(current_minute: int, fmt: str) -> list[tuple[str, str]]:
    """Every quarter hour as (``HH:MM``, its label in the reader's clock), with the reader's
    own time among them when it is not on a quarter."""
    minutes = sorted(set(range(0, 24 * 60, STEP_MINUTES)) | {current_minute})
    return [(f"{m // 60:02d}:{m % 60:02d}", clock(m, fmt)) for m in minutes]


def _offset(zone_name: str, moment: datetime) -> str:
    from zoneinfo import ZoneInfo

    delta = moment.astimezone(ZoneInfo(zone_name)).utcoffset() or timedelta()
    total = int(delta.total_seconds() // 60)
    sign = "+" if total >= 0 else "−"
    return f"UTC{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"


@lru_cache(maxsize=4)
def _zone_groups(day: date) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in timezones():
        region, _, place = name.partition("/")
        label = place.replace("_", " ").replace("/", " – ") if place else name
        groups.setdefault(region if place else "Other", []).append(
            (name, f"{label} ({_offset(name, moment)})"))
    return tuple((region, tuple(sorted(zones, key=lambda z: z[1])))
                 for region, zones in sorted(groups.items()))


def zone_groups(now: datetime) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """Timezones by region (Africa, America, Asia, Europe, …), each "City (UTC+01:00)" with
    today's offset, sorted by name; UTC under "Other"."""
    return _zone_groups(now.date())


def pause_choices(today: date, current: date | None) -> list[tuple[str, str]]:
    """Pause lengths as (the ISO date the pause ends, "2 weeks — back on Monday 21 December"),
    with the reader's own end date first when it is another one."""
    choices = []
    for days, words in PAUSES:
        end = today + timedelta(days=days)
        choices.append((end.isoformat(), f"{words} — back on {long_day(end)}"))
    if current is not None and current > today \
            and current.isoformat() not in {value for value, _ in choices}:
        choices.insert(0, (current.isoformat(), f"until {long_day(current)}"))
    return choices


def long_day(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B}"


@dataclass(frozen=True)
class Row:
    topic: Topic
    followed: bool
    can_up: bool      # a followed topic with another followed one above it
    can_down: bool


def ordered_topics(reader: Reader, offered: list[Topic]) -> list[Row]:
    """The rows of the topic list: the topics the reader follows, in their order (these
    move up and down among themselves), then the others in the site's order."""
    offered_ids = {topic.id for topic in offered}
    followed = [topic for topic in reader.topics if topic.id in offered_ids]
    followed_ids = {topic.id for topic in followed}
    last = len(followed) - 1
    return [Row(topic, True, i > 0, i < last) for i, topic in enumerate(followed)] + [
        Row(topic, False, False, False) for topic in offered if topic.id not in followed_ids]


def pause_state(reader: Reader, today: date) -> str:
    """``on`` (paused until a day still ahead), ``open`` (paused with no end: the form asks
    for one), or ``off`` (not paused, or the pause is over: the form shows every day)."""
    if reader.frequency != "paused":
        return "off"
    if reader.paused_until is None:
        return "open"
    return "on" if reader.paused_until > today else "off"


@dataclass(frozen=True)
class Saved:
    """What the saved message says: each change in words, and the topics left (to undo)."""

    changes: list[str]
    left: list[Topic]
    moved: str | None = None   # the name of the topic moved up or down, if that was it


# The form's labels, for error messages ("First name: must be printable text").
FIELD_LABELS = {"first_name": "First name", "delivery_time": "Delivery time",
                "timezone": "Timezone", "paused_until": "Pause", "weekly_day": "Day of the week",
                "new_email": "New address", "frequency": "How often", "format": "Format"}
FIELD_ORDER = {name: i for i, name in enumerate(
    ("first_name", "topics", "streams", "frequency", "weekly_day", "paused_until",
     "delivery_time", "timezone", "format", "email"))}
FIELD_WORDS = {"frequency": "how often", "weekly_day": "the day of the week",
               "paused_until": "the pause", "format": "the format",
               "streams": "what we send you"}


def saved_message(changes: dict[str, Any], topics_by_slug: dict[str, Topic], fmt: str,
                  moved: str | None = None) -> Saved:
    """The changes ``update_preferences`` returned (field → [before, after]) in words:
    "your topics", "the delivery time (now 8:00 AM)", "the timezone (now Paris)"."""
    words: list[str] = []
    left: list[Topic] = []
    for field, (before, after) in sorted(changes.items(), key=lambda item: FIELD_ORDER.get(
            item[0], len(FIELD_ORDER))):
        if field == "topics":
            gone = [slug for slug in before or [] if slug not in (after or [])]
            left = [topics_by_slug[slug] for slug in gone if slug in topics_by_slug]
            added = [slug for slug in after or [] if slug not in (before or [])]
            if added or gone:
                words.append("your topics")
            else:
                words.append("the order of your topics")
        elif field == "delivery_time":
            hour, _, minute = str(after).partition(":")
            words.append(f"the delivery time (now {clock(int(hour) * 60 + int(minute), fmt)})"
                         if hour.isdigit() and minute.isdigit() else "the delivery time")
        elif field == "timezone":
            words.append(f"the timezone (now {str(after).rsplit('/', 1)[-1].replace('_', ' ')})")
        elif field == "paused_until" and after:
            try:
                words.append(f"the pause (back on {long_day(date.fromisoformat(after))})")
            except (TypeError, ValueError):
                words.append("the pause")
        elif field == "weekly_day" and isinstance(after, int) and 0 <= after < 7:
            words.append(f"the day of the week (now {WEEKDAYS[after]})")
        elif field == "email":
            words.append("your address (once you confirm it)")
        elif field == "first_name":
            words.append("your name" if after else "your name (removed)")
        else:
            words.append(FIELD_WORDS.get(field, field.replace("_", " ")))
    if moved is not None:  # the move is said on its own: the rest is what else changed
        words = [word for word in words if word != "the order of your topics"]
        moved = topics_by_slug[moved].name if moved in topics_by_slug else None
    return Saved(words, left, moved)
