"""The email providers whose delivery webhooks we read, one module each, all behind
:class:`~newsletter.delivery.providers.base.WebhookProvider`.

:func:`build_providers` makes the ones whose settings are present; a provider that is not
configured is absent, and its hook answers 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from newsletter.delivery.providers.base import (
    CertificateFetcher,
    PayloadError,
    SignatureError,
    WebhookProvider,
    WebhookResult,
)
from newsletter.delivery.providers.mailgun import MailgunProvider
from newsletter.delivery.providers.postmark import PostmarkProvider
from newsletter.delivery.providers.sendgrid import SendgridProvider
from newsletter.delivery.providers.ses import SesProvider

__all__ = [
    "CertificateFetcher",
    "MailgunProvider",
    "PayloadError",
    "PostmarkProvider",
    "SendgridProvider",
    "SesProvider",
    "SignatureError",
    "WebhookProvider",
    "WebhookResult",
    "build_providers",
]


def build_providers(config: Mapping[str, Any], *,
                    sns_fetcher: CertificateFetcher) -> dict[str, WebhookProvider]:
    """The configured providers by name: ``ses`` with ``SES_TOPIC_ARNS`` (certificates through
    ``sns_fetcher``), ``postmark`` with ``POSTMARK_WEBHOOK_USER`` and
    ``POSTMARK_WEBHOOK_PASSWORD``, ``mailgun`` with ``MAILGUN_SIGNING_KEY``, ``sendgrid`` with
    ``SENDGRID_PUBLIC_KEY``. An empty setting counts as absent."""
    providers: list[WebhookProvider] = []
    if arns := config.get("SES_TOPIC_ARNS"):
        providers.append(SesProvider(topic_arns=frozenset(arns), fetcher=sns_fetcher))
    user, password = config.get("POSTMARK_WEBHOOK_USER"), config.get("POSTMARK_WEBHOOK_PASSWORD")
    if user and password:
        providers.append(PostmarkProvider(username=user, password=password))
    if key := config.get("MAILGUN_SIGNING_KEY"):
        providers.append(MailgunProvider(signing_key=key))
    if key := config.get("SENDGRID_PUBLIC_KEY"):
        providers.append(SendgridProvider(public_key=key))
    return {provider.name: provider for provider in providers}
