"""Digests: every reader gets, at their own local time, what was published since their last.

Contract of :func:`compose_due` (run every minute by the worker's scheduler):

* a reader is due when their latest scheduled time (``schedule.latest_due``: local time,
  IANA timezone, daily or weekly on their weekday; a paused reader from the day the pause
  ends) has passed, came after they confirmed, and their digest for that local date has
  not been handled yet (``readers.last_digest_on``);
* due less than ``grace`` ago: they get the syntheses published since their previous
  digest (``readers.digest_covered_until``; the first one reaches back a day, or a week for
  weekly readers; never more than a week) in the topics they follow, grouped by topic in
  their order, newest first, each synthesis once (under the first of its topics they
  follow); premium topics only for paying readers; nothing at all when nothing is new;
* due longer ago (a worker that was down): skipped and logged; the content waits for
  their next digest, since only a digest that was sent moves ``digest_covered_until``.

Readers due in the same UTC slot, on the same local date, with the same frequency and the
same sections share one edition (rendered once); its idempotency key is (kind, local date,
slot, frequency, hash of the sections). Each edition's reader updates and deliveries are
one transaction, and a reader row moves only by compare-and-set from the values this run
read, so a second worker, a restart or a crash between any two statements never gives a
reader two digests for one date, and never loses one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, exists, select, text, union_all, update
from sqlalchemy.exc import IntegrityError

from newsletter.content.models import Synthesis, SynthesisStatus, Topic
from newsletter.db import UTCDateTime, db
from newsletter.delivery.fanout import queue_readers
from newsletter.editions import schedule
from newsletter.editions.models import Edition, EditionKind, EditionStatus, EditionVariant
from newsletter.editions.render import edition_context, synthesis_dict
from newsletter.editions.service import HTML, TEXT, add_variants, tag_topics
from newsletter.subscribers.models import Reader, ReaderStatus, ReaderTopic, Suppression

log = logging.getLogger(__name__)
CHUNK = 2000  # ids per IN (...) list; far below every database's parameter limit
# A digest covers what was listed until a few seconds before it was composed, so a
# synthesis whose (short) ingest transaction was still open then goes in the next one.
LISTING_MARGIN = timedelta(seconds=10)
# A digest edition that takes a reader stays open at least this long after, so finishing
# it (editions.open_until) can never race with adding a reader to it.
OPEN_MARGIN = timedelta(minutes=10)

Sections = tuple[tuple[int, tuple[int, ...]], ...]  # ((topic_id, (synthesis ids…)), …)


@dataclass
class ComposeResult:
    due: int = 0            # readers whose digest time had come
    queued: int = 0         # deliveries queued
    empty: int = 0          # readers with nothing new (no email)
    skipped: int = 0        # readers whose time passed longer ago than the grace
    editions: list[int] = field(default_factory=list)  # editions that got readers this run


@dataclass(frozen=True)
class _TopicInfo:
    name: str
    slug: str


@dataclass(frozen=True)
class _Due:
    reader_id: int
    paid: bool
    local_date: date
    instant: datetime
    frequency: str          # daily or weekly (paused readers whose pause ended: daily)
    old_on: date | None     # the reader row as read: compare-and-set values
    old_until: datetime | None
    label_date: date        # the reader's local date when it goes out (shown in the email)


def compose_due(mail, *, now: datetime, grace: timedelta, slot_minutes: int) -> ComposeResult:
    """Queue the digests whose time has come; see the module docstring."""
    result = ComposeResult()
    fresh: list[_Due] = []
    stale: list[_Due] = []
    for plan in _plans():
        due = schedule.latest_due(plan, now)
        if due is None:
            continue
        for row in _unhandled_readers(plan, due):
            if row.confirmed_at is not None and row.confirmed_at > due.instant:
                continue  # subscribed after that time: their first digest is the next one
            item = _Due(row.id, row.plan == "paid", due.local_date, due.instant,
                        schedule.digest_frequency(plan.frequency), row.last_digest_on,
                        row.digest_covered_until, due.local_date)
            (fresh if now - due.instant < grace else stale).append(item)
    if stale:
        result.skipped = _mark_handled(stale)
        log.warning("skipped %d digest(s) due more than %s ago (the worker was not running); "
                    "their content goes in the readers' next digest (up to %s back)",
                    result.skipped, grace, schedule.lookback(schedule.DAILY))
    result.due = len(fresh)
    _compose(mail, fresh, now=now, slot_minutes=slot_minutes, grace=grace, result=result,
             prefix="digest")
    return result


def compose_now(mail, *, now: datetime, slot_minutes: int) -> ComposeResult:
    """Compose and queue at once the digest each active reader would get next.

    Their next digest is brought forward: it holds what was published since their last one
    (or the usual first window), and it counts as the digest of their next delivery date
    (today if their time is still ahead, else their next day or week), so nobody gets two
    digests for one date nor the same syntheses twice. Readers with nothing new get
    nothing; paused readers are left alone.
    """
    rows = db.session.execute(
        select(Reader.id, Reader.plan, Reader.timezone, Reader.delivery_minute,
               Reader.frequency, Reader.weekly_day, Reader.paused_until,
               Reader.last_digest_on, Reader.digest_covered_until)
        .where(*_active()).order_by(Reader.id)).all()
    items = []
    for row in rows:
        today = now.astimezone(schedule.zone(row.timezone)).date()
        if row.frequency == schedule.PAUSED and (row.paused_until is None
                                                 or row.paused_until > today):
            continue
        plan = schedule.Plan(row.timezone, row.delivery_minute, row.frequency, row.weekly_day)
        upcoming = schedule.next_due(plan, now).local_date
        if row.last_digest_on is not None and row.last_digest_on >= upcoming:
            upcoming = schedule.next_due(
                plan, schedule.local_instant(row.last_digest_on, row.delivery_minute,
                                             schedule.zone(row.timezone))).local_date
        items.append(_Due(row.id, row.plan == "paid", upcoming, now,
                          schedule.digest_frequency(row.frequency), row.last_digest_on,
                          row.digest_covered_until, today))
    result = ComposeResult(due=len(items))
    _compose(mail, items, now=now, slot_minutes=slot_minutes, grace=timedelta(0),
             result=result, prefix="digest-now")
    return result


# -- name: digest-plans
# Contract: the distinct schedules of all readers (a covering scan of ix_readers_schedule).
# Schedules are few (timezones × chosen times), so due dates are computed once per
# schedule, not per reader; schedules of readers who get nothing cost one empty lookup.
def _plans() -> list[schedule.Plan]:
    rows = db.session.execute(
        select(Reader.timezone, Reader.delivery_minute, Reader.frequency, Reader.weekly_day)
        .distinct().order_by(Reader.timezone, Reader.delivery_minute, Reader.frequency,
                             Reader.weekly_day))
    return [schedule.Plan(*row) for row in rows]


def _active():
    """Readers who may get list mail: confirmed, with an address, not suppressed."""
    return (Reader.status == ReaderStatus.ACTIVE.value, Reader.email.is_not(None),
            ~exists().where(Suppression.email_hash == Reader.email_hash))


# -- name: digest-unhandled-readers
# Contract: active readers on this schedule whose digest for the due local date is not
# handled yet, and who are not paused on that date. Two index ranges on
# ix_readers_schedule (handled before that date; never handled), so once a schedule's
# readers are handled for the day, looking again costs nothing.
def _unhandled_readers(plan: schedule.Plan, due: schedule.Due):
    columns = (Reader.id, Reader.plan, Reader.confirmed_at, Reader.last_digest_on,
               Reader.digest_covered_until)
    same_plan = (Reader.timezone == plan.timezone,
                 Reader.delivery_minute == plan.delivery_minute,
                 Reader.frequency == plan.frequency, Reader.weekly_day == plan.weekly_day)
    not_paused = ~((Reader.frequency == schedule.PAUSED)
                   & (Reader.paused_until.is_(None) | (Reader.paused_until > due.local_date)))
    query = union_all(
        select(*columns).where(*same_plan, Reader.last_digest_on < due.local_date,
                               *_active(), not_paused),
        select(*columns).where(*same_plan, Reader.last_digest_on.is_(None), *_active(),
                               not_paused))
    return sorted(db.session.execute(query).all(), key=lambda row: row.id)


def _compose(mail, items: list[_Due], *, now: datetime, slot_minutes: int, grace: timedelta,
             result: ComposeResult, prefix: str) -> None:
    if not items:
        return
    topics_of = _followed([item.reader_id for item in items])
    since_of = {item.reader_id: _since(item) for item in items}
    until = now - LISTING_MARGIN
    by_topic, syntheses = _recent(min(since_of.values()), until, mail.config["BASE_URL"])
    premium = set(db.session.scalars(select(Topic.id).where(Topic.premium.is_(True))))
    groups: dict[tuple, list[_Due]] = defaultdict(list)
    empty: list[_Due] = []
    memo: dict[tuple, Sections] = {}
    for item in items:
        followed = tuple(t for t in topics_of.get(item.reader_id, ())
                         if item.paid or t not in premium)
        since = since_of[item.reader_id]
        first = item.old_until is None
        key = (followed, since, first)
        if key not in memo:
            memo[key] = _sections(followed, since, by_topic, first=first)
        sections = memo[key]
        if not sections:
            empty.append(item)
            continue
        slot = schedule.floor_slot(item.instant, slot_minutes)
        groups[(slot, item.label_date, item.frequency, sections)].append(item)
    if empty:
        result.empty = _mark_handled(empty)
    topics = {t.id: _TopicInfo(t.name, t.slug) for t in db.session.scalars(select(Topic))}
    for (slot, label_date, frequency, sections), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], _digest_hash(kv[0][3]))):
        edition_id, queued = _write_group(
            mail, members, prefix=prefix, slot=slot, local_date=label_date,
            frequency=frequency, sections=sections, topics=topics, syntheses=syntheses,
            now=now, covered_until=until,
            open_until=max(slot + timedelta(minutes=slot_minutes) + grace,
                           now + OPEN_MARGIN))
        result.queued += queued
        if edition_id is not None and queued:
            result.editions.append(edition_id)


def _since(item: _Due) -> datetime:
    """Where the reader's digest starts: their last digest's end (by listing time), or for
    a first digest the usual window (by publication time); never further back than the
    frequency's lookback."""
    floor = item.instant - schedule.lookback(item.frequency)
    since = item.old_until or item.instant - schedule.window(item.frequency)
    return max(since, floor)


