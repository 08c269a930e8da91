"""What billing needs of the payment provider, behind one small interface.

:class:`PaymentGateway` is all the rest of the code knows of Stripe; the one implementation
that talks to it is :class:`newsletter.billing.stripe_gateway.StripeGateway` (the only
module that imports ``stripe``). Objects come back as plain dataclasses read by
:func:`subscription_state` and :func:`price_info`, which accept the shapes of every Stripe
API version this code has met: the period end on the subscription (before 2025-03-31) or on
its items (after), a Price or a legacy Plan.

Errors: :class:`BillingUnavailable` when the provider could not be reached or failed on its
side (a network error, a timeout, a 5xx, a 429) — try again later, nothing was decided;
:class:`BillingRefused` when it answered that the request is wrong (a 4xx), which retrying
will not change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from newsletter.errors import Conflict, Unavailable


class BillingUnavailable(Unavailable):
    """The payment provider could not be reached or failed on its side; nothing changed."""


class BillingRefused(Conflict):
    """The payment provider refused the request (it does not know the object, or a
    parameter is wrong); retrying will not help."""


@dataclass(frozen=True)
class PriceInfo:
    """A recurring price as readers see it: ``amount`` in minor units per ``interval``."""

    id: str
    amount: int | None
    currency: str | None
    interval: str | None        # day, week, month, year
    interval_count: int = 1


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as the provider holds it now (fetched) or held it (carried)."""

    id: str
    customer: str | None
    status: str                  # Stripe's: trialing, active, past_due, unpaid, canceled, …
    price: PriceInfo | None
    quantity: int
    current_period_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    trial_end: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    reader_id: int | None        # our metadata, set when the checkout was made
    site: str | None = None      # our metadata: the site that made it (its host)


class PaymentGateway(Protocol):
    """The calls billing makes. Every call that creates or changes something carries an
    idempotency key, so a retry after a lost answer does it once."""

    def create_customer(self, *, reader_id: int, email: str, site: str,
                        idempotency_key: str) -> str:
        """A new customer for the reader (``site`` marks it ours); its id."""
        ...

    def checkout_url(self, *, customer: str, reader_id: int, price: str, site: str,
                     success_url: str, cancel_url: str, trial_days: int,
                     idempotency_key: str) -> str:
        """A Checkout Session in subscription mode for the customer, the session and its
        subscription marked with the reader and ``site``; the URL to send the reader to."""
        ...

    def customer_subscriptions(self, customer: str) -> list[SubscriptionState]:
        """Every subscription of the customer that has not ended, as Stripe has them."""
        ...

    def checkout_subscription(self, session_id: str) -> tuple[int | None, str | None]:
        """A Checkout Session's ``client_reference_id`` (as a reader id) and subscription id,
        the latter only once the session is complete."""
        ...

    def portal_url(self, *, customer: str, return_url: str, idempotency_key: str) -> str:
        """A Billing Portal session for the customer; the URL to send the reader to."""
        ...

    def subscription(self, subscription_id: str) -> SubscriptionState:
        """The subscription's current state."""
        ...

    def cancel_subscription(self, subscription_id: str, *,
                            idempotency_key: str) -> SubscriptionState:
        """End the subscription now (no further invoices); its state afterwards."""
        ...

    def price(self, price_id: str) -> PriceInfo:
        """A price's amount and interval, for the upgrade page."""
        ...


# -- reading provider objects -----------------------------------------------------------------

def _moment(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _id(value: Any) -> str | None:
    """An object's id, whether the field holds the id or the expanded object."""
    if isinstance(value, str):
        return value[:255] or None
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return value["id"][:255] or None
    return None


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def reader_id_of(value: Any) -> int | None:
    """A reader id written by this code (in metadata or ``client_reference_id``): ASCII
    digits within 32 bits, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
        return number if 0 < number < 2**31 else None
    return None


def price_info(obj: Mapping[str, Any] | None) -> PriceInfo | None:
    """A Price (``unit_amount``, ``recurring``) or a legacy Plan (``amount``, ``interval``)."""
    if not isinstance(obj, Mapping) or not _id(obj):
        return None
    recurring = obj.get("recurring") if isinstance(obj.get("recurring"), Mapping) else obj
    amount = _whole(obj.get("unit_amount"))
    if amount is None:
        amount = _whole(obj.get("amount"))
    interval = recurring.get("interval")
    count = _whole(recurring.get("interval_count")) or 1
    currency = obj.get("currency")
    return PriceInfo(id=_id(obj) or "", amount=amount,
                     currency=currency.lower()[:3] if isinstance(currency, str) else None,
                     interval=interval if interval in ("day", "week", "month", "year") else None,
                     interval_count=max(1, count))


def subscription_state(obj: Mapping[str, Any]) -> SubscriptionState:
    """Read a subscription object; ``ValueError`` when it is not one."""
    if not isinstance(obj, Mapping) or obj.get("object", "subscription") != "subscription":
        raise ValueError("not a subscription")
    sub_id, status = _id(obj), obj.get("status")
    if not sub_id or not isinstance(status, str):
        raise ValueError("a subscription without an id or a status")
    items = obj.get("items")
    data = items.get("data") if isinstance(items, Mapping) else None
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], Mapping) else {}
    price = price_info(first.get("price")) or price_info(first.get("plan")) \
        or price_info(obj.get("plan"))
    period_end = _moment(obj.get("current_period_end")) \
        or _moment(first.get("current_period_end"))
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    return SubscriptionState(
        id=sub_id, customer=_id(obj.get("customer")), status=status[:30],
        price=price, quantity=_whole(first.get("quantity")) or _whole(obj.get("quantity")) or 1,
        current_period_end=period_end,
        cancel_at_period_end=obj.get("cancel_at_period_end") is True,
        cancel_at=_moment(obj.get("cancel_at")), trial_end=_moment(obj.get("trial_end")),
        canceled_at=_moment(obj.get("canceled_at")), ended_at=_moment(obj.get("ended_at")),
        reader_id=reader_id_of(metadata.get("reader_id")),
        site=metadata.get("site") if isinstance(metadata.get("site"), str) else None,
    )


def invoice_subscription(obj: Mapping[str, Any]) -> str | None:
    """The subscription an invoice belongs to (``subscription`` before 2025-03-31, then
    ``parent.subscription_details.subscription``)."""
    found = _id(obj.get("subscription"))
    if found:
        return found
    parent = obj.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    return _id(details.get("subscription")) if isinstance(details, Mapping) else None

