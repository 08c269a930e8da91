"""The paid tier in figures, for the admin dashboard: paying readers, trials, payments in
grace, cancellations to come, monthly recurring revenue and churn.

Definitions (also in the glossary):

* **paying reader**: a reader whose plan gives the paid tier now (``entitlements``),
  complimentary access included;
* **MRR**: the sum, per currency, of every subscription that is being paid for — active, or
  past due within its grace period; trials are not revenue yet — each brought to a month
  (a yearly price counts a twelfth);
* **churn (30 days)**: subscriptions that ended in the last 30 days, over those plus the
  subscriptions paying now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select

from newsletter.billing import entitlements
from newsletter.billing.models import BillingAccount, BillingSubscription
from newsletter.db import db
from newsletter.subscribers.models import Reader

MONTHS_PER = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}


def monthly(amount: int | None, interval: str | None, interval_count: int = 1,
            quantity: int = 1) -> float:
    """A price brought to one month, in minor units."""
    if amount is None or interval not in MONTHS_PER:
        return 0.0
    return amount * quantity / (MONTHS_PER[interval] * max(1, interval_count))


def paying_now_clause(now: datetime):
    return and_(Reader.plan == entitlements.PAID,
                or_(Reader.plan_until.is_(None), Reader.plan_until > now))


@dataclass
class Figures:
    paying: int = 0
    trialing: int = 0
    in_grace: int = 0
    cancelling: int = 0
    comp: int = 0
    monthly: int = 0
    yearly: int = 0
    churned_30d: int = 0
    new_30d: int = 0
    mrr: dict[str, int] = field(default_factory=dict)   # currency → minor units a month

    @property
    def churn_rate(self) -> float | None:
        paying_subs = self.monthly + self.yearly
        base = paying_subs + self.churned_30d
        return self.churned_30d / base if base else None


def figures(now: datetime) -> Figures:
    result = Figures()
    result.paying = db.session.scalar(
        select(func.count(Reader.id)).where(paying_now_clause(now))) or 0
    result.comp = db.session.scalar(
        select(func.count()).select_from(BillingAccount).where(BillingAccount.comp.is_(True))
    ) or 0
    mrr: dict[str, float] = defaultdict(float)
    rows = db.session.scalars(select(BillingSubscription).where(
        BillingSubscription.status.in_(("active", "trialing", "past_due", "unpaid"))))
    for row in rows:
        if row.status == "trialing":
            result.trialing += 1
            continue
        if row.status in entitlements.GRACE_STATUSES:
            if row.grace_until is None or row.grace_until <= now:
                continue  # lapsed: no longer paying
            result.in_grace += 1
        if row.cancel_at_period_end or row.cancel_at:
            result.cancelling += 1
        if row.interval == "year":
            result.yearly += 1
        else:
            result.monthly += 1
        mrr[row.currency or "?"] += monthly(row.amount, row.interval, row.interval_count,
                                            row.quantity)
    result.mrr = {currency: round(value) for currency, value in sorted(mrr.items())}
    month_ago = now - timedelta(days=30)
    result.churned_30d = db.session.scalar(
        select(func.count()).select_from(BillingSubscription).where(
            BillingSubscription.status == "canceled",
            func.coalesce(BillingSubscription.ended_at, BillingSubscription.canceled_at,
                          BillingSubscription.updated_at) >= month_ago)) or 0
    result.new_30d = db.session.scalar(
        select(func.count()).select_from(BillingSubscription).where(
            BillingSubscription.created_at >= month_ago,
            BillingSubscription.status.in_(("active", "trialing", "past_due", "unpaid",
                                            "canceled")))) or 0
    return result


@dataclass(frozen=True)
class PayingReader:
    reader_id: int
    email: str | None
    status: str          # the subscription's, or "complimentary"
    interval: str | None
    amount: int | None
    currency: str | None
    period_end: datetime | None
    cancel_at_period_end: bool
    grace_until: datetime | None


def paying_readers(now: datetime, limit: int = 200) -> list[PayingReader]:
    """Readers with the paid tier now and each one's subscription (newest first)."""
    rows = db.session.execute(
        select(Reader.id, Reader.email, BillingSubscription, BillingAccount.comp)
        .outerjoin(BillingSubscription, and_(
            BillingSubscription.reader_id == Reader.id,
            BillingSubscription.status.in_(("active", "trialing", "past_due", "unpaid"))))
        .outerjoin(BillingAccount, BillingAccount.reader_id == Reader.id)
        .where(paying_now_clause(now))
        .order_by(Reader.id.desc()).limit(limit))
    found = []
    for reader_id, email, sub, comp in rows:
        if sub is None:
            found.append(PayingReader(reader_id, email, "complimentary" if comp else "paid",
                                      None, None, None, None, False, None))
            continue
        found.append(PayingReader(reader_id, email, sub.status, sub.interval, sub.amount,
                                  sub.currency, sub.current_period_end,
                                  sub.cancel_at_period_end or bool(sub.cancel_at),
                                  sub.grace_until))
    return found
