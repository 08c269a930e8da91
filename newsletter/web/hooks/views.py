"""Provider webhooks: bounces, complaints and deliveries from SES, Postmark, Mailgun and
SendGrid. A bad signature gets 401 and changes nothing; a replay changes nothing.

One route, ``POST /hooks/<provider>``, for every provider configured in
``services().providers`` (404 for any other name): the provider verifies and reads the
request, :func:`~newsletter.delivery.events.apply_events` applies what it says.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, request

from newsletter.delivery.events import BouncePolicy, apply_events, first_use_of_signature
from newsletter.delivery.providers import PayloadError, SignatureError
from newsletter.wiring import services

bp = Blueprint("hooks", __name__, url_prefix="/hooks")


def _unavailable():
    return jsonify(error="unavailable",
                   message="could not reach the provider to check this request; send it again"
                   ), 503


@bp.post("/<provider>")
def receive(provider: str):
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
