"""The paid tier's services: checkout, the billing portal, keeping each subscription in step
with Stripe, complimentary access, and the reader's plan that follows from them.

Contract:

* **Stripe decides.** A subscription's state is always *fetched* from Stripe when something
  says it changed (a webhook, the success page), never taken from the order events arrive
  in. Two fetches of one subscription running at once are ordered by a number each takes
  before it fetches (``sync_seq``); a write whose fetch started earlier than the last one
  written is dropped (``applied_seq``), so an old state never overwrites a newer one, and no
  lock is held while Stripe answers.
* **The plan follows at once.** Every change of a subscription or of complimentary access
  rewrites the reader's ``plan`` and ``plan_until`` (:func:`refresh_plan`) in the same
  transaction, under a lock on the reader row, from *all* their sources of access.
* **A failed payment** starts a grace period (``NEWSLETTER_BILLING_GRACE_DAYS``, 7 by
  default) once, with one email to the reader (account stream); access continues until it
  ends, then stops by itself (``plan_until``). A payment that succeeds ends the grace.
* **No half-made state.** A Stripe outage raises :class:`BillingUnavailable` before anything
  is written here (a customer id is stored only once Stripe made the customer; retrying the
  same request with the same idempotency key gives the same customer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.exc import IntegrityError

from newsletter.billing import entitlements
from newsletter.billing.gateway import (
    BillingRefused,
    BillingUnavailable,
    PaymentGateway,
    PriceInfo,
    SubscriptionState,
)
from newsletter.billing.models import BillingAccount, BillingSubscription
from newsletter.db import UTCDateTime, db
from newsletter.subscribers.models import AccountMailKind, Reader, ReaderStatus
from newsletter.subscribers.outbox import queue_mail

log = logging.getLogger(__name__)

PLANS = ("monthly", "yearly")
PRICE_CACHE = timedelta(minutes=10)


class PaymentsOff(Exception):
    """Payments are not set up on this site (no Stripe key or no prices)."""


class CannotUpgrade(Exception):
    """The reader cannot start a checkout now; the message says why, in their words."""


class NoCustomer(Exception):
    """The reader has never paid: there is no billing to manage."""


@dataclass(frozen=True)
class BillingSettings:
    prices: dict[str, str]          # plan name (monthly, yearly) → Stripe price id
    trial_days: int
    grace_days: int
    base_url: str
    webhook_secrets: tuple[str, ...]

    @property
    def site(self) -> str:
        """This site's mark in the metadata of what it makes at Stripe (its host), so a
        subscription made by another site or a payment link on the same Stripe account is
        never taken for one of ours."""
        return urlsplit(self.base_url).netloc or self.base_url

    @classmethod
    def from_config(cls, config) -> BillingSettings:
        prices = {name: config.get(f"STRIPE_PRICE_{name.upper()}") for name in PLANS}
        return cls(prices={name: price for name, price in prices.items() if price},
                   trial_days=max(0, int(config.get("STRIPE_TRIAL_DAYS") or 0)),
                   grace_days=max(0, int(config.get("BILLING_GRACE_DAYS", 7))),
                   base_url=config["BASE_URL"].rstrip("/"),
                   webhook_secrets=tuple(config.get("STRIPE_WEBHOOK_SECRET") or ()))


@dataclass
class Billing:
    """The paid tier of one app: its gateway (None when Stripe is not configured) and
    settings. Built by the wiring; the entry points pass it in."""

    gateway: PaymentGateway | None
    settings: BillingSettings
    _prices: tuple[datetime, dict[str, PriceInfo | None]] | None = None

    @property
    def takes_payment(self) -> bool:
        return self.gateway is not None and bool(self.settings.prices)

    def require_gateway(self) -> PaymentGateway:
        if self.gateway is None or not self.settings.prices:
            raise PaymentsOff("Paid subscriptions are not available on this site yet.")
        return self.gateway

    def prices(self, now: datetime) -> dict[str, PriceInfo | None]:
        """Each plan's price as Stripe has it (kept ten minutes); None where Stripe could
        not say (the page then shows the plan without an amount)."""
        if self._prices is not None and now - self._prices[0] < PRICE_CACHE:
            return self._prices[1]
        found: dict[str, PriceInfo | None] = {}
        gateway = self.require_gateway()
        for name, price_id in self.settings.prices.items():
            try:
                found[name] = gateway.price(price_id)
            except (BillingUnavailable, BillingRefused) as exc:
                log.warning("price %s of the %s plan could not be read: %s", price_id, name, exc)
                found[name] = None
        # A failed lookup is kept a minute too, so visitors cannot make every page view ask.
        self._prices = (now if all(found.values()) else now - PRICE_CACHE + timedelta(minutes=1),
                        found)
        return found


def _key(*parts: Any) -> str:
    return "newsletter-" + "-".join(str(part) for part in parts)


# -- checkout and portal ----------------------------------------------------------------------

def start_checkout(billing: Billing, reader: Reader, plan: str, now: datetime) -> str:
    """A Checkout Session for the reader on ``plan`` (monthly or yearly); its URL."""
    gateway = billing.require_gateway()
    price = billing.settings.prices.get(plan)
    if price is None:
        raise CannotUpgrade("Choose monthly or yearly.")
    if reader.status != ReaderStatus.ACTIVE.value or not reader.email:
        raise CannotUpgrade("Confirm your subscription first, then upgrade.")
    if entitlements.reader_is_paying(reader, now):
        raise CannotUpgrade("You already have the paid plan.")
    statuses = set(db.session.scalars(select(BillingSubscription.status).where(
        BillingSubscription.reader_id == reader.id)))
    if statuses & entitlements.GRACE_STATUSES:
        # A second subscription would charge twice once the card is fixed.
        raise CannotUpgrade("Your subscription is waiting for a payment: update your card "
                            "in Manage billing instead.")
    # The free trial is for a first subscription only.
    trial = billing.settings.trial_days if not statuses - {"unknown"} else 0
    customer = ensure_customer(billing, reader)
    base = billing.settings.base_url
    try:
        return _checkout(billing, gateway, reader, customer, price, plan, trial, base, now)
    except BillingRefused as exc:
        if "no such customer" not in str(exc).lower():
            raise
    # The customer was deleted at Stripe (from its dashboard): forget it, make a new one.
    log.warning("reader %s: Stripe no longer knows customer %s; making a new one",
                reader.id, customer)
    db.session.execute(update(BillingAccount).where(BillingAccount.reader_id == reader.id)
                       .values(customer_id=None))
    db.session.commit()
    customer = ensure_customer(billing, reader, attempt=2)
    return _checkout(billing, gateway, reader, customer, price, plan, trial, base, now)


def _checkout(billing: Billing, gateway: PaymentGateway, reader: Reader, customer: str,
              price: str, plan: str, trial: int, base: str, now: datetime) -> str:
    return gateway.checkout_url(
        customer=customer, reader_id=reader.id, price=price, site=billing.settings.site,
        success_url=base + "/billing/success?session_id={CHECKOUT_SESSION_ID}",
        cancel_url=base + "/upgrade?cancelled=1", trial_days=trial,
        # The same reader, plan and ten minutes: a double click opens the same session.
        idempotency_key=_key("checkout", reader.id, plan, trial, customer,
                             int(now.timestamp()) // 600))


def ensure_customer(billing: Billing, reader: Reader, attempt: int = 1) -> str:
    """The reader's Stripe customer, made (once) if they have none; committed."""
    account = db.session.get(BillingAccount, reader.id)
    if account is not None and account.customer_id:
        return account.customer_id
    gateway = billing.require_gateway()
    # Keyed by the reader's id and creation time: two requests at once, or a retry after a
    # crash, get the same customer from Stripe; another site on the same Stripe account
    # with a reader of the same id does not.
    customer = gateway.create_customer(
        reader_id=reader.id, email=reader.email or "", site=billing.settings.site,
        idempotency_key=_key("customer", reader.id, int(reader.created_at.timestamp()),
                             attempt))
    try:
        if account is None:
            db.session.add(BillingAccount(reader_id=reader.id, customer_id=customer))
        else:
            account.customer_id = customer
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # the other request stored it first (the same customer)
        account = db.session.get(BillingAccount, reader.id)
        if account is None or not account.customer_id:
            raise
        return account.customer_id
    return customer


