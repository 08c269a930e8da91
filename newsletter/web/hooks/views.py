"""Provider webhooks: bounces, complaints and deliveries from SES, Postmark, Mailgun and
SendGrid. A bad signature gets 401 and changes nothing; a replay changes nothing."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, current_app, jsonify, request

from newsletter.delivery import provider_events as pe
from newsletter.delivery.events import BouncePolicy, Event, handle
from newsletter.delivery.service import delivery_tokens
from newsletter.extensions import reader_services

bp = Blueprint("hooks", __name__, url_prefix="/hooks")


def _apply(events: list[pe.ProviderEvent]):
    config = current_app.config
    policy = BouncePolicy(config["SOFT_BOUNCE_LIMIT"],
                          timedelta(days=config["SOFT_BOUNCE_WINDOW_DAYS"]))
    tokens = delivery_tokens(config)
    outcomes = [handle(Event(source=e.provider, event_id=e.event_id, kind=e.kind,
                             token=e.token, recipient=e.recipient, detail=e.detail,
                             occurred_at=e.occurred_at),
                       tokens=tokens, services=reader_services(), policy=policy)
                for e in events]
    return jsonify(processed=len(outcomes), outcomes=outcomes)


def _guard(call):
    try:
        return call()
    except pe.SignatureError:
        return jsonify(error="unauthorized"), 401
    except pe.PayloadError as exc:
        return jsonify(error="bad request", message=str(exc)[:300]), 400


@bp.post("/ses")
def ses():
    arns = current_app.config.get("SES_TOPIC_ARNS")
    if not arns:
        abort(404)
    fetcher = current_app.extensions["newsletter.sns_fetcher"]

    def run():
        events, subscribe_url = pe.ses_events(request.get_data(), topic_arns=arns,
                                              fetcher=fetcher)
        if subscribe_url:
            fetcher.fetch(subscribe_url)  # confirms the subscription
            return jsonify(subscribed=True)
        return _apply(events)

    return _guard(run)


@bp.post("/postmark")
def postmark():
    user = current_app.config.get("POSTMARK_WEBHOOK_USER")
    password = current_app.config.get("POSTMARK_WEBHOOK_PASSWORD")
    if not user or not password:
        abort(404)
    return _guard(lambda: _apply(pe.postmark_events(
        request.get_data(), request.headers.get("Authorization"), username=user,
        password=password)))


@bp.post("/mailgun")
def mailgun():
    key = current_app.config.get("MAILGUN_SIGNING_KEY")
    if not key:
        abort(404)
    return _guard(lambda: _apply(pe.mailgun_events(request.get_data(), signing_key=key)))


@bp.post("/sendgrid")
def sendgrid():
    key = current_app.config.get("SENDGRID_PUBLIC_KEY")
    if not key:
        abort(404)
    return _guard(lambda: _apply(pe.sendgrid_events(
        request.get_data(), request.headers.get("X-Twilio-Email-Event-Webhook-Signature"),
        request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp"),
        public_key_pem_or_b64=key)))
