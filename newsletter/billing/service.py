"""The paid tier of one app (:class:`Billing`: its gateway and settings), the errors its
services raise, and what they share. The services, one idea a module: ``checkout``
(Checkout, the portal, the success page), ``sync`` (keeping subscriptions in step with
Stripe and the reader's plan with them), ``access`` (complimentary access, plans that ended,
what a reader's plan box says), ``privacy`` (export and erasure).

Contract, for all of them:

* **Stripe decides.** A subscription's state is always *fetched* from Stripe when something
  says it changed (a webhook, the success page), never taken from the order events arrive
  in. Two fetches of one subscription running at once are ordered by a number each takes
  before it fetches (``sync_seq``); a write whose fetch started earlier than the last one
  written is dropped (``applied_seq``), so an old state never overwrites a newer one, and no
  lock is held while Stripe answers.
* **The plan follows at once.** Every change of a subscription or of complimentary access
  rewrites the reader's ``plan`` and ``plan_until`` (``sync.refresh_plan``) in the same
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

from newsletter.billing.gateway import (
    BillingRefused,
    BillingUnavailable,
    PaymentGateway,
    PriceInfo,
)
from newsletter.errors import Conflict, Unavailable

log = logging.getLogger(__name__)

PLANS = ("monthly", "yearly")
PRICE_CACHE = timedelta(minutes=10)


class PaymentsOff(Unavailable):
    """Payments are not set up on this site (no Stripe key or no prices)."""


class CannotUpgrade(Conflict):
    """The reader cannot start a checkout now; the message says why, in their words."""


class NoCustomer(Conflict):
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


def idempotency_key(*parts: Any) -> str:
    """The idempotency key of a Stripe POST: the same parts, the same key."""
    return "newsletter-" + "-".join(str(part) for part in parts)


# Subscription statuses that still bill or may bill again (erasure ends them).
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "incomplete", "paused")