def open_portal(billing: Billing, reader: Reader, now: datetime) -> str:
    """A Billing Portal session (change plan, card, cancel); its URL."""
    gateway = billing.require_gateway()
    account = db.session.get(BillingAccount, reader.id)
    if account is None or not account.customer_id:
        raise NoCustomer("You have no paid subscription to manage.")
    return gateway.portal_url(customer=account.customer_id,
                              return_url=billing.settings.base_url + "/preferences",
                              idempotency_key=_key("portal", reader.id,
                                                   int(now.timestamp()) // 60))


def confirm_checkout(billing: Billing, reader: Reader, session_id: str, now: datetime) -> bool:
    """On the success page: if the session is the reader's and complete, bring its
    subscription in at once (the webhook may come later); whether they are paying now."""
    gateway = billing.require_gateway()
    if not session_id.startswith("cs_") or len(session_id) > 255 or not session_id.isascii():
        return entitlements.reader_is_paying(reader, now)
    try:
        owner, subscription = gateway.checkout_subscription(session_id)
    except (BillingUnavailable, BillingRefused) as exc:
        log.info("checkout session %r could not be read: %s", session_id[:60], exc)
        return entitlements.reader_is_paying(reader, now)
    if owner == reader.id and subscription:
        try:
            sync_subscription(billing, subscription, now, reader_hint=reader.id)
            db.session.commit()
        except (BillingUnavailable, BillingRefused):
            db.session.rollback()
    db.session.refresh(reader)
    return entitlements.reader_is_paying(reader, now)


# -- keeping subscriptions in step ------------------------------------------------------------

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
    _lock_reader(reader_id)
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


def _lock_reader(reader_id: int) -> None:
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


# -- complimentary access ---------------------------------------------------------------------

def set_comp(reader: Reader, granted: bool, *, note: str, by: str, now: datetime) -> bool:
    """Grant or revoke complimentary access; whether anything changed (not committed)."""
    if reader.status == ReaderStatus.ERASED.value:
        raise CannotUpgrade("An erased reader cannot be given access.")
    _lock_reader(reader.id)
    account = db.session.get(BillingAccount, reader.id)
    if account is None:
        if not granted:
            return False
        account = BillingAccount(reader_id=reader.id)
        db.session.add(account)
    if account.comp == granted:
        return False
    account.comp = granted
    account.comp_note = note[:200] if granted else ""
    account.comp_by = by[:320] if granted else ""
    account.comp_at = now if granted else None
    db.session.flush()
    refresh_plan(reader.id, now)
    return True


# -- time passing, privacy --------------------------------------------------------------------

# -- name: lapse-paid-plans
# Contract: readers whose paid access ended (``plan_until`` passed) become ``free`` with no
# end date. Their access had already stopped at ``plan_until`` (every rule reads it); this
# only keeps the figures and lists plain.
def lapse_ended(now: datetime) -> int:
    result = db.session.execute(
        update(Reader).where(Reader.plan == entitlements.PAID, Reader.plan_until.is_not(None),
                             Reader.plan_until <= now)
        .values(plan=entitlements.FREE, plan_until=None)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount or 0


LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "incomplete", "paused")


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


@dataclass(frozen=True)
class Standing:
    """What the preference centre says of a reader's plan."""

    paying: bool
    comp: bool
    has_customer: bool
    subscription: BillingSubscription | None   # the one that gives access, or the latest


def standing(reader: Reader, now: datetime) -> Standing:
    account = db.session.get(BillingAccount, reader.id)
    rows = list(db.session.scalars(select(BillingSubscription).where(
        BillingSubscription.reader_id == reader.id)
        .order_by(BillingSubscription.created_at.desc())))
    live = [row for row in rows if row.status in LIVE_STATUSES]
    return Standing(paying=entitlements.reader_is_paying(reader, now),
                    comp=bool(account and account.comp),
                    has_customer=bool(account and account.customer_id),
                    subscription=(live or rows or [None])[0])
