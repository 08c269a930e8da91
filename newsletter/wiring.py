"""Every adapter the services need, built once from the settings in ``create_app``.

This is the one place that turns settings into objects: the two DKIM signers (dkimpy for
account mail, OpenSSL for the send path), the reader and delivery tokens, the mail setup
(renderer, transports), the SNS certificate fetcher, the feed fetcher and the webhook
providers. They live in one typed container, :class:`Services`, in
``app.extensions["newsletter"]``; entry points (``web``, ``cli``, ``scheduler``) read it
with :func:`services` and hand its parts to the domain services as arguments. No domain
package imports this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app

from newsletter.billing import entitlements
from newsletter.billing import privacy as billing_privacy
from newsletter.billing.service import Billing, BillingSettings
from newsletter.billing.stripe_gateway import StripeGateway
from newsletter.config import ConfigError
from newsletter.content.feed_fetch import FeedFetcher
from newsletter.db import db, utcnow
from newsletter.delivery import events
from newsletter.delivery.compose import EditionComposer
from newsletter.delivery.events import BouncePolicy
from newsletter.delivery.providers import CertificateFetcher, WebhookProvider, build_providers
from newsletter.delivery.queue import SoftBounceRule
from newsletter.delivery.sender import Sender, SendSettings, worker_id
from newsletter.delivery.sns_fetch import HttpsFetcher
from newsletter.delivery.tokens import DeliveryTokens
from newsletter.editions import next_digest
from newsletter.mail import DkimSigner, EmailRenderer, FastDkimSigner, MailSetup
from newsletter.mail.relays import parse_relays
from newsletter.subscribers.mailer import Links, ReaderMailer
from newsletter.subscribers.service import ReaderServices
from newsletter.subscribers.tokens import UNDO_MAX_AGE_DAYS, Purpose, Tokens

KEY = "newsletter"


@dataclass
class Services:
    """The adapters of one app. Tests may replace a part; the webhook providers hold the
    SNS fetcher and their secrets from when they were built, so a test that changes either
    rebuilds ``providers`` too (``delivery.providers.build_providers``)."""

    mail: MailSetup
    readers: ReaderServices
    delivery_tokens: DeliveryTokens
    fast_signer: FastDkimSigner | None
    sns_fetcher: CertificateFetcher
    feed_fetcher: FeedFetcher
    billing: Billing
    providers: dict[str, WebhookProvider] = field(default_factory=dict)


def _dkim_parts(config) -> tuple[str, str, str] | None:
    """(selector, domain, key path) when DKIM signing is on, ``None`` when it is off.

    :class:`ConfigError`, in one line, at start rather than at the first send: when only
    some of the three settings are set, or the key is missing, unreadable or not an RSA
    key of 1024 bits or more.
    """
    from newsletter.mail.dkim import DkimError, read_private_key
    from newsletter.mail.dkim_keys import dkim_settings

    try:
        parts = dkim_settings(config)
    except DkimError as exc:
        raise ConfigError(str(exc)) from None
    if parts is not None:
        try:
            read_private_key(parts[2])
        except DkimError as exc:
            raise ConfigError(f"NEWSLETTER_DKIM_PRIVATE_KEY_PATH: {exc}") from None
    return parts


def _reader_tokens(config) -> Tokens:
    day = 24 * 3600
    return Tokens(config["SECRET_KEYS"], {
        Purpose.CONFIRM: config["CONFIRM_MAX_AGE_DAYS"] * day,
        Purpose.EMAIL_CHANGE: config["CONFIRM_MAX_AGE_DAYS"] * day,
        Purpose.EMAIL_UNDO: UNDO_MAX_AGE_DAYS * day,
        Purpose.MANAGE: config["MANAGE_LINK_MAX_AGE_DAYS"] * day,
    })


def build_billing(config, *, http_client=None) -> Billing:
    """The paid tier: Stripe when ``STRIPE_SECRET_KEY`` is set (``http_client`` replaces its
    HTTP layer), none otherwise."""
    gateway = None
    if config.get("STRIPE_SECRET_KEY"):
        gateway = StripeGateway(config["STRIPE_SECRET_KEY"],
                                api_base=config.get("STRIPE_API_BASE"), http_client=http_client)
    return Billing(gateway=gateway, settings=BillingSettings.from_config(config))


def build_services(config) -> Services:
    """Build every adapter from the settings; raises ``ConfigError`` on a wrong relay
    option (so a typo stops the start, not every send) or a broken DKIM key."""
    try:
        parse_relays(dict(config))
    except ValueError as exc:
        raise ConfigError(f"NEWSLETTER_SMTP_URL: {exc}") from None
    dkim = _dkim_parts(config)
    mail = MailSetup(renderer=EmailRenderer(Path(config["EMAIL_TEMPLATES_DIR"])),
                     signer=DkimSigner.from_files(*dkim) if dkim else None,
                     config=dict(config))
    tokens = _reader_tokens(config)
    hash_key = (config.get("SUPPRESSION_KEY")
                or "suppression:" + config["SECRET_KEYS"][-1]).encode()
    billing = build_billing(config)
    readers = ReaderServices(
        tokens=tokens,
        mailer=ReaderMailer(mail, Links(config["BASE_URL"], tokens),
                            next_digest=next_digest.sentence),
        hash_key=hashlib.sha256(hash_key).digest(),
        offered_topics=lambda reader=None: entitlements.offered_topics(reader, utcnow()),
        check_deliverability=config["CHECK_DELIVERABILITY"],
        record_ip=config["RECORD_IP"],
    )
    sns_fetcher = HttpsFetcher()
    built = Services(
        mail=mail,
        readers=readers,
        delivery_tokens=DeliveryTokens(config["SECRET_KEYS"]),
        fast_signer=FastDkimSigner.from_files(*dkim) if dkim else None,
        sns_fetcher=sns_fetcher,
        feed_fetcher=FeedFetcher.from_config(config),
        billing=billing,
        providers=build_providers(config, sns_fetcher=sns_fetcher),
    )
    # Account mail refused for good goes through the bounce handler, as list mail's does.
    policy = BouncePolicy.from_config(config)
    readers.mailer.on_bounce = lambda reader_id, kind, reply, event_id: (
        events.account_mail_refused(reader_id, kind, reply, event_id,
                                    tokens=built.delivery_tokens, services=readers,
                                    policy=policy))
    # Read through ``built`` at call time, so a test that swaps ``billing`` swaps this too.
    readers.before_erasure = lambda reader: billing_privacy.before_erasure(
        built.billing, reader, utcnow())
    return built


def init_app(app: Flask) -> None:
    app.extensions[KEY] = build_services(app.config)


def services(app: Flask | None = None) -> Services:
    """The current (or given) app's adapters."""
    return (app or current_app).extensions[KEY]


