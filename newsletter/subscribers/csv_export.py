"""Readers as CSV, streamed: one batch of readers at a time, never the whole list in memory.

Every cell is made safe for spreadsheets: text that starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return is read as a formula by Excel, LibreOffice and Google Sheets
(``=cmd|' /C calc'!A0``), so it gets a leading apostrophe, which they show as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from sqlalchemy import select

from newsletter.content.models import Topic
from newsletter.db import db
from newsletter.subscribers.models import Reader, ReaderTopic
from newsletter.subscribers.search import ReaderFilter, conditions

HEADER = ("email", "status", "topics", "timezone", "joined")
BATCH = 1000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> str:
    """``cell`` as text a spreadsheet will not run: a leading apostrophe before a formula."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """Each row as one CSV line (CRLF-terminated), every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _reader_rows(found: ReaderFilter) -> Iterator[tuple]:
    where = conditions(found)
    before: int | None = None
    while True:
        # Keyset pages by id, newest first: each batch is one short query, so no cursor
        # stays open while the client reads slowly.
        query = select(Reader.id, Reader.email, Reader.status, Reader.timezone,
                       Reader.created_at).where(*where)
        if before is not None:
            query = query.where(Reader.id < before)
        batch = db.session.execute(query.order_by(Reader.id.desc()).limit(BATCH)).all()
        if not batch:
            return
        topics: dict[int, list[str]] = {}
        for reader_id, slug in db.session.execute(
                select(ReaderTopic.reader_id, Topic.slug)
                .join(Topic, Topic.id == ReaderTopic.topic_id)
                .where(ReaderTopic.reader_id.in_([row.id for row in batch]))
                .order_by(ReaderTopic.reader_id, ReaderTopic.position)):
            topics.setdefault(reader_id, []).append(slug)
        for row in batch:
            yield (row.email or "", row.status, " ".join(topics.get(row.id, [])),
                   row.timezone, row.created_at.isoformat(timespec="seconds"))
        before = batch[-1].id
        db.session.expire_all()


def export_readers(found: ReaderFilter) -> Iterator[str]:
    """The CSV of the readers ``found`` names, newest first: a header line, then one line
    per reader (email, status, topic slugs separated by spaces, timezone, when they joined
    in UTC), produced a batch at a time."""
    yield from csv_lines([HEADER])
    yield from csv_lines(_reader_rows(found))
