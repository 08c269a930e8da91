"""Fan-out: one delivery row per (edition, reader), made by one set-based statement."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, bindparam, text

from newsletter.db import UTCDateTime, db

# One queued delivery row per selected reader ``r``; the variant follows the reader's
# format. Readers who may get list mail: active, with an address, not suppressed.
_INSERT_DELIVERIES = """
INSERT INTO deliveries (edition_id, reader_id, variant_id, email, status, attempts,
                        next_attempt_at, created_at, opens, machine_opens, clicks)
SELECT :edition_id, r.id,
       CASE WHEN r.format = 'text' THEN :text_variant ELSE :html_variant END,
       r.email, 'queued', 0, :now, :now, 0, 0, 0
FROM readers r
WHERE r.status = 'active'
  AND r.email IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = r.email_hash)
"""

# -- name: fan-out-edition
# Contract: inserts one queued delivery for every reader who is active, not paused, not
# suppressed (by keyed hash), follows one of the audience topics (when any are given) and
# is entitled to the tier; the variant follows the reader's format. Unique on
# (edition_id, reader_id), so running it again adds nothing. The audience is frozen here:
# readers who subscribe later are not added; readers who leave are skipped at claim time.
_FAN_OUT = _INSERT_DELIVERIES + """
  AND NOT (r.frequency = 'paused' AND (r.paused_until IS NULL OR r.paused_until > :today))
  AND (:paid_only = 0 OR r.plan = 'paid')
  {topic_filter}
ON CONFLICT (edition_id, reader_id) DO NOTHING
"""

_TOPIC_FILTER = """
  AND EXISTS (SELECT 1 FROM reader_topics rt
              WHERE rt.reader_id = r.id AND rt.topic_id IN ({ids}))
"""


def fan_out(edition_id: int, *, html_variant: int, text_variant: int, topic_ids: list[int],
            paid_only: bool, now: datetime, today: date) -> int:
    """Queue the edition for its audience; return how many deliveries were added."""
    topic_filter = ""
    params = {"edition_id": edition_id, "html_variant": html_variant,
              "text_variant": text_variant, "now": now, "today": today,
              "paid_only": 1 if paid_only else 0}
    if topic_ids:
        names = [f"t{i}" for i in range(len(topic_ids))]
        topic_filter = _TOPIC_FILTER.format(ids=", ".join(f":{n}" for n in names))
        params.update(dict(zip(names, topic_ids, strict=True)))
    statement = text(_FAN_OUT.format(topic_filter=topic_filter)).bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("today", type_=Date()))
    result = db.session.execute(statement, params)
    return result.rowcount or 0


# -- name: queue-readers
# Contract: one queued delivery of the edition for each of the given readers who may still
# get list mail (active, with an address, not suppressed); the variant follows the reader's
# format. Unique on (edition_id, reader_id): running it again adds nothing.
_QUEUE_READERS = _INSERT_DELIVERIES + """
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
