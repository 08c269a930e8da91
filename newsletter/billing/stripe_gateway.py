"""The one module that imports ``stripe``: :class:`StripeGateway`, the
:class:`~newsletter.billing.gateway.PaymentGateway` that talks to Stripe's API.

It uses a ``StripeClient`` of its own (no module-global key), pointed at
``NEWSLETTER_STRIPE_API_BASE`` when set (a local Stripe-compatible server in tests), with
Stripe's library retrying network failures itself (with the same idempotency key). Every
POST carries the idempotency key the caller gives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import stripe

from newsletter.billing.gateway import (
    BillingRefused,
    BillingUnavailable,
    PriceInfo,
    SubscriptionState,
    price_info,
    reader_id_of,
    subscription_state,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
TIMEOUT_SECONDS = 15


class StripeGateway:
    """Stripe through its official client. ``http_client`` replaces the HTTP layer (tests)."""

    def __init__(self, secret_key: str, *, api_base: str | None = None,
                 http_client: Any = None, max_network_retries: int = 2):
        options: dict[str, Any] = {"max_network_retries": max_network_retries,
                                   "http_client": http_client
                                   or stripe.RequestsClient(timeout=TIMEOUT_SECONDS)}
        if api_base:
            options["base_addresses"] = {"api": api_base.rstrip("/")}
        self.client = stripe.StripeClient(secret_key, **options)

    # -- calls --------------------------------------------------------------------------------

    def create_customer(self, *, reader_id: int, email: str, site: str,
                        idempotency_key: str) -> str:
        customer = self._call(lambda: self.client.v1.customers.create(
            params={"email": email, "metadata": {"reader_id": str(reader_id), "site": site}},
            options={"idempotency_key": idempotency_key}))
        return customer.id

    def checkout_url(self, *, customer: str, reader_id: int, price: str, site: str,
                     success_url: str, cancel_url: str, trial_days: int,
                     idempotency_key: str) -> str:
        metadata = {"reader_id": str(reader_id), "site": site}
        subscription_data: dict[str, Any] = {"metadata": metadata}
        if trial_days > 0:
            subscription_data["trial_period_days"] = trial_days
        session = self._call(lambda: self.client.v1.checkout.sessions.create(
            params={"mode": "subscription", "customer": customer,
                    "client_reference_id": str(reader_id),
                    "line_items": [{"price": price, "quantity": 1}],
                    "success_url": success_url, "cancel_url": cancel_url,
                    "metadata": metadata, "subscription_data": subscription_data},
            options={"idempotency_key": idempotency_key}))
        if not isinstance(session.url, str) or not session.url.startswith(("https://",
                                                                            "http://")):
            raise BillingUnavailable("Stripe gave a checkout session without a URL")
        return session.url

    def checkout_subscription(self, session_id: str) -> tuple[int | None, str | None]:
        session = self._call(lambda: self.client.v1.checkout.sessions.retrieve(session_id))
        data = session.to_dict()
        subscription = data.get("subscription")
        if isinstance(subscription, dict):
            subscription = subscription.get("id")
        complete = data.get("status") == "complete"
        return (reader_id_of(data.get("client_reference_id")),
                subscription if complete and isinstance(subscription, str) else None)

    def customer_subscriptions(self, customer: str) -> list[SubscriptionState]:
        found = self._call(lambda: self.client.v1.subscriptions.list(
            params={"customer": customer, "limit": 100}))
        return [subscription_state(item.to_dict()) for item in found.data]

    def portal_url(self, *, customer: str, return_url: str, idempotency_key: str) -> str:
        session = self._call(lambda: self.client.v1.billing_portal.sessions.create(
            params={"customer": customer, "return_url": return_url},
            options={"idempotency_key": idempotency_key}))
        return session.url

    def subscription(self, subscription_id: str) -> SubscriptionState:
        found = self._call(lambda: self.client.v1.subscriptions.retrieve(subscription_id))
        return subscription_state(found.to_dict())

    def cancel_subscription(self, subscription_id: str, *,
                            idempotency_key: str) -> SubscriptionState:
        ended = self._call(lambda: self.client.v1.subscriptions.cancel(
            subscription_id, options={"idempotency_key": idempotency_key}))
        return subscription_state(ended.to_dict())

    def price(self, price_id: str) -> PriceInfo:
        found = self._call(lambda: self.client.v1.prices.retrieve(price_id))
        info = price_info(found.to_dict())
        if info is None:
            raise BillingRefused(f"{price_id} is not a price")
        return info

    # -- errors -------------------------------------------------------------------------------

    @staticmethod
    def _call(call: Callable[[], T]) -> T:
        """Run one API call, turning Stripe's errors into the gateway's two kinds."""
        try:
            return call()
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise BillingUnavailable(f"Stripe could not be reached: {exc}") from exc
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            # Our key is wrong or lacks a permission: a misconfiguration, not the reader's
            # doing. Logged loudly; the reader is told payments are unavailable.
            log.error("Stripe refused our API key: %s", exc)
            raise BillingUnavailable("payments are misconfigured") from exc
        except stripe.StripeError as exc:
            status = exc.http_status or 0
            if status >= 500 or status == 0:
                raise BillingUnavailable(f"Stripe failed: {exc}") from exc
            raise BillingRefused(str(exc)[:300]) from exc
        except ValueError as exc:  # an answer that is not the object it should be
            raise BillingUnavailable(f"Stripe gave an unreadable answer: {exc}") from exc
