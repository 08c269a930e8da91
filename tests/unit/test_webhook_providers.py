"""The provider objects behind ``/hooks/<provider>``: which ones the settings make, and that each
reads its secrets and its request headers the way the provider sends them. What each provider's
events mean is in ``test_provider_webhooks.py``."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.datastructures import Headers

from newsletter.delivery.events import BouncePolicy
from newsletter.delivery.providers import (
    MailgunProvider,
    PayloadError,
    PostmarkProvider,
    SendgridProvider,
    SesProvider,
    WebhookResult,
    build_providers,
)
from tests.unit.test_provider_webhooks import (
    CERT_URL,
    MG_KEY,
    SUBSCRIBE_URL,
    TOPIC,
    body,
    confirmation,
    mailgun_body,
    make_cert,
    notification,
    sample,
    sg_sign,
    sign_sns,
)
from tests.unit.test_provider_webhooks import FakeFetcher as Fetcher

ALL = {
    "SES_TOPIC_ARNS": [TOPIC],
    "POSTMARK_WEBHOOK_USER": "pm",
    "POSTMARK_WEBHOOK_PASSWORD": "secret",
    "MAILGUN_SIGNING_KEY": MG_KEY,
    "SENDGRID_PUBLIC_KEY": "configured, read on the first request",
}


def test_only_configured_providers_are_built():
    fetcher = Fetcher(b"")
    assert build_providers({}, sns_fetcher=fetcher) == {}
    assert build_providers({key: "" for key in ALL}, sns_fetcher=fetcher) == {}
    assert build_providers({"POSTMARK_WEBHOOK_USER": "pm"}, sns_fetcher=fetcher) == {}

    built = build_providers(ALL, sns_fetcher=fetcher)

    assert sorted(built) == ["mailgun", "postmark", "sendgrid", "ses"]
    assert all(name == provider.name for name, provider in built.items())
    assert isinstance(built["ses"], SesProvider) and built["ses"].fetcher is fetcher
    assert isinstance(built["postmark"], PostmarkProvider)
    assert isinstance(built["mailgun"], MailgunProvider)
    assert isinstance(built["sendgrid"], SendgridProvider)


def test_bounce_policy_from_config():
    policy = BouncePolicy.from_config({"SOFT_BOUNCE_LIMIT": 5, "SOFT_BOUNCE_WINDOW_DAYS": 7})
    assert policy == BouncePolicy(soft_limit=5, soft_window=timedelta(days=7))


def test_ses_provider_keeps_its_own_certificates_and_returns_the_subscribe_url():
    sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    fetcher = Fetcher(make_cert(sns_key, not_before=now - timedelta(days=1),
                                not_after=now + timedelta(days=1)))
    first, second = (SesProvider(topic_arns={TOPIC}, fetcher=fetcher) for _ in range(2))
    delivery = body(sign_sns(notification(sample("ses_delivery.json")), sns_key))

    confirmed = first.parse(body(sign_sns(confirmation(), sns_key)), Headers())
    assert confirmed == WebhookResult([], SUBSCRIBE_URL)
    assert [e.kind for e in first.parse(delivery, Headers()).events] == ["delivered"]
    assert fetcher.urls == [CERT_URL], "fetched once by the first provider"
    second.parse(delivery, Headers())
    assert fetcher.urls == [CERT_URL, CERT_URL], "no cache shared between instances"


def test_postmark_provider_reads_the_authorization_header_in_any_case():
    provider = PostmarkProvider(username="pm", password="secret")
    raw = json.dumps(sample("postmark_bounce.json")).encode()
    headers = Headers({"authorization": "Basic " + base64.b64encode(b"pm:secret").decode()})

    result = provider.parse(raw, headers)

    assert [(e.source, e.kind) for e in result.events] == [("postmark", "hard_bounce")]
    assert result.subscribe_url is None


def test_mailgun_provider_checks_freshness_against_now():
    provider = MailgunProvider(signing_key=MG_KEY)
    raw = mailgun_body(sample("mailgun_delivered.json"), at=datetime.now(UTC))
    assert [e.kind for e in provider.parse(raw, Headers()).events] == ["delivered"]


def test_sendgrid_provider_reads_the_signature_headers():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    provider = SendgridProvider(public_key=pem.decode())
    raw = json.dumps([sample("sendgrid_events.json")[6]]).encode()
    timestamp = str(int(time.time()))
    headers = Headers({"X-Twilio-Email-Event-Webhook-Signature": sg_sign(key, raw, timestamp),
                       "x-twilio-email-event-webhook-timestamp": timestamp})

    assert [e.kind for e in provider.parse(raw, headers).events] == ["complaint"]


def test_sendgrid_broken_key_is_a_500_on_the_hook_not_an_app_that_does_not_start():
    provider = SendgridProvider(public_key="not a key")
    with pytest.raises(ValueError, match="SendGrid verification key") as caught:
        provider.parse(b"[]", Headers())
    assert not isinstance(caught.value, PayloadError)
