"""Finding readers for the admin area: by part of the address, status and topic, newest
first, a page at a time, and how many readers each status has.

The same :class:`ReaderFilter` drives the list and the CSV export, so an export holds
exactly the readers the search showed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select

from newsletter.content.models import Topic
from newsletter.db import db
from newsletter.errors import Invalid
from newsletter.subscribers.models import Reader, ReaderStatus, ReaderTopic, Suppression

PAGE = 25
MAX_QUERY = 200
STATUSES = tuple(s.value for s in ReaderStatus)


class BadFilter(Invalid, ValueError):
    """A filter names a status or topic that does not exist; the message says which."""


@dataclass(frozen=True)
class ReaderFilter:
    """What the admin searched for: ``query`` is part of an address (any case), ``status`` a
    :class:`ReaderStatus` value, ``topic`` a topic the reader follows; empty means any."""

    query: str = ""
    status: str = ""
    topic: Topic | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.query or self.status or self.topic)


def make_filter(query: str = "", status: str = "", topic_slug: str = "") -> ReaderFilter:
    """A checked filter; raises :class:`BadFilter` for an unknown status or topic. The query
    is cut to :data:`MAX_QUERY` characters and stripped."""
    if status and status not in STATUSES:
        raise BadFilter(f"The status is one of {', '.join(STATUSES)}.")
    topic = None
    if topic_slug:
        if not topic_slug.isprintable():  # a NUL, which PostgreSQL refuses, or worse
            raise BadFilter("There is no such topic.")
        topic = db.session.scalar(select(Topic).where(Topic.slug == topic_slug[:80]))
        if topic is None:
            raise BadFilter("There is no such topic.")
    # PostgreSQL refuses a NUL inside text, and no address holds one
    query = (query or "")[:MAX_QUERY].replace("\x00", "").strip()
    return ReaderFilter(query=query, status=status, topic=topic)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions(found: ReaderFilter) -> list[ColumnElement[bool]]:
    """The filter as SQL conditions on ``readers``."""
    where: list[ColumnElement[bool]] = []
    if found.query:
        where.append(func.lower(Reader.email).like(_like(found.query), escape="\\"))
    if found.status:
        where.append(Reader.status == found.status)
    if found.topic is not None:
        where.append(Reader.id.in_(select(ReaderTopic.reader_id)
                                   .where(ReaderTopic.topic_id == found.topic.id)))
    return where


@dataclass(frozen=True)
class Found:
    readers: list[Reader]
    total: int
    suppressed: frozenset[int]  # ids of the readers on this page whose address is suppressed

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE))


# -- name: search-readers
def search(found: ReaderFilter, page: int = 1) -> Found:
    """A page of :data:`PAGE` readers matching ``found``, newest first, how many match in
    all, and which of them are on the suppression list."""
    where = conditions(found)
    total = db.session.scalar(select(func.count(Reader.id)).where(*where)) or 0
    readers = list(db.session.scalars(select(Reader).where(*where).order_by(Reader.id.desc())
                                      .offset((page - 1) * PAGE).limit(PAGE)))
    hashes = {r.email_hash: r.id for r in readers if r.email_hash}
    suppressed = frozenset(hashes[h] for h in db.session.scalars(
        select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes)))) \
        if hashes else frozenset()
    return Found(readers, total, suppressed)


def status_counts() -> dict[str, int]:
    """How many readers have each status (every status listed, zero included)."""
    counts = dict(db.session.execute(
        select(Reader.status, func.count(Reader.id)).group_by(Reader.status)).all())
    return {status: counts.get(status, 0) for status in STATUSES}
