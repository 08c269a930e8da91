"""Keeping each subscription in step with Stripe, and the reader's plan with all their access.

A subscription's state is always fetched from Stripe; two fetches of one subscription
running at once are ordered by a number each takes before it fetches (``sync_seq``), and a
write whose fetch started earlier than the last one written is dropped (``applied_seq``).
The reader's ``plan`` and ``plan_until`` are rewritten in the same transaction, under a lock
on the reader row (see ``billing.service`` for the whole contract).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import bindparam, delete, select, text, update

from newsletter.billing import entitlements
from newsletter.billing.gateway import BillingRefused, SubscriptionState
from newsletter.billing.models import BillingAccount, BillingSubscription
from newsletter.billing.service import LIVE_STATUSES, Billing
from newsletter.billing.service import idempotency_key as _key
from newsletter.db import UTCDateTime, db
from newsletter.subscribers.models import AccountMailKind, Reader, ReaderStatus
from newsletter.subscribers.outbox import queue_mail

log = logging.getLogger(__name__)


# -- name: take-sync-number
# Contract: the subscription has a row (made empty if new) and this call holds the next
# number of its ``sync_seq``; committed before Stripe is asked, so a fetch that starts later
# always holds a higher number.
_NEW_SUBSCRIPTION = text(
    "INSERT INTO billing_subscriptions (id, status, interval_count, quantity,"
    " cancel_at_period_end, sync_seq, applied_seq, created_at, updated_at)"
    " VALUES (:id, 'unknown', 1, 1, FALSE, 0, 0, :now, :now) ON CONFLICT (id) DO NOTHING"
).bindparams(bindparam("now", type_=UTCDateTime()))


def _take_sync_number(subscription_id: str, now: datetime) -> int:
    db.session.execute(_NEW_SUBSCRIPTION, {"id": subscription_id, "now": now})
    db.session.execute(
        update(BillingSubscription).where(BillingSubscription.id == subscription_id)
        .values(sync_seq=BillingSubscription.sync_seq + 1)
        .execution_options(synchronize_session=False))
    number = db.session.scalar(select(BillingSubscription.sync_seq)
                               .where(BillingSubscription.id == subscription_id))
    db.session.commit()
    return int(number)


def sync_subscription(billing: Billing, subscription_id: str, now: datetime, *,
                      payment_failed: bool = False, reader_hint: int | None = None) -> str:
    """Fetch the subscription from Stripe and apply it; the caller commits. Returns what
    happened, in a few words. Raises :class:`BillingUnavailable` (nothing applied: try
    again) or :class:`BillingRefused` (Stripe does not know it)."""
    gateway = billing.require_gateway()
    number = _take_sync_number(subscription_id, now)
    try:
        state = gateway.subscription(subscription_id)
    except BillingRefused:
        db.session.execute(delete(BillingSubscription).where(
            BillingSubscription.id == subscription_id, BillingSubscription.applied_seq == 0))
        db.session.commit()
        raise
    if state.id != subscription_id:
        raise BillingRefused("Stripe answered with another subscription")
    reader_id = _reader_for(billing, state, reader_hint)
    if reader_id is None:
        return _orphan(billing, state)
    lock_reader(reader_id)
    row = db.session.get(BillingSubscription, subscription_id, populate_existing=True)
    if row is None or row.applied_seq >= number:
        refresh_plan(reader_id, now)
        return f"subscription {subscription_id}: a newer state is already in"
    outcome = _apply(billing, row, state, reader_id, number, now)
    if payment_failed and state.status in entitlements.PAYING_STATUSES:
        outcome += " (the failed payment was retried and went through)"
    refresh_plan(reader_id, now)
    return outcome


def _reader_for(billing: Billing, state: SubscriptionState, hint: int | None) -> int | None:
    """Whose subscription this is: the reader whose customer it belongs to, else the reader
    our own metadata (marked with this site) or our own checkout names — whose customer it
    then becomes."""
    if state.customer:
        owner = db.session.scalar(select(BillingAccount.reader_id)
                                  .where(BillingAccount.customer_id == state.customer))
        if owner is not None:
            return owner
    ours = state.reader_id if state.site == billing.settings.site else None
    for candidate in (ours, hint):
        if candidate is None:
            continue
        reader = db.session.get(Reader, candidate)
        if reader is None or reader.status == ReaderStatus.ERASED.value:
            continue
        account = db.session.get(BillingAccount, candidate)
        if account is None:
            db.session.add(BillingAccount(reader_id=candidate, customer_id=state.customer))
        elif not account.customer_id:
            account.customer_id = state.customer
        elif account.customer_id != state.customer:
            continue  # the reader pays through another customer: not theirs to claim
        db.session.flush()
        return candidate
    return None


def _orphan(billing: Billing, state: SubscriptionState) -> str:
    """A subscription no reader of ours holds. One that our metadata says is an erased
    reader's (paid in a Checkout tab left open across the erasure, say) is ended at once:
    nobody may be charged for mail they can no longer get."""
    what = f"subscription {state.id}: no reader for customer {state.customer}"
    if state.site != billing.settings.site or state.reader_id is None \
            or state.status not in LIVE_STATUSES:
        return what
    reader = db.session.get(Reader, state.reader_id)
    if reader is None or reader.status != ReaderStatus.ERASED.value:
        return what
    ended = billing.require_gateway().cancel_subscription(
        state.id, idempotency_key=_key("erase", state.id))
    log.info("subscription %s of erased reader %s cancelled at Stripe", state.id, reader.id)
    return f"subscription {state.id}: its reader was erased, cancelled at Stripe ({ended.status})"


def lock_reader(reader_id: int) -> None:
    """Hold the reader's row (PostgreSQL: a row lock; SQLite: the write lock) until commit,
    so two plan refreshes never interleave their reads and writes."""
    db.session.execute(update(Reader).where(Reader.id == reader_id)
                       .values(plan=Reader.plan)
                       .execution_options(synchronize_session=False))


def _apply(billing: Billing, row: BillingSubscription, state: SubscriptionState,
           reader_id: int, number: int, now: datetime) -> str:
    price = state.price
    row.reader_id = reader_id
    row.customer_id = state.customer
    row.status = state.status
    row.price_id = price.id if price else None
    row.interval = price.interval if price else None
    row.interval_count = price.interval_count if price else 1
    row.amount = price.amount if price else None
    row.currency = price.currency if price else None
    row.quantity = state.quantity
    row.current_period_end = state.current_period_end
    row.cancel_at_period_end = state.cancel_at_period_end
    row.cancel_at = state.cancel_at
    row.trial_end = state.trial_end
    row.canceled_at = state.canceled_at
    row.ended_at = state.ended_at
    row.applied_seq = number
    outcome = f"subscription {state.id}: {state.status}"
    # Stripe's status decides, not the event: a payment-failed event that arrives after the
    # payment went through (status active again) starts nothing.
    failing = state.status in entitlements.GRACE_STATUSES
    if failing and row.grace_until is None:
        row.grace_until = entitlements.grace_end(now, billing.settings.grace_days)
        reader = db.session.get(Reader, reader_id)
        if reader is not None and reader.email:
            queue_mail(reader_id, AccountMailKind.PAYMENT_FAILED, reader.email)
        outcome += f", payment failed: grace until {row.grace_until:%Y-%m-%d %H:%M} UTC"
    elif state.status in entitlements.PAYING_STATUSES and row.grace_until:
        row.grace_until = None
        outcome += ", paid again: grace over"
    return outcome


def refresh_plan(reader_id: int, now: datetime) -> tuple[str, datetime | None]:
    """Write the reader's ``plan`` and ``plan_until`` from all their access (not committed)."""
    accesses = [
        entitlements.subscription_access(
            row.status, cancel_at_period_end=row.cancel_at_period_end,
            current_period_end=row.current_period_end, cancel_at=row.cancel_at,
            grace_until=row.grace_until)
        for row in db.session.scalars(select(BillingSubscription)
                                      .where(BillingSubscription.reader_id == reader_id))
    ]
    account = db.session.get(BillingAccount, reader_id)
    if account is not None and account.comp:
        accesses.append(entitlements.Access(True))
    plan, until = entitlements.plan_from(accesses, now)
    db.session.execute(update(Reader).where(Reader.id == reader_id)
                       .values(plan=plan, plan_until=until)
                       .execution_options(synchronize_session=False))
    reader = db.session.identity_map.get((Reader, (reader_id,), None))
    if reader is not None:
        db.session.refresh(reader, ["plan", "plan_until"])
    return plan, until
