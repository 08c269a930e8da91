"""The lines of a reader import: what each line of the file asks for (:func:`plan_lines`),
and one chunk of them written to the database (:func:`apply_chunk`), set-based.

The rules are stated in :mod:`newsletter.subscribers.imports`; the job around them (claims,
checkpoints, the report) lives there too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from newsletter.content.models import Topic
from newsletter.db import db
from newsletter.subscribers.addresses import email_hash, normalise_email
from newsletter.subscribers.import_files import LineProblem, data_lines, split_line
from newsletter.subscribers.models import (
    ConsentEvent,
    ImportJob,
    ImportProblem,
    Reader,
    ReaderStatus,
    ReaderTopic,
    Suppression,
    SuppressionReason,
)
from newsletter.subscribers.preferences import valid_timezone
from newsletter.subscribers.service import ReaderServices

SOURCE = "import"
MAX_TOPICS_IN_CELL = 20
_TOPIC_SEPARATORS = re.compile(r"[;,|]")


def printable(text: str, limit: int) -> str:
    """``text`` with control characters (a NUL, which PostgreSQL cannot store) shown as
    ``?``, cut to ``limit`` characters: what a report may echo of a line."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:limit]


@dataclass(frozen=True)
class Skip:
    """A line that is not imported: its number, what it held (for the admin) and why."""

    line: int
    value: str
    reason: str


@dataclass(frozen=True)
class Row:
    """A line that names a reader, checked as far as the file alone can tell."""

    line: int
    email: str
    topic_ids: tuple[int, ...]
    timezone: str


def plan_lines(text: str, job: ImportJob, topics: list[Topic]) -> list[Skip | Row]:
    """One entry per data line, in order: the reader it adds, or why it is skipped. Only
    what the file itself says is judged here (the database is asked per chunk)."""
    by_slug = {t.slug: t for t in topics}
    by_name = {t.name.lower(): t for t in topics}
    everyone = [by_slug[s].id for s in job.topics if s in by_slug]
    mapping = job.mapping
    width = mapping.get("columns") or 1
    email_at, topics_at, zone_at = mapping.get("email"), mapping.get("topics"), \
        mapping.get("timezone")
    first_seen: dict[str, int] = {}
    plan: list[Skip | Row] = []
    for number, line in data_lines(text, job.has_header):
        try:
            fields = split_line(line, job.delimiter)
        except LineProblem as exc:
            plan.append(Skip(number, printable(line, 100), str(exc)))
            continue
        raw = fields[email_at] if email_at < len(fields) else ""
        shown = printable(raw or line, 100)
        if len(fields) != width:
            plan.append(Skip(number, shown, f"has {len(fields)} field"
                              f"{'s' if len(fields) != 1 else ''}; the first line has {width}"))
            continue
        try:
            email = normalise_email(raw)
        except ValueError as exc:
            plan.append(Skip(number, shown, printable(f"invalid address: {exc}", 200)))
            continue
        ids = list(everyone)
        unknown = None
        if topics_at is not None and fields[topics_at]:
            names = [n.strip() for n in _TOPIC_SEPARATORS.split(fields[topics_at]) if n.strip()]
            for name in names[:MAX_TOPICS_IN_CELL]:
                topic = by_slug.get(name) or by_name.get(name.lower())
                if topic is None:
                    unknown = name
                    break
                if topic.id not in ids:
                    ids.append(topic.id)
        if unknown is not None:
            plan.append(Skip(number, email, printable(f"unknown topic {unknown[:60]!r}", 200)))
            continue
        if not ids:
            plan.append(Skip(number, email, "no topic: the line names none and none was "
                                             "chosen for everyone"))
            continue
        zone = fields[zone_at] if zone_at is not None and fields[zone_at] else "UTC"
        if not valid_timezone(zone):
            plan.append(Skip(number, email, printable(f"unknown timezone {zone[:60]!r}", 200)))
            continue
        if email in first_seen:
            plan.append(Skip(number, email, f"duplicate of line {first_seen[email]:,}"))
            continue
        first_seen[email] = number
        plan.append(Row(number, email, tuple(ids), zone))
    return plan


