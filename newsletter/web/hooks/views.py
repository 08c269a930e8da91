"""Webhooks from outside: bounces, complaints and deliveries from SES, Postmark, Mailgun
and SendGrid, and Stripe's billing events. A bad signature gets 401 and changes nothing; a
replay changes nothing.

One route, ``POST /hooks/<provider>``: ``stripe`` when the paid tier is configured
(``billing.webhooks``), and every email provider configured in ``services().providers``
(404 for any other name): the provider verifies and reads the request,
:func:`~newsletter.delivery.events.apply_events` applies what it says.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, request

from newsletter.billing import webhooks as billing_webhooks
from newsletter.billing.gateway import BillingUnavailable
from newsletter.db import utcnow
from newsletter.delivery.events import BouncePolicy, apply_events, first_use_of_signature
from newsletter.delivery.providers import PayloadError, SignatureError
from newsletter.wiring import services

bp = Blueprint("hooks", __name__, url_prefix="/hooks")


def _unavailable():
    return jsonify(error="unavailable",
                   message="could not reach the provider to check this request; send it again"
                   ), 503


def _stripe():
    billing = services().billing
    if billing.gateway is None or not billing.settings.webhook_secrets:
        abort(404)
    try:
        answer = billing_webhooks.handle(billing, request.get_data(),
                                         request.headers.get("Stripe-Signature"), utcnow())
    except billing_webhooks.SignatureError:
        return jsonify(error="unauthorized"), 401
    except billing_webhooks.PayloadError as exc:
        return jsonify(error="bad request", message=str(exc)[:300]), 400
    except BillingUnavailable:
        return _unavailable()  # Stripe sends the event again later
    return jsonify(id=answer.event_id, type=answer.type, outcome=answer.outcome,
                   duplicate=answer.duplicate)


@bp.post("/<provider>")
def receive(provider: str):
    if provider == "stripe":
        return _stripe()
    parts = services()
    hook = parts.providers.get(provider)
    if hook is None:
        abort(404)
    try:
        result = hook.parse(request.get_data(), request.headers)
    except OSError:
        # The provider's signing certificate could not be fetched: an outage, not a forgery.
        # 503 (not a crash), so the provider sends the notification again later.
        return _unavailable()
    except SignatureError:
        return jsonify(error="unauthorized"), 401
    except PayloadError as exc:
        return jsonify(error="bad request", message=str(exc)[:300]), 400
    if result.nonce is not None and not first_use_of_signature(
            hook.name, result.nonce, [e.event_id[:200] for e in result.events]):
        return jsonify(error="unauthorized", message="signature already used"), 401
    if result.subscribe_url:
        try:
            parts.sns_fetcher.fetch(result.subscribe_url)  # confirms the subscription
        except OSError:
            return _unavailable()
        return jsonify(subscribed=True)
    outcomes = apply_events(result.events, tokens=parts.delivery_tokens, readers=parts.readers,
                            policy=BouncePolicy.from_config(current_app.config))
    return jsonify(processed=len(outcomes), outcomes=outcomes)