def mail_setup() -> MailSetup:
    return services().mail


def reader_services() -> ReaderServices:
    return services().readers


def make_sender(app: Flask, *, worker: str | None = None, transport_factory=None) -> Sender:
    """A sender for this app's database, relays, signer and links."""
    config = app.config
    parts = services(app)
    with app.app_context():
        engine = db.engine
    composer = EditionComposer(engine=engine, config=dict(config), signer=parts.fast_signer,
                               tokens=parts.delivery_tokens, links=parts.readers.mailer.links)
    settings = SendSettings(
        worker_id=worker or worker_id(),
        batch_size=config["SEND_BATCH"],
        lease_seconds=config["LEASE_SECONDS"],
        max_attempts=config["MAX_ATTEMPTS"],
        max_age=timedelta(hours=config["MAX_AGE_HOURS"]),
        backoff_base=float(config["RETRY_BASE_SECONDS"]),
        soft_bounces=SoftBounceRule(config["SOFT_BOUNCE_LIMIT"],
                                    timedelta(days=config["SOFT_BOUNCE_WINDOW_DAYS"])),
    )
    kwargs = {"transport_factory": transport_factory} if transport_factory else {}
    return Sender(engine=engine, relays=parse_relays(dict(config)), composer=composer,
                  settings=settings, **kwargs)
