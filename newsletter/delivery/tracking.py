"""Opens and clicks: counted per delivery, machine-made ones kept apart from people's.

A click redirects only to the n-th link of the delivery's own edition, read from the link
table stored at render time, never to anything the URL says.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from newsletter.db import db, utcnow
from newsletter.delivery.models import Delivery, TrackingEvent
from newsletter.delivery.tokens import DeliveryTokens
from newsletter.editions.models import Edition, EditionLink

# Agents that fetch mail content on their own: security scanners and link checkers.
MACHINE_AGENTS = ("bot", "crawler", "spider", "preview", "prefetch", "scanner", "barracuda",
                  "mimecast", "proofpoint", "messagelabs", "symantec", "ironport", "safelinks",
                  "yahoomailproxy", "python-requests", "curl/", "wget/", "go-http-client")
MACHINE_WINDOW = timedelta(seconds=10)


def is_machine(user_agent: str | None, sent_at: datetime | None, now: datetime) -> bool:
    """An open or click that looks machine-made: a known agent, no agent at all, or within
    seconds of the relay accepting the message (scanners fetch before a person can)."""
    agent = (user_agent or "").lower()
    if not agent or any(marker in agent for marker in MACHINE_AGENTS):
        return True
    return sent_at is not None and now - sent_at < MACHINE_WINDOW


def _delivery(token: str, tokens: DeliveryTokens) -> tuple[Delivery, Edition] | None:
    delivery_id = tokens.read(token)
    if delivery_id is None:
        return None
    row = db.session.execute(select(Delivery, Edition).join(
        Edition, Edition.id == Delivery.edition_id).where(Delivery.id == delivery_id)).first()
    return (row[0], row[1]) if row else None


def record_open(token: str, user_agent: str | None, *, tokens: DeliveryTokens,
                enabled: bool = True, now: datetime | None = None) -> bool:
    """Count an open; False when the token is not ours or tracking is off (nothing changes)."""
    now = now or utcnow()
    found = _delivery(token, tokens)
    if not enabled or found is None or not found[1].tracking:
        return False
    delivery = found[0]
    machine = is_machine(user_agent, delivery.sent_at, now)
    _count(delivery.id, machine, now, clicked=False)
    db.session.add(TrackingEvent(delivery_id=delivery.id, kind="open", machine=machine,
                                 occurred_at=now, user_agent=(user_agent or "")[:300] or None))
    db.session.commit()
    return True


def click_target(token: str, n: int, user_agent: str | None, *, tokens: DeliveryTokens,
                 enabled: bool = True, now: datetime | None = None) -> str | None:
    """The URL to redirect to (and the click counted), or None for an unknown token or link."""
    now = now or utcnow()
    found = _delivery(token, tokens)
    if found is None:
        return None
    delivery, edition = found
    url = db.session.scalar(select(EditionLink.url).where(
        EditionLink.edition_id == edition.id, EditionLink.n == n))
    if url is None:
        return None
    if enabled and edition.tracking:
        machine = is_machine(user_agent, delivery.sent_at, now)
        _count(delivery.id, machine, now, clicked=True)
        db.session.add(TrackingEvent(delivery_id=delivery.id, kind="click", link=n,
                                     machine=machine, occurred_at=now,
                                     user_agent=(user_agent or "")[:300] or None))
        db.session.commit()
    return url


def _count(delivery_id: int, machine: bool, now: datetime, *, clicked: bool) -> None:
    """One statement; safe under concurrent requests (counters add, firsts keep the first)."""
    values: dict = {}
    if machine:
        values["machine_opens"] = Delivery.machine_opens + (0 if clicked else 1)
    else:
        values["opens"] = Delivery.opens + (0 if clicked else 1)
        # A person's click implies they opened it, even if images were blocked.
        values["first_opened_at"] = func.coalesce(Delivery.first_opened_at, now)
        if clicked:
            values["clicks"] = Delivery.clicks + 1
            values["first_clicked_at"] = func.coalesce(Delivery.first_clicked_at, now)
    if values:
        db.session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


# -- name: prune-tracking-events
# Contract: open and click detail (time, user agent) older than ``days`` is deleted; the
# counts and first-open/first-click times on each delivery stay.
def prune_events(now: datetime, days: int) -> int:
    """Delete tracking events older than ``days``; returns how many."""
    result = db.session.execute(
        delete(TrackingEvent).where(TrackingEvent.occurred_at < now - timedelta(days=days)))
    db.session.commit()
    return result.rowcount or 0
