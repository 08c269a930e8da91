"""The audit log: every admin action, who did it, on what, when and from where.

Entries are only ever added; owners read them. The actor is kept as text as well as by id,
so an entry still says who acted after the account is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from newsletter.accounts.models import Admin, AuditEntry
from newsletter.db import db

PAGE = 50


@dataclass(frozen=True)
class AdminActor:
    """Who acts: an admin through the browser, or a named API token or command."""

    admin_id: int | None
    name: str
    ip: str | None = None

    @classmethod
    def of(cls, admin: Admin, ip: str | None = None) -> AdminActor:
        return cls(admin_id=admin.id, name=admin.email, ip=ip)


def record(actor: AdminActor, action: str, target: str = "",
           detail: dict[str, Any] | None = None, *, commit: bool = True) -> None:
    """Add an entry; with ``commit=False`` it joins the caller's transaction."""
    db.session.add(AuditEntry(admin_id=actor.admin_id, actor=actor.name[:320],
                              action=action[:60], target=target[:200], detail=detail or {},
                              ip=actor.ip))
    if commit:
        db.session.commit()


def entries(page: int = 1, action: str | None = None) -> tuple[list[AuditEntry], int]:
    """A page of entries, newest first, and how many there are in all."""
    query = select(AuditEntry)
    if action:
        query = query.where(AuditEntry.action == action)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(query.order_by(AuditEntry.id.desc())
                              .offset((page - 1) * PAGE).limit(PAGE))
    return list(rows), total