def _followed(reader_ids: Sequence[int]) -> dict[int, list[int]]:
    followed: dict[int, list[int]] = defaultdict(list)
    for chunk in _chunks(reader_ids):
        rows = db.session.execute(
            select(ReaderTopic.reader_id, ReaderTopic.topic_id)
            .where(ReaderTopic.reader_id.in_(chunk))
            .order_by(ReaderTopic.reader_id, ReaderTopic.position, ReaderTopic.topic_id))
        for reader_id, topic_id in rows:
            followed[reader_id].append(topic_id)
    return followed


def _recent(since: datetime, until: datetime, base_url: str):
    """Syntheses listed (made visible) in (since, until], newest first: by topic id, and as
    the template's plain dicts by id (plain data: the per-edition commits expire ORM
    objects). ``listed_at >= published_at``, so this holds every synthesis published in
    the window too."""
    rows = list(db.session.scalars(
        select(Synthesis).where(Synthesis.status == SynthesisStatus.PUBLISHED.value,
                                Synthesis.listed_at > since,
                                Synthesis.listed_at <= until)
        .order_by(Synthesis.published_at.desc(), Synthesis.id.desc())))
    syntheses = {s.id: {**synthesis_dict(s, base_url), "listed_at": s.listed_at}
                 for s in rows}
    by_topic: dict[int, list[dict]] = defaultdict(list)
    for synthesis in rows:
        for topic in synthesis.topics:
            by_topic[topic.id].append(syntheses[synthesis.id])
    return by_topic, syntheses


