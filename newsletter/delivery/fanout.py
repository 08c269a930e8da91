"""Fan-out: one delivery row per (edition, reader), made by one set-based statement."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, bindparam, text

from newsletter.db import UTCDateTime, db
from newsletter.editions import audience

# One queued delivery row per selected reader ``r``; the variant follows the reader's
# format. Which readers: the WHERE clause each statement adds (editions.audience).
_INSERT_DELIVERIES = """
INSERT INTO deliveries (edition_id, reader_id, variant_id, email, status, attempts,
                        next_attempt_at, created_at, opens, machine_opens, clicks)
SELECT :edition_id, r.id,
       CASE WHEN r.format = 'text' THEN :text_variant ELSE :html_variant END,
       r.email, 'queued', 0, :now, :now, 0, 0, 0
FROM readers r
WHERE {who}
"""

# -- name: fan-out-edition
# Contract: inserts one queued delivery for every reader who is active, gets the edition's
# stream (digests or special editions), is not paused, not suppressed (by keyed hash),
# follows one of the audience topics (when any are given) and, for a premium edition, pays;
# the variant follows the reader's format. Unique on
# (edition_id, reader_id), so running it again adds nothing. The audience is frozen here:
# readers who subscribe later are not added; readers who leave are skipped at claim time.
_FAN_OUT = _INSERT_DELIVERIES + """
ON CONFLICT (edition_id, reader_id) DO NOTHING
"""


def fan_out(edition_id: int, *, kind: str, html_variant: int, text_variant: int,
            topic_ids: list[int], paid_only: bool, now: datetime, today: date) -> int:
    """Queue the edition (of ``kind``: its stream) for its audience; return how many
    deliveries were added."""
    params = {"edition_id": edition_id, "kind": kind, "html_variant": html_variant,
              "text_variant": text_variant, "now": now, "today": today,
              "paid_only": 1 if paid_only else 0}
    names = [f"t{i}" for i in range(len(topic_ids))]
    params.update(dict(zip(names, topic_ids, strict=True)))
    statement = text(_FAN_OUT.format(who=audience.receives_edition("r", names))).bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("today", type_=Date()))
    result = db.session.execute(statement, params)
    return result.rowcount or 0


# -- name: queue-readers
# Contract: one queued delivery of the edition for each of the given readers who may still
# get list mail (active, with an address, not suppressed; the caller chose them for the
# edition's stream); the variant follows the reader's
# format. Unique on (edition_id, reader_id): running it again adds nothing.
_QUEUE_READERS = _INSERT_DELIVERIES.format(who=audience.may_get_list_mail("r")) + """
  AND r.id IN :ids
ON CONFLICT (edition_id, reader_id) DO NOTHING
"""


def queue_readers(edition_id: int, reader_ids: list[int], *, html_variant: int,
                  text_variant: int, now: datetime, chunk: int = 2000) -> int:
    """Queue the edition for these readers (uncommitted); return how many were added."""
    statement = text(_QUEUE_READERS).bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("ids", expanding=True))
    added = 0
    for start in range(0, len(reader_ids), chunk):
        result = db.session.execute(statement, {
            "edition_id": edition_id, "ids": reader_ids[start:start + chunk],
            "html_variant": html_variant, "text_variant": text_variant, "now": now})
        added += result.rowcount or 0
    return added


# -- name: count-audience
# Contract: how many readers fan-out would queue now, by the very same rule.
_COUNT_AUDIENCE = "SELECT count(*) FROM readers r WHERE {who}"


def count_audience(*, kind: str, topic_ids: list[int], paid_only: bool, today: date,
                   now: datetime) -> int:
    """How many readers :func:`fan_out` would queue if the edition started ``now``."""
    params = {"kind": kind, "today": today, "now": now, "paid_only": 1 if paid_only else 0}
    names = [f"t{i}" for i in range(len(topic_ids))]
    params.update(dict(zip(names, topic_ids, strict=True)))
    statement = text(_COUNT_AUDIENCE.format(who=audience.receives_edition("r", names)))
    return db.session.execute(statement.bindparams(bindparam("today", type_=Date()),
                                                   bindparam("now", type_=UTCDateTime())),
                              params).scalar() or 0
