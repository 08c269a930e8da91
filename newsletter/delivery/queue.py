"""The delivery queue in the database: claim under a lease, record outcomes, finish editions.

Every function takes a SQLAlchemy ``Connection`` and commits nothing itself unless it says
so; workers call them from their own threads with their own connections.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, text

from newsletter.db import UTCDateTime
from newsletter.editions import audience
from newsletter.subscribers.models import SuppressionReason
from newsletter.subscribers.suppression import suppress_hashes


@dataclass(frozen=True)
class Claimed:
    id: int
    edition_id: int
    reader_id: int
    variant_id: int
    email: str | None
    attempts: int
    created_at: datetime
    claim_id: str
    eligible: bool
    first_name: str | None = None   # for the greeting; read with the claim


def _dt(name: str):
    return bindparam(name, type_=UTCDateTime())


_TIMES = ("now", "until", "next")


@functools.lru_cache(maxsize=64)
def _sql(statement: str):
    """``text()`` with the time parameters it uses typed as UTC datetimes (built once)."""
    return text(statement).bindparams(*(_dt(name) for name in _TIMES
                                        if f":{name}" in statement))


# -- name: claim-deliveries
# Contract: moves up to :n deliveries of editions that are sending to 'claimed' under this
# claim's id and lease, and returns them. {due} selects, in this order of the calls: rows
# claimed under an expired lease (a dead worker's, the oldest work there is), then due
# retries (deferred, oldest next_attempt_at first), then due fresh deliveries (queued,
# oldest first) — so neither a retry nor a dead worker's mail waits behind fresh mail. The
# last two walk the index (status, next_attempt_at) in order and stop after :n rows (no
# sort of every due row). On PostgreSQL the inner SELECT locks with SKIP LOCKED, so
# concurrent workers never claim the same row and never wait for each other; on SQLite the
# UPDATE statement holds the write lock.
_CLAIM = """
UPDATE deliveries SET status = 'claimed', lease_owner = :claim_id, lease_until = :until
WHERE id IN (
  SELECT d.id FROM deliveries d JOIN editions e ON e.id = d.edition_id
  WHERE e.status = 'sending' AND {due}
    {edition_filter}
  {order}
  LIMIT :n
  {lock}
)
RETURNING id, edition_id, reader_id, variant_id, email, attempts, created_at
"""
_CLAIM_PHASES = (
    ("d.status = 'claimed' AND d.lease_until < :now", ""),
    ("d.status = 'deferred' AND d.next_attempt_at <= :now", "ORDER BY d.next_attempt_at"),
    ("d.status = 'queued' AND d.next_attempt_at <= :now", "ORDER BY d.next_attempt_at"),
)


# -- name: claim-eligibility
# Contract: for the given deliveries, whether their reader may still get list mail (active
# and not suppressed) and still gets the edition's stream. Checked at claim time so an
# unsubscribe, from everything or from one stream, takes effect before the send.
# Written from the deliveries side (EXISTS per claimed row) so no database starts the join
# from every active reader (SQLite did: 2.5 s a claim at 100,000 readers).
_ELIGIBLE = (
    "SELECT d.id FROM deliveries d WHERE d.id IN :ids AND EXISTS ("  # noqa: S608 - rule is code
    " SELECT 1 FROM readers r JOIN editions e ON e.id = d.edition_id"
    " WHERE r.id = d.reader_id AND "
    + audience.may_get_list_mail("r") + " AND " + audience.gets_stream("r", "e.kind") + ")"
)


# -- name: claim-first-names
# Contract: the first name of each claimed delivery's reader who gave one (for "Hello Ada,").
_FIRST_NAMES = (
    "SELECT d.id, r.first_name FROM deliveries d JOIN readers r ON r.id = d.reader_id"
    " WHERE d.id IN :ids AND r.first_name IS NOT NULL"
)


def claim(conn: Connection, *, worker: str, limit: int, lease_seconds: int, now: datetime,
          edition_id: int | None = None) -> list[Claimed]:
    """Claim a batch; commits (the claim must be visible before any message goes out)."""
    claim_id = f"{worker}/{uuid.uuid4().hex[:12]}"
    lock = "FOR UPDATE OF d SKIP LOCKED" if conn.dialect.name == "postgresql" else ""
    edition_filter = "AND d.edition_id = :edition_id" if edition_id is not None else ""
    params = {"claim_id": claim_id, "until": now + timedelta(seconds=lease_seconds),
              "now": now, "n": limit}
    if edition_id is not None:
        params["edition_id"] = edition_id
    rows = []
    for due, order in _CLAIM_PHASES:
        statement = _sql(_CLAIM.format(lock=lock, edition_filter=edition_filter, due=due,
                                       order=order)).columns(created_at=UTCDateTime())
        rows += conn.execute(statement, {**params, "n": limit - len(rows)}).all()
        if len(rows) >= limit:
            break
    if not rows:
        conn.commit()
        return []
    ids = [row.id for row in rows]
    eligible = set(conn.execute(
        text(_ELIGIBLE).bindparams(bindparam("ids", expanding=True)), {"ids": ids}).scalars())
    names = dict(conn.execute(
        text(_FIRST_NAMES).bindparams(bindparam("ids", expanding=True)), {"ids": ids}).all())
    conn.commit()
    return [
        Claimed(id=row.id, edition_id=row.edition_id, reader_id=row.reader_id,
                variant_id=row.variant_id, email=row.email, attempts=row.attempts,
                created_at=row.created_at, claim_id=claim_id, eligible=row.id in eligible,
                first_name=names.get(row.id))
        for row in sorted(rows, key=lambda r: r.id)
    ]


@dataclass
class SendOutcome:
    """What happened to one claimed delivery; written by the outcome writer."""

    delivery_id: int
    status: str                 # sent, deferred, bounced, failed, cancelled, released
    code: int | None = None
    reply: str = ""
    relay: str = ""
    next_attempt_at: datetime | None = None
    attempted: bool = True      # False: no SMTP conversation happened (cancelled, released)
    claim_id: str = ""          # the claim the worker held; only its owner may move the row
    bounce: str | None = None   # bounced: hard_bounce or soft_bounce (mail.policy's verdict)


_SET = {
    "sent": "status = 'sent', sent_at = :now, relay_reply = :reply, attempts = attempts + 1",
    "deferred": "status = 'deferred', next_attempt_at = :next, last_error = :reply, "
                "attempts = attempts + 1",
    "bounced": "status = 'bounced', last_error = :reply, attempts = attempts + 1",
    "failed": "status = 'failed', last_error = :reply, attempts = attempts + 1",
    "cancelled": "status = 'cancelled'",
    # A retry given back keeps its place among retries (claims take those first).
    "released": "status = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, "
                "next_attempt_at = :next",
}

# -- name: bounced-addresses
# Contract: the keyed hash of the reader of each bounced delivery (:ids), and how many soft
# bounces that address had since :since (this one recorded first) — what the bounce rule
# needs to decide who is suppressed (``subscribers.suppression`` writes it).
_BOUNCED = """
SELECT d.id, r.email_hash, (
  SELECT count(*) FROM bounce_events b WHERE b.email_hash = r.email_hash
    AND b.kind = 'soft_bounce' AND b.occurred_at >= :since) AS soft