def _sections(followed: Iterable[int], since: datetime, by_topic, *, first: bool) -> Sections:
    """The reader's sections: after their last digest by listing time (so a back-dated or
    late-published synthesis still comes), or for a first digest by publication time."""
    seen: set[int] = set()
    sections = []
    when = "published_at" if first else "listed_at"
    for topic_id in followed:
        ids = []
        for synthesis in by_topic.get(topic_id, ()):
            if synthesis[when] > since and synthesis["id"] not in seen:
                seen.add(synthesis["id"])
                ids.append(synthesis["id"])
        if ids:
            sections.append((topic_id, tuple(ids)))
    return tuple(sections)


def _digest_hash(sections: Sections) -> str:
    return hashlib.sha256(json.dumps(sections).encode()).hexdigest()[:16]


# -- name: digest-mark-handled
# Contract: the readers' digest for that local date is handled without an email (nothing
# new, or skipped as too late). The content covered stays where that digest would have
# started, so what they did not get waits for their next digest. Compare-and-set: a row
# changed since it was read is left for the next run.
def _mark_handled(items: list[_Due]) -> int:
    done = 0
    for (local_date, old_on, old_until, since), members in _by_row_state(items).items():
        for chunk in _chunks([m.reader_id for m in members]):
            result = db.session.execute(
                update(Reader).where(Reader.id.in_(chunk), *_unchanged(old_on, old_until))
                .values(last_digest_on=local_date if old_on is None
                        else max(old_on, local_date), digest_covered_until=since)
                .execution_options(synchronize_session=False))
            done += result.rowcount or 0
    db.session.commit()
    return done


