"""Admin sessions as server-side records: signing in adds one, signing out deletes it.

The browser's cookie holds a random id (32 bytes); the table keeps only its SHA-256, with
when it began, when it was last seen and from where. A session is valid while its row
exists and it is younger than ``ADMIN_SESSION_HOURS``, whatever the cookie says: a cookie
copied before a sign-out opens nothing after it. The user agent is kept to help the admin
recognise a browser in their list, never to decide anything.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from newsletter.accounts.models import Admin, AdminSession
from newsletter.db import db, utcnow

LAST_SEEN_RESOLUTION = timedelta(minutes=1)
USER_AGENT_MAX = 300


@dataclass(frozen=True)
class Browser:
    """Where a sign-in comes from, as the request shows it."""

    ip: str | None
    user_agent: str | None


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(admin: Admin, browser: Browser, now: datetime | None = None) -> str:
    """Add a session for ``admin`` (uncommitted) and return the id for the cookie; it is
    shown nowhere else and never stored."""
    now = now or utcnow()
    session_id = secrets.token_urlsafe(32)
    db.session.add(AdminSession(token_hash=_hash(session_id), admin_id=admin.id,
                                created_at=now, last_seen_at=now, ip=browser.ip,
                                user_agent=(browser.user_agent or "")[:USER_AGENT_MAX] or None))
    db.session.flush()
    return session_id


def find_session(session_id: str | None, max_age: timedelta,
                 now: datetime | None = None) -> AdminSession | None:
    """The live session this cookie id names, or None (unknown, signed out, too old, or
    its admin disabled). Notes when it was last seen, at most once a minute."""
    if not isinstance(session_id, str) or not 20 <= len(session_id) <= 100:
        return None
    now = now or utcnow()
    row = db.session.scalar(select(AdminSession).where(
        AdminSession.token_hash == _hash(session_id)))
    if row is None:
        return None
    if now - row.created_at > max_age:
        db.session.delete(row)
        db.session.commit()
        return None
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:
        # In the statement: a sign-out that deleted the row meanwhile stays signed out.
        db.session.execute(update(AdminSession).where(AdminSession.id == row.id)
                           .values(last_seen_at=now))
        db.session.commit()
    return row


def close_session(session_id: str | None) -> None:
    """Sign this browser out (uncommitted): its row goes, so its cookie opens nothing."""
    if isinstance(session_id, str):
        db.session.execute(delete(AdminSession).where(
            AdminSession.token_hash == _hash(session_id)))


def close_sessions(admin_id: int, *, keep: int | None = None) -> int:
    """Sign ``admin_id`` out everywhere (uncommitted), but for the session ``keep``;
    return how many sessions ended."""
    statement = delete(AdminSession).where(AdminSession.admin_id == admin_id)
    if keep is not None:
        statement = statement.where(AdminSession.id != keep)
    return db.session.execute(statement.execution_options(synchronize_session=False)).rowcount


def close_one(admin_id: int, row_id: int) -> bool:
    """End one of ``admin_id``'s own sessions, by its row id (uncommitted); False when it
    is not theirs or already gone."""
    return db.session.execute(delete(AdminSession).where(
        AdminSession.id == row_id, AdminSession.admin_id == admin_id)).rowcount == 1


def sessions_of(admin_id: int) -> list[AdminSession]:
    """The admin's sessions, the most recently seen first."""
    return list(db.session.scalars(select(AdminSession).where(
        AdminSession.admin_id == admin_id).order_by(AdminSession.last_seen_at.desc(),
                                                    AdminSession.id.desc())))


def forget_expired(max_age: timedelta, now: datetime | None = None) -> int:
    """Delete sessions older than ``max_age`` (housekeeping; uncommitted)."""
    now = now or utcnow()
    return db.session.execute(delete(AdminSession).where(
        AdminSession.created_at < now - max_age)).rowcount
