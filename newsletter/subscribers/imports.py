"""CSV imports of readers, as jobs any worker can run (the file is kept in the row).

Contract:
* ``create`` stores the file (read and checked first: encoding, delimiter, columns) as an
  ``uploaded`` job; ``configure`` maps its columns, records where the people agreed (the
  consent source, required) and the topics everyone gets, and queues it.
* ``claim`` moves a job from ``queued`` (or ``running`` whose lease ran out: its worker died)
  to ``running`` under a new claim, in one compare-and-set statement: two workers never
  run the same import.
* ``run`` handles the lines in chunks of :data:`CHUNK`. Each chunk's readers, topics,
  consent events, skipped lines and the job's checkpoint and counts are one transaction,
  written only while the claim is still the caller's; a worker that dies mid-way leaves
  the checkpoint at the last whole chunk, and the next one goes on from there.
* Rules: the first line with an address wins (later ones: "duplicate of line N"); an
  address on the suppression list, or of a reader who unsubscribed, is skipped (only the
  person can come back); a known active reader gains the file's topics (counted
  ``updated``, or ``unchanged`` when they had them all); a pending one becomes active;
  everyone else is added, active, with a ``subscribe`` and a ``confirm`` consent event that
  name the consent source, the import and the admin. Every skipped line is kept with its
  number and reason.
* Addresses are checked as the form checks them, without the DNS lookup (ten thousand of
  those would take minutes).
* When done, the file is deleted; the counts and the skipped lines stay.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.content.models import Topic
from newsletter.db import db, utcnow
from newsletter.errors import Conflict, Invalid
from newsletter.subscribers.csv_export import csv_lines
from newsletter.subscribers.import_files import (
    MAX_BYTES,
    ROLES,
    Layout,
    UnreadableFile,
    decode,
    read_layout,
)
from newsletter.subscribers.import_rows import Counts, apply_chunk, plan_lines, printable
from newsletter.subscribers.models import ImportJob, ImportProblem, ImportStatus
from newsletter.subscribers.service import ReaderServices
from newsletter.validation import FieldError, InvalidInput, single_line, whole_number

log = logging.getLogger(__name__)

SMALL = 2_000            # lines a request may import itself; bigger files go to the worker
CHUNK = 1_000
LEASE = timedelta(minutes=2)

__all__ = ["MAX_BYTES", "SMALL", "FileTooLarge", "ImportStateError", "UnreadableFile",
           "claim", "claim_next", "configure", "create", "discard", "layout_of",
           "problem_csv", "problems", "progress", "prune_abandoned", "recent", "run", "run_due",
           "run_now"]


class FileTooLarge(Invalid, ValueError):
    """The file is over :data:`MAX_BYTES`."""


class ImportStateError(Conflict):
    """The job is not in the state the action needs (it started, or is gone)."""


# -- upload and mapping ---------------------------------------------------------------------

def create(data: bytes, filename: str, encoding: str, admin_id: int | None,
           admin_email: str) -> ImportJob:
    """Store an uploaded file as an ``uploaded`` job, with the layout guessed from it.
    Raises :class:`FileTooLarge` or :class:`UnreadableFile` (nothing stored)."""
    if len(data) > MAX_BYTES:
        raise FileTooLarge(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    layout = read_layout(decode(data, encoding))
    job = ImportJob(admin_id=admin_id, admin_email=admin_email[:320],
                    filename=printable(filename or "upload.csv", 200), data=data,
                    size=len(data), encoding=encoding, delimiter=layout.delimiter,
                    has_header=layout.has_header, total_rows=layout.rows,
                    mapping={**layout.guess, "columns": len(layout.columns)})
    db.session.add(job)
    db.session.commit()
    return job


def layout_of(job: ImportJob, has_header: bool | None = None) -> Layout:
    """The stored file's layout (for the mapping form); ``has_header`` overrides the guess."""
    return read_layout(decode(job.data or b"", job.encoding), job.delimiter,
                       job.has_header if has_header is None else has_header)


def _column(value: str, name: str, width: int, errors: list[FieldError]) -> int | None:
    if value in ("", None):
        return None
    index = whole_number(value, 0, width - 1) if width else None
    if index is None:
        errors.append(FieldError(name, "is not one of the file's columns"))
    return index


