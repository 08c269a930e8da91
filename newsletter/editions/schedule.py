"""When a reader's digest is due: local delivery times turned into UTC instants.

Pure functions, no database. A reader's digest is due once per local date (daily) or once
per local week on their weekday (weekly), at their local minute of the day in their IANA
timezone. The instant is computed per local date with ``zoneinfo``, so it follows DST:
07:00 in New York is 12:00 UTC in winter and 11:00 UTC in summer.

Two DST edge cases, decided on purpose:

* a local time that does not exist (the spring-forward gap, e.g. 02:30 on the March change
  in New York) is read with the offset before the change, so it falls an hour later on
  the wall clock (03:30): the reader still gets that day's digest, once;
* a local time that happens twice (the autumn fall-back hour) is its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAILY, WEEKLY, PAUSED = "daily", "weekly", "paused"


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The zone, or UTC for a name this system does not know (never fails a send run)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_instant(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of ``minute`` past local midnight on ``day`` in ``tz``."""
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    # fold=0: the first of a repeated hour; for a skipped hour, the pre-change offset.
    return local.astimezone(UTC)


def floor_slot(instant: datetime, slot_minutes: int) -> datetime:
    """The start of the UTC slot of ``slot_minutes`` that holds ``instant``."""
    epoch_minutes = int(instant.timestamp() // 60)
    return datetime.fromtimestamp((epoch_minutes - epoch_minutes % slot_minutes) * 60, UTC)


@dataclass(frozen=True)
class Plan:
    """The schedule fields that decide when a reader's digest is due."""

    timezone: str
    delivery_minute: int
    frequency: str       # daily, weekly or paused (a paused reader is daily once it ends)
    weekly_day: int      # 0 = Monday; used by weekly readers


@dataclass(frozen=True)
class Due:
    """One scheduled digest: the reader's local date and the UTC instant it is due."""

    local_date: date
    instant: datetime


def _scheduled(plan: Plan, now: datetime, offsets: range):
    """The plan's digests on the local dates ``today + offset`` (in the offsets' order)."""
    tz = zone(plan.timezone)
    today = now.astimezone(tz).date()
    for offset in offsets:
        day = today + timedelta(days=offset)
        if plan.frequency != WEEKLY or day.weekday() == plan.weekly_day:
            yield Due(day, local_instant(day, plan.delivery_minute, tz))


def latest_due(plan: Plan, now: datetime) -> Due | None:
    """The most recent scheduled digest at or before ``now`` (within the last 8 days)."""
    return next((due for due in _scheduled(plan, now, range(0, -8, -1))
                 if due.instant <= now), None)


def next_due(plan: Plan, now: datetime) -> Due:
    """The first scheduled digest strictly after ``now`` (a week repeats within 9 days)."""
    return next(due for due in _scheduled(plan, now, range(9)) if due.instant > now)


def next_digest(plan: Plan, now: datetime, *, paused_until: date | None = None,
                handled_through: date | None = None) -> Due | None:
    """The reader's next digest after ``now``: the first scheduled one that no pause covers
    (a pause holds on dates before ``paused_until``; without an end it holds for good: None)
    and whose local date is after the last one handled (``handled_through``). Within a year;
    a digest goes out only if something new was published for it."""
    if plan.frequency == PAUSED and paused_until is None:
        return None
    for due in _scheduled(plan, now, range(400)):
        if due.instant <= now:
            continue
        if plan.frequency == PAUSED and paused_until > due.local_date:
            continue
        if handled_through is not None and due.local_date <= handled_through:
            continue
        return due
    return None


def place_name(timezone: str) -> str:
    """How people name a zone: ``Europe/Paris`` is "Paris", ``America/Argentina/Buenos_Aires``
    "Buenos Aires", UTC "UTC"."""
    return timezone.rsplit("/", 1)[-1].replace("_", " ")


def describe(due: Due, timezone: str, *, hour_format: str = "24h") -> str:
    """A digest's time in the reader's own terms: "Wednesday 9 December at 07:00, Paris
    time" (``hour_format`` "12h": "7:00 AM")."""
    local = due.instant.astimezone(zone(timezone))
    if hour_format == "12h":
        clock = f"{(local.hour % 12) or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    else:
        clock = f"{local:%H:%M}"
    if timezone == "UTC" or timezone.startswith("Etc/"):
        # Etc/GMT+5 is UTC−5 (POSIX signs): say the offset, not the name.
        offset = int((local.utcoffset() or timedelta()).total_seconds() // 60)
        place = "UTC" if offset == 0 else (
            f"UTC{'+' if offset > 0 else '−'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}")
    else:
        place = f"{place_name(timezone)} time"
    return f"{local:%A} {local.day} {local:%B} at {clock}, {place}"


def digest_frequency(frequency: str) -> str:
    """The kind of digest a reader gets: weekly, or daily (a paused reader whose pause has
    ended gets daily ones)."""
    return WEEKLY if frequency == WEEKLY else DAILY


def window(frequency: str) -> timedelta:
    """How far back a reader's first digest reaches: a day, or a week for weekly readers."""
    return timedelta(days=7) if frequency == WEEKLY else timedelta(days=1)


def lookback(frequency: str) -> timedelta:
    """However long a reader went without a digest (a pause, a long outage, a skipped
    digest), the next one never reaches further back than this: a digest is news, not an
    archive. Twice the frequency's window, so one skipped digest loses nothing."""
    return 2 * window(frequency) if frequency == WEEKLY else timedelta(days=7)