FROM deliveries d JOIN readers r ON r.id = d.reader_id
WHERE d.id IN :ids AND r.email_hash IS NOT NULL
"""
_BOUNCE_EVENT = """
INSERT INTO bounce_events (email_hash, delivery_id, kind, source, occurred_at, detail)
SELECT r.email_hash, d.id, :kind, :source, :now, :detail
FROM deliveries d JOIN readers r ON r.id = d.reader_id
WHERE d.id = :id AND r.email_hash IS NOT NULL
"""
_ATTEMPT = """
INSERT INTO delivery_attempts (delivery_id, attempted_at, outcome, code, message, relay, worker)
VALUES (:id, :now, :status, :code, :reply, :relay, :worker)
"""


@dataclass(frozen=True)
class SoftBounceRule:
    """How many soft bounces within how long suppress (``NEWSLETTER_SOFT_BOUNCE_*``)."""

    limit: int = 3
    window: timedelta = timedelta(days=30)


def write_outcomes(conn: Connection, outcomes: list[SendOutcome], *, worker: str,
                   now: datetime, soft: SoftBounceRule = SoftBounceRule()) -> list[SendOutcome]:
    """Record a group of outcomes in one transaction, commit it, return those applied.

    A row moves only while this worker's claim still holds it (``lease_owner``), so a worker
    whose lease expired cannot undo another worker's claim. ``sent`` is the exception: it is
    a fact (the relay took the message), recorded whoever holds the row, unless the row is
    already finished.
    """
    if not outcomes:
        return []
    # Locked in id order, as every statement that locks several deliveries does, so the
    # writer, lease renewal and cancelling never deadlock one another. SQLite has no row
    # locks and opens its write transaction only at the first write: take it first, so
    # the rows read below cannot change (another worker's claim) before they are written.
    ids = sorted({o.delivery_id for o in outcomes})
    if conn.dialect.name == "sqlite":
        conn.execute(text("UPDATE deliveries SET id = id WHERE id = :id"), {"id": ids[0]})
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    rows = conn.execute(text(
        "SELECT id, status, lease_owner FROM deliveries WHERE id IN :ids"  # noqa: S608
        f" ORDER BY id{lock}"
    ).bindparams(bindparam("ids", expanding=True)), {"ids": ids}).all()
    current = {row.id: (row.status, row.lease_owner) for row in rows}
    applied: list[SendOutcome] = []
    by_status: dict[str, list[dict]] = {}
    attempts = []
    for outcome in outcomes:
        status, owner = current.get(outcome.delivery_id, (None, None))
        if outcome.status == "sent":
            if status not in ("claimed", "queued", "deferred"):
                continue
        elif status != "claimed" or owner != outcome.claim_id:
            continue
        applied.append(outcome)
        params = {"id": outcome.delivery_id, "reply": outcome.reply[:500], "now": now,
                  "next": outcome.next_attempt_at or now, "code": outcome.code,
                  "relay": outcome.relay[:100], "worker": worker[:80],
                  "status": outcome.status, "bounce": outcome.bounce or "hard_bounce"}
        by_status.setdefault(outcome.status, []).append(params)
        if outcome.attempted:
            attempts.append(params)
    for status, params_list in by_status.items():
        conn.execute(_sql(
            f"UPDATE deliveries SET {_SET[status]}, lease_owner = NULL, lease_until = NULL "  # noqa: S608 - fixed fragments
            "WHERE id = :id"), params_list)
    bounced = by_status.get("bounced", [])
    for params in bounced:
        conn.execute(_sql(_BOUNCE_EVENT), {**params, "kind": params["bounce"],
                                           "source": "smtp", "detail": params["reply"]})
    if bounced:
        _suppress_bounced(conn, bounced, now, soft)
    if attempts:
        conn.execute(_sql(_ATTEMPT), attempts)
    conn.commit()
    return applied


def _suppress_bounced(conn: Connection, bounced: list[dict], now: datetime,
                      soft: SoftBounceRule) -> None:
    """A hard bounce suppresses its address at once; a soft one when the address has had
    ``soft.limit`` within ``soft.window`` (this one counted)."""
    kinds = {params["id"]: params["bounce"] for params in bounced}
    rows = conn.execute(text(_BOUNCED).bindparams(bindparam("ids", expanding=True),
                                                  _dt("since")),
                        {"ids": sorted(kinds), "since": now - soft.window}).all()
    suppress_hashes(conn, [r.email_hash for r in rows if kinds[r.id] == "hard_bounce"],
                    SuppressionReason.HARD_BOUNCE, now)
    suppress_hashes(conn, [r.email_hash for r in rows
                           if kinds[r.id] != "hard_bounce" and r.soft >= soft.limit],
                    SuppressionReason.SOFT_BOUNCES, now)


# -- name: renew-leases
# Contract: a worker still holding claimed deliveries in memory extends their lease, so no
# other worker (nor itself) claims them again while they wait for a connection. Rows are
# locked in id order first (PostgreSQL), like the outcome writer's, so the two never
# deadlock.
_RENEW = """
UPDATE deliveries SET lease_until = :until
WHERE id IN (SELECT id FROM deliveries WHERE status = 'claimed' AND lease_owner IN :claims
             ORDER BY id{lock})
