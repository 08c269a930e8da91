"""Syntheses as editors handle them in the admin area: find them, edit one, publish or
unpublish it.

An edit goes through the same validation as the API (``parse_synthesis``) and the same
upsert, so a synthesis edited in the browser obeys every rule one sent by the CMS does; its
external id and slug never change, so published links keep working. Two editors on the
same synthesis: the second save names the version it started from, and a compare-and-set
on ``updated_at`` refuses it when the first one saved in between (:class:`EditConflict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update

from newsletter.content.models import Synthesis, SynthesisStatus, Topic, synthesis_topics
from newsletter.content.service import upsert_synthesis
from newsletter.content.validation import MAX_MENTIONS, parse_synthesis
from newsletter.db import db, utcnow
from newsletter.errors import Conflict

PAGE = 25
EDITABLE = ("title", "summary", "context", "analysis", "watch", "byline", "source_name",
            "source_url")


class EditConflict(Conflict):
    """Someone else saved the synthesis after this editor opened it."""


@dataclass(frozen=True)
class Found:
    syntheses: list[Synthesis]
    total: int


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def search_syntheses(query: str = "", status: str | None = None, topic: Topic | None = None,
                     page: int = 1) -> Found:
    """A page of syntheses, newest first, whose title or summary contains ``query``
    (case-insensitive), optionally of one status and one topic, and how many match."""
    where = []
    if query.strip():
        pattern = _like(query.strip()[:200])
        where.append(or_(func.lower(Synthesis.title).like(pattern, escape="\\"),
                         func.lower(Synthesis.summary).like(pattern, escape="\\")))
    if status:
        where.append(Synthesis.status == status)
    if topic is not None:
        where.append(Synthesis.id.in_(select(synthesis_topics.c.synthesis_id)
                                      .where(synthesis_topics.c.topic_id == topic.id)))
    total = db.session.scalar(select(func.count(Synthesis.id)).where(*where)) or 0
    rows = db.session.scalars(select(Synthesis).where(*where)
                              .order_by(Synthesis.published_at.desc(), Synthesis.id.desc())
                              .offset((page - 1) * PAGE).limit(PAGE))
    return Found(list(rows), total)


def version_of(synthesis: Synthesis) -> str:
    """What an edit form carries to say which state of the synthesis it started from."""
    return synthesis.updated_at.isoformat() if synthesis.updated_at else ""


def form_values(synthesis: Synthesis) -> dict[str, Any]:
    """The edit form's fields for ``synthesis``."""
    values: dict[str, Any] = {name: getattr(synthesis, name) or "" for name in EDITABLE}
    values["mentions"] = "\n".join(synthesis.mentions or [])
    values["topics"] = [topic.slug for topic in synthesis.topics]
    values["version"] = version_of(synthesis)
    return values


def _payload(synthesis: Synthesis, form: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {name: str(form.get(name, "")).replace("\r\n", "\n")
                               for name in EDITABLE}
    mentions = [line.strip() for line in str(form.get("mentions", "")).splitlines()]
    payload["mentions"] = [m for m in mentions if m][:MAX_MENTIONS + 1]
    payload["topics"] = list(form.get("topics") or [])
    payload["external_id"] = synthesis.external_id
    payload["status"] = synthesis.status
    return payload


def edit_synthesis(synthesis: Synthesis, form: dict[str, Any], version: str) -> Synthesis:
    """Save an editor's changes. Raises ``InvalidSynthesis`` (nothing saved, every problem
    named) or :class:`EditConflict` (someone saved in between; nothing saved)."""
    data = parse_synthesis(_payload(synthesis, form))
    data.published_at = synthesis.published_at
    # Claim the row: only the editor who saw the latest version may write over it.
    claimed = db.session.execute(
        update(Synthesis).where(Synthesis.id == synthesis.id,
                                Synthesis.updated_at == _parse_version(version))
        .values(updated_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        db.session.rollback()
        raise EditConflict(synthesis.id)
    try:
        return upsert_synthesis(data).synthesis
    except Exception:
        db.session.rollback()
        raise


def _parse_version(version: str) -> datetime | None:
    try:
        return datetime.fromisoformat(version) if version and version.isascii() else None
    except ValueError:
        return None


def set_published(synthesis: Synthesis, published: bool) -> bool:
    """Publish or unpublish; whether anything changed. Publishing a synthesis for the first
    time lists it (digests pick it up from then on); unpublishing hides it from the site,
    feeds and future digests, and a later publish does not list it again."""
    status = (SynthesisStatus.PUBLISHED if published else SynthesisStatus.DRAFT).value
    if synthesis.status == status:
        return False
    synthesis.status = status
    if published and synthesis.listed_at is None:
        synthesis.listed_at = max(utcnow(), synthesis.published_at)
    db.session.commit()
    return True
