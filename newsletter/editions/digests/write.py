"""The writes of a digest run: one edition per shared digest, found or created by its
idempotency key, with each reader's schedule state moved by compare-and-set and a delivery
queued for each reader moved — one transaction per edition. Queueing is the delivery
engine's: the caller hands in its function (``delivery.fanout.queue_readers``), so editions
never import delivery."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date, datetime
from typing import Protocol

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import IntegrityError

from newsletter.billing import entitlements
from newsletter.db import UTCDateTime, db
from newsletter.editions.digests.due import Due
from newsletter.editions.digests.selection import Sections, TopicInfo, chunks, digest_hash, since
from newsletter.editions.models import Edition, EditionKind, EditionStatus, EditionVariant
from newsletter.editions.render import edition_context
from newsletter.editions.service import HTML, TEXT, add_variants, tag_topics
from newsletter.subscribers.models import Reader


class QueueReaders(Protocol):
    """Queue the edition for these readers, uncommitted; return how many were added."""

    def __call__(self, edition_id: int, reader_ids: list[int], *, html_variant: int,
                 text_variant: int, now: datetime) -> int: ...


# -- name: digest-mark-handled
# Contract: the readers' digest for that local date is handled without an email (nothing
# new, or skipped as too late). The content covered stays where that digest would have
# started, so what they did not get waits for their next digest. Compare-and-set: a row
# changed since it was read is left for the next run.
def mark_handled(items: list[Due]) -> int:
    done = 0
    for (local_date, old_on, old_until, start), members in by_row_state(items).items():
        for chunk in chunks([m.reader_id for m in members]):
            result = db.session.execute(
                update(Reader).where(Reader.id.in_(chunk), *unchanged(old_on, old_until))
                .values(last_digest_on=local_date if old_on is None
                        else max(old_on, local_date), digest_covered_until=start)
                .execution_options(synchronize_session=False))
            done += result.rowcount or 0
    db.session.commit()
    return done


def by_row_state(items: list[Due]) -> dict[tuple, list[Due]]:
    """Readers by (local date, row as read, start of their content): one statement each."""
    grouped: dict[tuple, list[Due]] = defaultdict(list)
    for item in items:
        grouped[(item.local_date, item.old_on, item.old_until, since(item))].append(item)
    return grouped


def unchanged(old_on: date | None, old_until: datetime | None):
    return (Reader.last_digest_on.is_not_distinct_from(old_on),
            Reader.digest_covered_until.is_not_distinct_from(old_until))


def write_group(mail, members: list[Due], *, queue: QueueReaders, prefix: str,
                slot: datetime, local_date: date, frequency: str, sections: Sections,
                topics: dict[int, TopicInfo], syntheses: dict[int, dict], now: datetime,
                covered_until: datetime, open_until: datetime) -> tuple[int | None, int]:
    """One edition for readers who share a digest; returns (edition id, deliveries queued).

    One transaction: find or create the edition (unique idempotency key), hold an existing
    one open, move each reader's schedule state by compare-and-set, queue a delivery for
    each reader moved. A worker that loses the race for the key retries and finds the
    winner's edition; readers the winner took are no longer unchanged, so they are not
    queued twice.
    """
    sections_hash = digest_hash(sections)
    key = f"{prefix}:{local_date.isoformat()}:{slot:%Y%m%dT%H%MZ}:{frequency}:{sections_hash}"
    slug = (f"{local_date.isoformat()}-{frequency}-{prefix}-"
            f"{hashlib.sha256(key.encode()).hexdigest()[:12]}")
    content = digest_content(sections, topics, syntheses, frequency, local_date)
    rendered = None
    for attempt in range(2):
        try:
            edition = db.session.scalar(select(Edition).where(Edition.idempotency_key == key))
            if edition is None:
                if rendered is None:
                    rendered = render_digest(mail, content, slug, sections, topics, syntheses)
                edition = Edition(
                    kind=EditionKind.DIGEST.value, subject=content["subject"],
                    preheader=content["preheader"], status=EditionStatus.SENDING.value,
                    content={k: v for k, v in content.items()
                             if k not in ("subject", "preheader")},
                    audience={"topics": [topics[t].slug for t, _ in sections],
                              "tier": entitlements.TIER_ALL},
                    tracking=True, send_at=slot, slot_at=slot, open_until=open_until,
                    idempotency_key=key, slug=slug, started_at=now)
                db.session.add(edition)
                db.session.flush()
                tag_topics(edition.id, edition.audience["topics"])
                variants = add_variants(edition, rendered, mail.config)
                status = edition.status
            else:
                status = hold_open(edition.id, open_until)
                variants = {v.key: v for v in db.session.scalars(
                    select(EditionVariant).where(EditionVariant.edition_id == edition.id))}
            if status in (EditionStatus.CANCELLED.value, EditionStatus.FAILED.value):
                db.session.rollback()
                mark_handled(members)  # an operator stopped this digest: no email
                return None, 0
            moved = take_readers(members, covered_until=covered_until)
            if not moved:
                db.session.rollback()  # another worker took them; leave no empty edition
                return None, 0
            queued = queue(edition.id, moved, html_variant=variants[HTML].id,
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


def hold_open(edition_id: int, until: datetime) -> str:
    statement = text(_HOLD_OPEN).bindparams(bindparam("until", type_=UTCDateTime()))
    return db.session.execute(statement, {"id": edition_id, "until": until}).scalar_one()


# -- name: digest-take-readers
# Contract: move each reader's schedule state (handled date, content covered until) from
# the values read to the new ones; returns the ids that moved, the only ones to queue.
def take_readers(members: list[Due], *, covered_until: datetime) -> list[int]:
    moved: list[int] = []
    for (local_date, old_on, old_until, _), group in by_row_state(members).items():
        new_on = local_date if old_on is None else max(old_on, local_date)
        for chunk in chunks([m.reader_id for m in group]):
            moved += db.session.scalars(
                update(Reader).where(Reader.id.in_(chunk), *unchanged(old_on, old_until))
                .values(last_digest_on=new_on, digest_covered_until=covered_until)
                .returning(Reader.id).execution_options(synchronize_session=False))
    return sorted(moved)


# Inbox lists show about the first 50 characters of a subject (fewer on phones).
SUBJECT_LENGTH = 50


def digest_subject(titles: list[str]) -> str:
    """The first title, then how many more, within ``SUBJECT_LENGTH`` characters: a title
    too long for that is cut at a word ("…"), so the count is always seen."""
    more = f" (+{len(titles) - 1} more)" if len(titles) > 1 else ""
    title = " ".join(titles[0].split())
    room = SUBJECT_LENGTH - len(more)
    if len(title) > room:
        cut = title[:room - 1]
        cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
        title = cut.rstrip(" ,;:.-\u2013\u2014") + "…"
    return title + more


def digest_content(sections: Sections, topics, syntheses, frequency: str, local_date: date) -> dict:
    titles = [syntheses[i]["title"] for _, ids in sections for i in ids]
    count = len(titles)
    subject = digest_subject(titles)
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


def render_digest(mail, content: dict, slug: str, sections: Sections, topics, syntheses):
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
