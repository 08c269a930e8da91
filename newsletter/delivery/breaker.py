"""Relay health for every worker and the dashboard: the circuit breakers'
(``mail.breaker``) reports written to each relay's row in ``relay_state`` — down since, last
checked, last error — and read back by the admin dashboard, which tells a live outage (a
worker probed within :data:`FRESH_FOR`) from a stale one (no worker is watching)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, select, text

from newsletter.db import UTCDateTime
from newsletter.delivery.models import RelayState
from newsletter.mail.breaker import Recorder

# The dashboard trusts a "down" it was told within this (a probe at least every minute).
FRESH_FOR = timedelta(minutes=3)

# -- name: record-relay-health
# Contract: the relay's row (made if missing) says what its breaker last saw.
_ENSURE = ("INSERT INTO relay_state (relay, next_slot_at) VALUES (:relay, 0) "
           "ON CONFLICT (relay) DO NOTHING")
_HEALTH = text("UPDATE relay_state SET down_since = :since, checked_at = :checked, "
               "last_error = :error WHERE relay = :relay").bindparams(
                   bindparam("since", type_=UTCDateTime()),
                   bindparam("checked", type_=UTCDateTime()))


def recorder(engine: Engine) -> Recorder:
    """A breaker's ``record`` that writes to this database (errors are the breaker's)."""
    def record(relay: str, down_since: datetime | None, now: datetime,
               error: str | None) -> None:
        params = {"relay": relay[:200], "since": down_since, "checked": now,
                  "error": (error or "")[:300] or None}
        with engine.begin() as conn:
            conn.execute(text(_ENSURE), params)
            conn.execute(_HEALTH, params)
    return record


@dataclass(frozen=True)
class RelayHealth:
    relay: str
    down_since: datetime | None
    checked_at: datetime | None
    last_error: str | None
    fresh: bool          # told within FRESH_FOR: a worker is still watching it

    @property
    def down(self) -> bool:
        return self.down_since is not None and self.fresh


def relay_health(session, now: datetime) -> list[RelayHealth]:
    """Every relay a breaker reported on, for the dashboard (a session of the app's)."""
    rows = session.scalars(select(RelayState).where(RelayState.checked_at.is_not(None))
                           .order_by(RelayState.relay))
    return [RelayHealth(r.relay, r.down_since, r.checked_at, r.last_error,
                        fresh=now - r.checked_at <= FRESH_FOR) for r in rows]
