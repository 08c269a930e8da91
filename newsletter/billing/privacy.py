"""The paid tier's part of a reader's privacy rights: their billing in "download my data",
and erasure's billing step (every live subscription ended at Stripe, the customer link
dropped)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from newsletter.billing import entitlements
from newsletter.billing.gateway import BillingRefused, BillingUnavailable
from newsletter.billing.models import BillingAccount, BillingSubscription
from newsletter.billing.service import LIVE_STATUSES, Billing
from newsletter.billing.service import idempotency_key as _key
from newsletter.db import db
from newsletter.subscribers.models import Reader


def before_erasure(billing: Billing, reader: Reader, now: datetime) -> None:
    """Erasure's billing part, run before the reader's data goes: end every live
    subscription at Stripe now (nobody is charged for mail they can no longer get), then
    drop the link to the Stripe customer. Stripe keeps the customer and its invoices (the
    law wants invoices kept); nothing here points to them any more. Raises
    :class:`BillingUnavailable` with nothing changed when Stripe cannot be reached."""
    live = {row.id: row for row in db.session.scalars(select(BillingSubscription).where(
        BillingSubscription.reader_id == reader.id,
        BillingSubscription.status.in_(LIVE_STATUSES)))}
    account = db.session.get(BillingAccount, reader.id)
    gateway = billing.gateway
    to_end = set(live)
    if account is not None and account.customer_id and gateway is not None:
        # Stripe's own list too: a subscription whose webhook has not come yet, or whose
        # first sync met an outage, is not in ours.
        to_end |= {state.id for state in gateway.customer_subscriptions(account.customer_id)
                   if state.status in LIVE_STATUSES}
    if to_end and gateway is None:
        raise BillingUnavailable("the reader has a live subscription and Stripe is not "
                                 "configured to cancel it")
    for subscription_id in sorted(to_end):
        try:
            state = gateway.cancel_subscription(subscription_id,
                                                idempotency_key=_key("erase", subscription_id))
        except BillingRefused:  # Stripe no longer knows it: nothing to cancel
            state = None
        row = live.get(subscription_id)
        if row is not None:
            row.status = state.status if state else "canceled"
            row.ended_at = (state.ended_at if state else None) or now
            row.canceled_at = (state.canceled_at if state else None) or now
    db.session.execute(update(BillingSubscription)
                       .where(BillingSubscription.reader_id == reader.id)
                       .values(reader_id=None, customer_id=None, grace_until=None)
                       .execution_options(synchronize_session=False))
    db.session.execute(delete(BillingAccount).where(BillingAccount.reader_id == reader.id))
    reader.plan, reader.plan_until = entitlements.FREE, None


def export(reader: Reader, now: datetime) -> dict[str, Any]:
    """The reader's billing, for "download my data"."""
    account = db.session.get(BillingAccount, reader.id)
    subscriptions = db.session.scalars(select(BillingSubscription).where(
        BillingSubscription.reader_id == reader.id).order_by(BillingSubscription.created_at))

    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "plan": entitlements.effective_plan(reader.plan, reader.plan_until, now),
        "paid_until": when(reader.plan_until) if reader.plan == entitlements.PAID else None,
        "complimentary": bool(account and account.comp),
        "stripe_customer": account.customer_id if account else None,
        "subscriptions": [{
            "id": row.id, "status": row.status, "interval": row.interval,
            "amount": row.amount, "currency": row.currency,
            "current_period_end": when(row.current_period_end),
            "cancel_at_period_end": row.cancel_at_period_end,
            "trial_end": when(row.trial_end), "payment_grace_until": when(row.grace_until),
            "ended_at": when(row.ended_at),
        } for row in subscriptions],
    }
