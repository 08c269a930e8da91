"""Entitlements: the one home of "may this reader have this premium topic or edition".

A reader has the paid tier when ``readers.plan`` is ``paid`` and ``readers.plan_until`` is
empty (open-ended) or still ahead. The billing service writes those two columns from what
Stripe says and from complimentary access (:func:`plan_from`); the time-bound cases — a
failed payment's grace period, a subscription cancelled at the end of its period — end by
themselves at ``plan_until``, in SQL (:func:`paid_sql`) and in Python (:func:`is_paying`)
alike, without waiting for a job or a webhook.

Every caller asks here: fan-out and the audience count (SQL), digests (which premium topics
a reader gets), the web archive and synthesis pages (teaser or the whole), the preference
centre and the forms (which topics are offered).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select

from newsletter.content.models import TOPIC_ORDER, Synthesis, Topic, synthesis_topics
from newsletter.db import db

PAID = "paid"
FREE = "free"
TIER_ALL = "all"
TIER_PAID = "paid"
TIERS = (TIER_ALL, TIER_PAID)

# Stripe's subscription statuses, by what they give.
PAYING_STATUSES = frozenset({"active", "trialing"})
GRACE_STATUSES = frozenset({"past_due", "unpaid"})


def is_paying(plan: str | None, plan_until: datetime | None = None,
              now: datetime | None = None) -> bool:
    """Whether a reader on this plan (until ``plan_until``) has the paid tier at ``now``
    (default: the current time)."""
    if plan != PAID:
        return False
    return plan_until is None or plan_until > (now or datetime.now(UTC))


def effective_plan(plan: str | None, plan_until: datetime | None, now: datetime) -> str:
    return PAID if is_paying(plan, plan_until, now) else FREE


def reader_is_paying(reader: Any, now: datetime) -> bool:
    """:func:`is_paying` for a reader row (anything with ``plan`` and ``plan_until``)."""
    if reader is None:
        return False
    return is_paying(reader.plan, reader.plan_until, now)


def may_follow(plan: str | None, *, premium: bool) -> bool:
    """Whether a reader on this (effective) plan may be sent a topic."""
    return not premium or is_paying(plan)


def paid_sql(alias: str = "r", now: str = ":now") -> str:
    """The SQL form of :func:`is_paying` for a reader row under ``alias``, at the time
    given by the bind parameter ``now``."""
    return (f"({alias}.plan = '{PAID}'"
            f" AND ({alias}.plan_until IS NULL OR {alias}.plan_until > {now}))")


# -- what a subscription gives ----------------------------------------------------------------

@dataclass(frozen=True)
class Access:
    """Paid access from one source: ``until`` None means for as long as nothing changes."""

    paid: bool
    until: datetime | None = None


def subscription_access(status: str, *, cancel_at_period_end: bool,
                        current_period_end: datetime | None, cancel_at: datetime | None,
                        grace_until: datetime | None) -> Access:
    """What a subscription in this state gives.

    * active or trialing: paid; when it is set to end (cancelled at the period's end, or
      ``cancel_at``), paid until then;
    * past_due or unpaid (a payment failed): paid until the grace period ends;
    * anything else (incomplete, incomplete_expired, canceled, paused): nothing.
    """
    if status in PAYING_STATUSES:
        ends = [moment for moment in (current_period_end if cancel_at_period_end else None,
                                      cancel_at) if moment is not None]
        return Access(True, min(ends) if ends else None)
    if status in GRACE_STATUSES and grace_until is not None:
        return Access(True, grace_until)
    return Access(False)


def plan_from(accesses: Iterable[Access], now: datetime) -> tuple[str, datetime | None]:
    """``(plan, plan_until)`` for the reader's columns from every source of access they have
    (subscriptions, complimentary access): paid as long as the longest-lasting one."""
    live = [access for access in accesses
            if access.paid and (access.until is None or access.until > now)]
    if not live:
        return FREE, None
    if any(access.until is None for access in live):
        return PAID, None
    return PAID, max(access.until for access in live if access.until is not None)


def grace_end(now: datetime, grace_days: int) -> datetime:
    return now + timedelta(days=grace_days)


# -- premium content --------------------------------------------------------------------------

def premium_slugs() -> set[str]:
    return set(db.session.scalars(select(Topic.slug).where(Topic.premium.is_(True))))


def tier_is_paid(audience: Mapping[str, Any] | None) -> bool:
    """Whether an edition's audience is the paid tier (only entitled readers get it)."""
    return (audience or {}).get("tier") == TIER_PAID