def _by_row_state(items: list[_Due]) -> dict[tuple, list[_Due]]:
    """Readers by (local date, row as read, start of their content): one statement each."""
    grouped: dict[tuple, list[_Due]] = defaultdict(list)
    for item in items:
        grouped[(item.local_date, item.old_on, item.old_until, _since(item))].append(item)
    return grouped


def _unchanged(old_on: date | None, old_until: datetime | None):
    return (Reader.last_digest_on.is_not_distinct_from(old_on),
            Reader.digest_covered_until.is_not_distinct_from(old_until))


def _write_group(mail, members: list[_Due], *, prefix: str, slot: datetime, local_date: date,
                 frequency: str, sections: Sections, topics: dict[int, _TopicInfo],
                 syntheses: dict[int, dict], now: datetime, covered_until: datetime,
                 open_until: datetime) -> tuple[int | None, int]:
    """One edition for readers who share a digest; returns (edition id, deliveries queued).

    One transaction: find or create the edition (unique idempotency key), hold an existing
    one open, move each reader's schedule state by compare-and-set, queue a delivery for
    each reader moved. A worker that loses the race for the key retries and finds the
    winner's edition; readers the winner took are no longer unchanged, so they are not
    queued twice.
    """
    digest_hash = _digest_hash(sections)
    key = f"{prefix}:{local_date.isoformat()}:{slot:%Y%m%dT%H%MZ}:{frequency}:{digest_hash}"
    slug = (f"{local_date.isoformat()}-{frequency}-{prefix}-"
            f"{hashlib.sha256(key.encode()).hexdigest()[:12]}")
    content = _content(sections, topics, syntheses, frequency, local_date)
    rendered = None
    for attempt in range(2):
        try:
            edition = db.session.scalar(select(Edition).where(Edition.idempotency_key == key))
            if edition is None:
                if rendered is None:
                    rendered = _render(mail, content, slug, sections, topics, syntheses)
                edition = Edition(
                    kind=EditionKind.DIGEST.value, subject=content["subject"],
                    preheader=content["preheader"], status=EditionStatus.SENDING.value,
                    content={k: v for k, v in content.items()
                             if k not in ("subject", "preheader")},
                    audience={"topics": [topics[t].slug for t, _ in sections], "tier": "all"},
                    tracking=True, send_at=slot, slot_at=slot, open_until=open_until,
                    idempotency_key=key, slug=slug, started_at=now)
                db.session.add(edition)
                db.session.flush()
                tag_topics(edition.id, edition.audience["topics"])
                variants = add_variants(edition, rendered, mail.config)
                status = edition.status
            else:
                status = _hold_open(edition.id, open_until)
                variants = {v.key: v for v in db.session.scalars(
                    select(EditionVariant).where(EditionVariant.edition_id == edition.id))}
            if status in (EditionStatus.CANCELLED.value, EditionStatus.FAILED.value):
                db.session.rollback()
                _mark_handled(members)  # an operator stopped this digest: no email
                return None, 0
            moved = _take_readers(members, covered_until=covered_until)
            if not moved:
                db.session.rollback()  # another worker took them; leave no empty edition
                return None, 0
            queued = queue_readers(edition.id, moved, html_variant=variants[HTML].id,
                                   text_variant=variants[TEXT].id, now=now)
            edition_id = edition.id
            db.session.commit()
            return edition_id, queued
        except IntegrityError:
            db.session.rollback()
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# -- name: digest-hold-open
# Contract: the first write of the transaction that adds readers to an existing digest
# edition: it locks the edition row (PostgreSQL) or takes the write lock (SQLite), keeps it
# open at least until ``open_until``, and reopens it if it had finished, so finishing
# (queue.finish_editions, which needs open_until <= now) either happened before and is
# undone here, or waits for this transaction and then sees open_until in the future.
# Returns the edition's status.
_HOLD_OPEN = """
UPDATE editions SET
  open_until = CASE WHEN open_until IS NULL OR open_until < :until THEN :until
                    ELSE open_until END,
  finished_at = CASE WHEN status = 'sent' THEN NULL ELSE finished_at END,
  status = CASE WHEN status = 'sent' THEN 'sending' ELSE status END
WHERE id = :id
RETURNING status
"""