"""


def renew_leases(conn: Connection, claim_ids: list[str], *, lease_seconds: int,
                 now: datetime) -> int:
    """Extend the leases of these claims to ``now + lease_seconds``; commits."""
    if not claim_ids:
        return 0
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    result = conn.execute(_sql(_RENEW.format(lock=lock)).bindparams(
        bindparam("claims", expanding=True)),
        {"claims": claim_ids, "until": now + timedelta(seconds=lease_seconds)})
    conn.commit()
    return result.rowcount or 0


# -- name: finish-editions
# Contract: an edition that is sending, has no delivery left to try, and can get no more
# readers (a digest takes readers due in its slot until ``open_until``) is sent.
_FINISH = """
UPDATE editions SET status = 'sent', finished_at = :now
WHERE status = 'sending' AND (open_until IS NULL OR open_until <= :now) AND NOT EXISTS (
  SELECT 1 FROM deliveries d WHERE d.edition_id = editions.id
    AND d.status IN ('queued', 'claimed', 'deferred'))
"""


def finish_editions(conn: Connection, now: datetime) -> int:
    result = conn.execute(_sql(_FINISH), {"now": now})
    conn.commit()
    return result.rowcount or 0


def halted_editions(conn: Connection, edition_ids: set[int]) -> dict[int, str]:
    """Which of these editions are no longer sending (paused, cancelled, ...)."""
    if not edition_ids:
        return {}
    rows = conn.execute(text("SELECT id, status FROM editions WHERE id IN :ids").bindparams(
        bindparam("ids", expanding=True)), {"ids": sorted(edition_ids)}).all()
    conn.commit()
    return {row.id: row.status for row in rows if row.status != "sending"}
