"""The one writer of the suppression list: every path that suppresses an address — an
unsubscribe, an erasure, a complaint, a hard bounce at the relay or in a report, enough
soft bounces, an admin — adds it here, by keyed hash, with its reason.

One statement for one address or many, on the ORM's connection or a worker's own, so the
delivery engine's set-based outcome writer and the reader use cases write the same rows the
same way. Lifting a suppression is ``service.lift_suppression`` (only a confirmed
subscription does it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from newsletter.db import UTCDateTime
from newsletter.subscribers.models import SuppressionReason

# -- name: suppress
# Contract: each keyed hash goes on the list with the reason, once; an address there
# already keeps its first reason. Replaying adds nothing.
_SUPPRESS = text("""
INSERT INTO suppressions (email_hash, reason, created_at)
VALUES (:email_hash, :reason, :now)
ON CONFLICT (email_hash) DO NOTHING
""").bindparams(bindparam("now", type_=UTCDateTime()))


def suppress_hashes(conn: Connection, digests: Iterable[str | None],
                    reason: SuppressionReason, now: datetime) -> None:
    """Suppress every keyed hash in ``digests`` (None and repeats skipped), in the
    connection's transaction (not committed)."""
    rows = [{"email_hash": digest, "reason": reason.value, "now": now}
            for digest in dict.fromkeys(d for d in digests if d)]
    if rows:
        conn.execute(_SUPPRESS, rows)
