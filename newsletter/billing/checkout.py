"""Checkout, the Billing Portal and the success page: handing a reader to Stripe and back.

A customer id is stored only once Stripe made the customer, and every POST carries an
idempotency key, so a retry or a double click makes nothing twice (see ``billing.service``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from newsletter.billing import entitlements
from newsletter.billing.gateway import BillingRefused, BillingUnavailable, PaymentGateway
from newsletter.billing.models import BillingAccount, BillingSubscription
from newsletter.billing.service import (
    Billing,
    CannotUpgrade,
    NoCustomer,
)
from newsletter.billing.service import idempotency_key as _key
from newsletter.billing.sync import sync_subscription
from newsletter.db import db
from newsletter.subscribers.models import Reader, ReaderStatus

log = logging.getLogger(__name__)


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
