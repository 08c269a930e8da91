"""Entitlements: the one home of "may this reader have this premium topic or edition".

Today a reader is entitled to premium content when their ``plan`` is ``paid``; the paid
tier (Stripe) will decide that plan here, and every caller — fan-out, digests, the web
archive, the preference centre — already asks through these functions, so that change is
made once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import select

from newsletter.content.models import Topic
from newsletter.db import db

PAID = "paid"
FREE = "free"
TIER_ALL = "all"
TIER_PAID = "paid"
TIERS = (TIER_ALL, TIER_PAID)


def is_paying(plan: str | None) -> bool:
    """Whether a reader on this plan has the paid tier."""
    return plan == PAID


def may_follow(plan: str | None, *, premium: bool) -> bool:
    """Whether a reader on this plan may follow (and be sent) a topic."""
    return not premium or is_paying(plan)


def paid_sql(alias: str = "r") -> str:
    """The SQL form of :func:`is_paying` for a reader row under ``alias``."""
    return f"{alias}.plan = '{PAID}'"


def tier_is_paid(audience: Mapping[str, Any] | None) -> bool:
    """Whether an edition's audience is the paid tier (only entitled readers get it)."""
    return (audience or {}).get("tier") == TIER_PAID


def edition_is_premium(audience: Mapping[str, Any] | None, content: Mapping[str, Any] | None,
                       premium_slugs: Collection[str]) -> bool:
    """An edition is for paying readers when its tier is paid, a section's topic is
    premium, or its audience is made only of premium topics."""
    if tier_is_paid(audience):
        return True
    audience = audience or {}
    sections = (content or {}).get("sections", [])
    if any(section.get("topic") in premium_slugs for section in sections):
        return True
    topics = audience.get("topics") or []
    return bool(topics) and all(slug in premium_slugs for slug in topics)


def may_read_edition(plan: str | None, *, premium: bool) -> bool:
    """Whether a reader on this plan (``None``: a visitor) may read an edition's body."""
    return not premium or is_paying(plan)


def offered_topics() -> list[Topic]:
    """The topics a reader may choose in the forms, in their order. Premium topics are
    offered to nobody until the paid tier can take payment (a later issue)."""
    return list(db.session.scalars(
        select(Topic).where(Topic.premium.is_(False)).order_by(Topic.position, Topic.name)
    ))
