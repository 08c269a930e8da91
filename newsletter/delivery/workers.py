"""Worker heartbeats: each worker's scheduler says it is alive every few seconds, and the
dashboard reads when each was last seen. A worker not seen for :data:`ALIVE_WITHIN` is
shown as stopped; one not seen for a day is forgotten."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from newsletter.db import db
from newsletter.delivery.models import WorkerBeat

BEAT_SECONDS = 10
ALIVE_WITHIN = timedelta(seconds=3 * BEAT_SECONDS)
FORGET_AFTER = timedelta(days=1)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


def beat(name: str, now: datetime) -> None:
    """Record that worker ``name`` is alive (an update, or an insert the first time)."""
    if db.session.execute(update(WorkerBeat).where(WorkerBeat.name == name)
                          .values(seen_at=now)).rowcount == 0:
        db.session.add(WorkerBeat(name=name, started_at=now, seen_at=now))
    db.session.execute(delete(WorkerBeat).where(WorkerBeat.seen_at < now - FORGET_AFTER))
    db.session.commit()


@dataclass(frozen=True)
class WorkerHealth:
    name: str
    started_at: datetime
    seen_at: datetime
    alive: bool


def workers(now: datetime) -> list[WorkerHealth]:
    return [WorkerHealth(name=w.name, started_at=w.started_at, seen_at=w.seen_at,
                         alive=now - w.seen_at <= ALIVE_WITHIN)
            for w in db.session.scalars(select(WorkerBeat).order_by(WorkerBeat.seen_at.desc()))]