@dataclass
class Counts:
    """What one chunk did: readers added, known ones updated or already as asked, lines
    skipped."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


def _events(rows: list[tuple[int, Row]], job: ImportJob, slugs: dict[int, str],
            now: datetime) -> list[dict]:
    events = []
    for reader_id, row in rows:
        consent = {"source_detail": job.consent_source, "import": job.id, "line": row.line,
                   "admin": job.admin_email}
        events.append({"reader_id": reader_id, "kind": "subscribe", "source": SOURCE,
                       "occurred_at": now, "detail": {
                           "topics": [slugs[t] for t in row.topic_ids],
                           "consent_record": consent}})
        events.append({"reader_id": reader_id, "kind": "confirm", "source": SOURCE,
                       "occurred_at": now, "detail": {"method": "import", "import": job.id}})
    return events


def _add_topics(rows: list[tuple[int, Row]], slugs: dict[int, str],
                now: datetime, job: ImportJob) -> set[int]:
    """Give known readers the line's topics they lack; the ids of those who gained some."""
    have: dict[int, dict[int, int]] = {}
    for reader_id, topic_id, position in db.session.execute(
            select(ReaderTopic.reader_id, ReaderTopic.topic_id, ReaderTopic.position)
            .where(ReaderTopic.reader_id.in_([r for r, _ in rows]))):
        have.setdefault(reader_id, {})[topic_id] = position
    links, events, changed = [], [], set()
    for reader_id, row in rows:
        current = have.get(reader_id, {})
        missing = [t for t in row.topic_ids if t not in current]
        if not missing:
            continue
        changed.add(reader_id)
        top = max(current.values(), default=0)
        links += [{"reader_id": reader_id, "topic_id": t, "position": top + i}
                  for i, t in enumerate(missing, start=1)]
        before = [slugs.get(t, str(t)) for t in sorted(current, key=current.get)]
        events.append({"reader_id": reader_id, "kind": "preferences", "source": SOURCE,
                       "occurred_at": now, "detail": {
                           "changes": {"topics": [before, before + [slugs[t] for t in missing]]},
                           "import": job.id, "admin": job.admin_email}})
    if links:
        db.session.execute(insert(ReaderTopic), links)
    if events:
        db.session.execute(insert(ConsentEvent), events)
    return changed


def apply_chunk(services: ReaderServices, job: ImportJob, part: list[Skip | Row],
           slugs: dict[int, str], now: datetime) -> Counts:
    """Write one chunk (uncommitted): set-based lookups and inserts."""
    skipped = [(s.line, s.value, s.reason) for s in part if isinstance(s, Skip)]
    rows = [r for r in part if isinstance(r, Row)]
    counts = Counts()
    if rows:
        hashes = {r.email: email_hash(r.email, services.hash_key) for r in rows}
        suppressed = dict(db.session.execute(
            select(Suppression.email_hash, Suppression.reason)
            .where(Suppression.email_hash.in_(list(hashes.values())))).all())
        known = {email: (reader_id, status) for reader_id, email, status in db.session.execute(
            select(Reader.id, Reader.email, Reader.status)
            .where(Reader.email.in_(list(hashes))))}
        new, pending, active = [], [], []
        for row in rows:
            reason = suppressed.get(hashes[row.email])
            found = known.get(row.email)
            if reason:
                # An erasure is not named: that the person was once a reader is theirs.
                said = "on the suppression list" if reason == SuppressionReason.ERASED.value \
                    else reason.replace("_", " ")
                skipped.append((row.line, row.email, f"suppressed ({said}):"
                                " only the person can subscribe again"))
            elif found is None:
                new.append(row)
            elif found[1] == ReaderStatus.ACTIVE.value:
                active.append((found[0], row))
            elif found[1] == ReaderStatus.PENDING.value:
                pending.append((found[0], row))
            else:
                skipped.append((row.line, row.email, f"the reader is {found[1]}: only the "
                                "person can subscribe again"))
        if new:
            ids = db.session.scalars(
                insert(Reader).returning(Reader.id, sort_by_parameter_order=True),
                [{"email": r.email, "email_hash": hashes[r.email],
                  "status": ReaderStatus.ACTIVE.value, "source": SOURCE,
                  "timezone": r.timezone, "confirmed_at": now, "created_at": now,
                  "updated_at": now} for r in new]).all()
            added = list(zip(ids, new, strict=True))
            db.session.execute(insert(ReaderTopic), [
                {"reader_id": reader_id, "topic_id": topic_id, "position": position}
                for reader_id, row in added
                for position, topic_id in enumerate(row.topic_ids, start=1)])
            db.session.execute(insert(ConsentEvent), _events(added, job, slugs, now))
            counts.added = len(added)
        if pending:
            db.session.execute(
                update(Reader).where(Reader.id.in_([r for r, _ in pending]))
                .values(status=ReaderStatus.ACTIVE.value, confirmed_at=now,
                        unsubscribed_at=None, updated_at=now)
                .execution_options(synchronize_session=False))
            _add_topics(pending, slugs, now, job)
            db.session.execute(insert(ConsentEvent), _events(pending, job, slugs, now))
        changed = _add_topics(active, slugs, now, job) if active else set()
        counts.updated = len(pending) + len(changed)
        counts.unchanged = len(active) - len(changed)
    if skipped:
        db.session.execute(insert(ImportProblem), [
            {"job_id": job.id, "line": line, "value": value[:120], "reason": reason[:200]}
            for line, value, reason in skipped])
    counts.skipped = len(skipped)
    return counts