def configure(services: ReaderServices, job_id: int, *, email_column: str,
              topics_column: str = "", timezone_column: str = "", has_header: bool = True,
              topics: list[str] | None = None, consent_source: str = "") -> ImportJob:
    """Map the columns, record the consent source and the topics for everyone, and queue
    the job. Raises ``InvalidInput`` naming each bad field (nothing changed), or
    :class:`ImportStateError` when the job is not waiting for its mapping."""
    job = db.session.get(ImportJob, job_id)
    if job is None or job.status != ImportStatus.UPLOADED.value:
        raise ImportStateError("this import was started already, or is gone")
    layout = layout_of(job, has_header)
    width = len(layout.columns)
    errors: list[FieldError] = []
    mapping: dict[str, int | None] = {
        "email": _column(email_column, "email_column", width, errors),
        "topics": _column(topics_column, "topics_column", width, errors),
        "timezone": _column(timezone_column, "timezone_column", width, errors),
    }
    if mapping["email"] is None and not any(e.field == "email_column" for e in errors):
        errors.append(FieldError("email_column", "Choose the column with the addresses."))
    chosen = [mapping[role] for role in ROLES if mapping[role] is not None]
    if len(chosen) != len(set(chosen)):
        errors.append(FieldError("email_column", "Give each column one meaning."))
    source = single_line("consent_source", consent_source or "", 300, errors)
    if source is not None and not source:
        errors.append(FieldError("consent_source", "Say where and how these people agreed "
                                 "to get the newsletter, e.g. “signup sheet at the 2026 "
                                 "conference”: it is kept as their consent record."))
    offered = {t.slug: t for t in services.offered_topics()}
    slugs = list(dict.fromkeys(topics or []))
    for slug in slugs:
        if slug not in offered:
            errors.append(FieldError("topics", f"unknown topic {slug[:60]!r}"))
    if not slugs and mapping["topics"] is None:
        errors.append(FieldError("topics", "Choose the topics everyone gets, or the column "
                                 "that holds each reader's topics."))
    if errors:
        raise InvalidInput(errors)
    done = db.session.execute(
        update(ImportJob).where(ImportJob.id == job_id,
                                ImportJob.status == ImportStatus.UPLOADED.value)
        .values(status=ImportStatus.QUEUED.value, has_header=has_header,
                total_rows=layout.rows, mapping={**mapping, "columns": width},
                topics=slugs, consent_source=source)
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        db.session.rollback()
        raise ImportStateError("this import was started already")
    db.session.commit()
    return db.session.get(ImportJob, job_id)


def discard(job_id: int) -> bool:
    """Delete a job that was uploaded but never started; True if it was deleted."""
    gone = db.session.execute(delete(ImportJob).where(
        ImportJob.id == job_id, ImportJob.status == ImportStatus.UPLOADED.value)).rowcount
    db.session.commit()
    return gone == 1


ABANDONED_AFTER = timedelta(days=1)


def prune_abandoned(now: datetime, older_than: timedelta = ABANDONED_AFTER) -> int:
    """Delete files uploaded more than ``older_than`` ago and never started (they hold
    addresses nobody asked us to keep); how many were deleted."""
    gone = db.session.execute(delete(ImportJob).where(
        ImportJob.status == ImportStatus.UPLOADED.value,
        ImportJob.created_at < now - older_than)).rowcount
    db.session.commit()
    return gone


# -- claiming -------------------------------------------------------------------------------

def _claimable(now: datetime):
    return or_(ImportJob.status == ImportStatus.QUEUED.value,
               and_(ImportJob.status == ImportStatus.RUNNING.value,
                    ImportJob.lease_until < now))


# -- name: claim-reader-import
def claim(job_id: int, now: datetime) -> str | None:
    """Take the job for this worker: its new claim token, or None when another worker has
    it (or it is not waiting). One compare-and-set statement."""
    token = secrets.token_hex(16)
    result = db.session.execute(
        update(ImportJob).where(ImportJob.id == job_id, _claimable(now))
        .values(status=ImportStatus.RUNNING.value, claim=token, lease_until=now + LEASE,
                started_at=func.coalesce(ImportJob.started_at, now))
        .execution_options(synchronize_session=False))
    db.session.commit()
    return token if result.rowcount == 1 else None


def claim_next(now: datetime) -> tuple[int, str] | None:
    """Claim the oldest waiting job (or one whose worker died): (id, token), or None."""
    for job_id in db.session.scalars(select(ImportJob.id).where(_claimable(now))
                                     .order_by(ImportJob.id).limit(5)).all():
        token = claim(job_id, now)
        if token:
            return job_id, token
    return None


# -- running ------------------------------------------------------------------------------

def _advance(job_id: int, token: str, rows_done: int, counts: Counts, now: datetime) -> bool:
    result = db.session.execute(
        update(ImportJob).where(ImportJob.id == job_id, ImportJob.claim == token)
        .values(rows_done=rows_done, lease_until=now + LEASE,
                added=ImportJob.added + counts.added,
                updated=ImportJob.updated + counts.updated,
                unchanged=ImportJob.unchanged + counts.unchanged,
                skipped=ImportJob.skipped + counts.skipped)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def _finish(job_id: int, token: str, now: datetime, error: str | None = None) -> bool:
    result = db.session.execute(
        update(ImportJob).where(ImportJob.id == job_id, ImportJob.claim == token)
        .values(status=ImportStatus.FAILED.value if error else ImportStatus.DONE.value,
                error=error[:500] if error else None, data=None, claim=None,
                lease_until=None, finished_at=now)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


# -- name: run-reader-import
def run(services: ReaderServices, job_id: int, token: str,
        now: Callable[[], datetime] = utcnow, chunk: int = CHUNK) -> bool:
    """Import the job's lines from its checkpoint to the end, a chunk per transaction, while
    ``token`` is its claim. True when it finished; False when the claim was lost (another
    worker took over after the lease ran out) — nothing of the unfinished chunk is kept."""
    job = db.session.get(ImportJob, job_id)
    if job is None or job.claim != token:
        return False
    try:
        text = decode(job.data or b"", job.encoding)
    except UnreadableFile as exc:
        return _finish(job_id, token, now(), str(exc))
    topics = list(db.session.scalars(select(Topic)))
    slugs = {t.id: t.slug for t in topics}
    offered = {t.id for t in services.offered_topics()}
    plan = plan_lines(text, job, [t for t in topics if t.id in offered])
    offset = job.rows_done
    while offset < len(plan):
        part = plan[offset:offset + chunk]
        for attempt in range(3):
            try:
                counts = apply_chunk(services, job, part, slugs, now())
                if not _advance(job_id, token, offset + len(part), counts, now()):
                    db.session.rollback()
                    return False
                db.session.commit()
                break
            except IntegrityError:
                # Someone subscribed one of these addresses meanwhile: look again.
                db.session.rollback()
                if attempt == 2:
                    raise
        offset += len(part)
    return _finish(job_id, token, now())


def _run_claimed(services: ReaderServices, job_id: int, token: str,
                 now: Callable[[], datetime]) -> bool:
    try:
        return run(services, job_id, token, now)
    except Exception as exc:
        # A bug, or the database went away: the job says so instead of being retried
        # forever by every worker in turn.
        log.exception("reader import %d failed", job_id)
        db.session.rollback()
        _finish(job_id, token, now(), f"stopped by an error ({type(exc).__name__}); "
                "the lines before it were imported")
        return False


def run_now(services: ReaderServices, job_id: int,
            now: Callable[[], datetime] = utcnow) -> bool:
    """Claim and run one queued job here (a small file, in the request): True when this
    call finished it; False when a worker had it already or it failed."""
    token = claim(job_id, now())
    return bool(token) and _run_claimed(services, job_id, token, now)


def run_due(services: ReaderServices, now: Callable[[], datetime] = utcnow,
            limit: int = 10) -> int:
    """Claim and run waiting imports (at most ``limit``) one after another; how many ran.
    An import that fails with an unexpected error is marked failed, with the error."""
    ran = 0
    while ran < limit:
        claimed = claim_next(now())
        if claimed is None:
            break
        _run_claimed(services, *claimed, now)
        ran += 1
    return ran


# -- the report -----------------------------------------------------------------------------

def progress(job: ImportJob) -> dict:
    """The job's state as the progress endpoint gives it."""
    total = job.total_rows or 0
    return {"status": job.status, "total": total, "done": job.rows_done,
            "percent": 100 if job.status == ImportStatus.DONE.value
            else (job.rows_done * 100 // total if total else 0),
            "added": job.added, "updated": job.updated, "unchanged": job.unchanged,
            "skipped": job.skipped, "error": job.error}


def problems(job_id: int, limit: int = 500) -> list[ImportProblem]:
    """The first ``limit`` skipped lines, in line order."""
    return list(db.session.scalars(select(ImportProblem).where(ImportProblem.job_id == job_id)
                                   .order_by(ImportProblem.line, ImportProblem.id)
                                   .limit(limit)))


def problem_csv(job_id: int, batch: int = 2_000) -> Iterator[str]:
    """Every skipped line as CSV (line, value, reason), cells made safe for spreadsheets,
    a batch at a time."""
    yield from csv_lines([("line", "value", "reason")])
    after = (0, 0)
    while True:
        rows = db.session.execute(
            select(ImportProblem.line, ImportProblem.id, ImportProblem.value,
                   ImportProblem.reason)
            .where(ImportProblem.job_id == job_id,
                   or_(ImportProblem.line > after[0],
                       and_(ImportProblem.line == after[0], ImportProblem.id > after[1])))
            .order_by(ImportProblem.line, ImportProblem.id).limit(batch)).all()
        if not rows:
            return
        yield from csv_lines((line, value, reason) for line, _, value, reason in rows)
        after = (rows[-1].line, rows[-1].id)


def recent(limit: int = 10) -> list[ImportJob]:
    return list(db.session.scalars(select(ImportJob).order_by(ImportJob.id.desc())
                                   .limit(limit)))