def edition_is_premium(audience: Mapping[str, Any] | None, content: Mapping[str, Any] | None,
                       premium: Collection[str],
                       premium_syntheses: Collection[int] = ()) -> bool:
    """An edition is for paying readers when its tier is paid, a section's topic is
    premium, a section holds a premium synthesis (of ``premium_syntheses``), or its audience
    is made only of premium topics."""
    if tier_is_paid(audience):
        return True
    audience = audience or {}
    sections = (content or {}).get("sections", [])
    if any(section.get("topic") in premium for section in sections):
        return True
    if premium_syntheses and any(
            synthesis_id in premium_syntheses
            for section in sections for synthesis_id in section.get("synthesis_ids") or ()):
        return True
    topics = audience.get("topics") or []
    return bool(topics) and all(slug in premium for slug in topics)


def section_synthesis_ids(contents: Iterable[Mapping[str, Any] | None]) -> set[int]:
    """Every synthesis id the sections of these editions' contents name."""
    found: set[int] = set()
    for content in contents:
        for section in (content or {}).get("sections", []):
            found.update(i for i in section.get("synthesis_ids") or ()
                         if isinstance(i, int) and not isinstance(i, bool))
    return found


# -- name: premium-syntheses
# Contract: of the given synthesis ids, those whose topics are all premium (see
# :func:`synthesis_is_premium`); one query per 2,000 ids.
def premium_synthesis_ids(ids: Collection[int]) -> set[int]:
    found: set[int] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), 2000):
        chunk = ordered[start:start + 2000]
        found.update(db.session.scalars(
            select(synthesis_topics.c.synthesis_id)
            .join(Topic, Topic.id == synthesis_topics.c.topic_id)
            .where(synthesis_topics.c.synthesis_id.in_(chunk))
            .group_by(synthesis_topics.c.synthesis_id)
            .having(func.sum(case((Topic.premium.is_(True), 0), else_=1)) == 0)))
    return found


def edition_needs_payment(audience: Mapping[str, Any] | None,
                          content: Mapping[str, Any] | None) -> bool:
    """:func:`edition_is_premium` with the premium topics and syntheses read now."""
    return edition_is_premium(audience, content, premium_slugs(),
                              premium_synthesis_ids(section_synthesis_ids([content])))


def synthesis_is_premium(synthesis: Synthesis) -> bool:
    """A synthesis is for paying readers when every one of its topics is premium (one in a
    free topic reaches free readers in that topic's digest anyway)."""
    return bool(synthesis.topics) and all(topic.premium for topic in synthesis.topics)


def may_read(paying: bool, *, premium: bool) -> bool:
    """Whether a reader (paying or not; a visitor is not) may read a premium body."""
    return not premium or paying


# -- which topics a reader is offered ---------------------------------------------------------

def offered_topics(reader: Any = None, now: datetime | None = None) -> list[Topic]:
    """The topics a reader may choose, in their order: the free ones; the premium ones too
    for a paying reader; and any premium topic a reader already follows (kept after a
    downgrade, so saving the form does not drop it; it sends nothing until they pay).
    ``reader`` None (a new reader, an import): the free topics."""
    topics = list(db.session.scalars(select(Topic).order_by(*TOPIC_ORDER)))
    if reader is None:
        return [topic for topic in topics if not topic.premium]
    paying = reader_is_paying(reader, now) if now is not None \
        else is_paying(reader.plan, reader.plan_until)
    followed = {link.topic_id for link in getattr(reader, "followed", [])}
    return [topic for topic in topics
            if not topic.premium or paying or topic.id in followed]


def premium_topics() -> list[Topic]:
    return list(db.session.scalars(
        select(Topic).where(Topic.premium.is_(True)).order_by(*TOPIC_ORDER)))