def _hold_open(edition_id: int, until: datetime) -> str:
    statement = text(_HOLD_OPEN).bindparams(bindparam("until", type_=UTCDateTime()))
    return db.session.execute(statement, {"id": edition_id, "until": until}).scalar_one()


# -- name: digest-take-readers
# Contract: move each reader's schedule state (handled date, content covered until) from
# the values read to the new ones; returns the ids that moved, the only ones to queue.
def _take_readers(members: list[_Due], *, covered_until: datetime) -> list[int]:
    moved: list[int] = []
    for (local_date, old_on, old_until, _), group in _by_row_state(members).items():
        new_on = local_date if old_on is None else max(old_on, local_date)
        for chunk in _chunks([m.reader_id for m in group]):
            moved += db.session.scalars(
                update(Reader).where(Reader.id.in_(chunk), *_unchanged(old_on, old_until))
                .values(last_digest_on=new_on, digest_covered_until=covered_until)
                .returning(Reader.id).execution_options(synchronize_session=False))
    return sorted(moved)


def _content(sections: Sections, topics, syntheses, frequency: str, local_date: date) -> dict:
    titles = [syntheses[i]["title"] for _, ids in sections for i in ids]
    count = len(titles)
    more = f" and {count - 1} more" if count > 1 else ""
    subject = f"{titles[0]}{more}"
    if len(subject) > 300:
        subject = subject[:297 - len(more)].rstrip() + "…" + more
    names = [topics[t].name for t, _ in sections]
    preheader = (f"{count} new in {', '.join(names)}" if count > 1
                 else f"New in {names[0]}")[:300]
    return {
        "subject": subject, "preheader": preheader, "frequency": frequency,
        "local_date": local_date.isoformat(),
        "sections": [{"title": topics[t].name, "topic": topics[t].slug,
                      "synthesis_ids": list(ids)} for t, ids in sections],
        "body_html": "", "body_text": "",
    }


def _render(mail, content: dict, slug: str, sections: Sections, topics, syntheses):
    config = mail.config
    base = config["BASE_URL"].rstrip("/")
    local_date = date.fromisoformat(content["local_date"])
    context = edition_context(
        config=config, subject=content["subject"], preheader=content["preheader"],
        web_url=f"{base}/editions/{slug}",
        sections=[{"title": topics[t].name, "slug": topics[t].slug,
                   "url": f"{base}/topics/{topics[t].slug}",
                   "syntheses": [syntheses[i] for i in ids]} for t, ids in sections])
    return mail.renderer.render("digest", {
        **context, "frequency": content["frequency"],
        "date_label": f"{local_date:%A} {local_date.day} {local_date:%B %Y}",
        "count": sum(len(ids) for _, ids in sections)})


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    ids = list(ids)
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]
