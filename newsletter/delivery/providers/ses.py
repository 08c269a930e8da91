"""Amazon SES notifications and events, delivered through SNS over HTTP(S).

The signature (``SignatureVersion`` 1 = SHA1withRSA, 2 = SHA256withRSA) is checked over the AWS
string to sign, with the certificate at ``SigningCertURL`` — fetched only once the URL is
``https://sns.<region>.amazonaws.com[.cn]/….pem`` and the ``TopicArn`` is one we subscribed to,
then kept by the :class:`SesProvider` that fetched it. Raw message delivery must be off on the
subscription: the SNS envelope is what is signed. The general contract is in
:mod:`newsletter.delivery.providers.base`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from newsletter.delivery.events import (
    COMPLAINT,
    DEFERRED,
    DELIVERED,
    HARD_BOUNCE,
    IGNORED,
    SOFT_BOUNCE,
    Event,
)
from newsletter.delivery.providers.base import (
    HEADER_FIELD,
    CertificateFetcher,
    PayloadError,
    SignatureError,
    WebhookResult,
    iso_time,
    one_line,
    parse_json,
    recipient_address,
    reported_token,
    utc_now,
)
from newsletter.validation import load_json

__all__ = ["SesProvider", "is_sns_url", "ses_events"]

_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_SNS_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SNS_CONFIRMATION_KEYS = (
    "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
)
_SNS_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


class SesProvider:
    """``/hooks/ses``: SES through SNS, for the topics in ``topic_arns``.

    Holds the SNS signing certificates fetched so far, by URL, for the life of the instance
    (one per app): SNS signs every message with the same few certificates.
    """

    name = "ses"

    def __init__(self, *, topic_arns: Collection[str], fetcher: CertificateFetcher) -> None:
        self.topic_arns = topic_arns
        self.fetcher = fetcher
        self._certificates: dict[str, x509.Certificate] = {}

    def clear_certificate_cache(self) -> None:
        """Forget every SNS signing certificate fetched so far."""
        self._certificates.clear()

    def parse(self, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """See :func:`ses_events`; the SNS headers are not used, the body carries everything."""
        events, subscribe_url = ses_events(body, topic_arns=self.topic_arns,
                                           fetcher=self.fetcher, cert_cache=self._certificates)
        return WebhookResult(events, subscribe_url)


def is_sns_url(url: Any) -> bool:
    """True for ``https://sns.<region>.amazonaws.com[.cn]/…`` and nothing else: no user info, no
    port other than 443, no backslash or whitespace tricks."""
    if not isinstance(url, str) or not url.isascii() or any(c in url for c in "\\ \t\r\n"):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and "@" not in parts.netloc
        and port in (None, 443)
        and bool(parts.hostname and _SNS_HOST.fullmatch(parts.hostname))
    )


def ses_events(
    body: bytes,
    *,
    topic_arns: Collection[str],
    fetcher: CertificateFetcher,
    cert_cache: MutableMapping[str, x509.Certificate] | None = None,
) -> tuple[list[Event], str | None]:
    """Verify an SNS HTTP(S) delivery and read the SES notification or event it carries.

    The signing certificate is looked up in, and added to, ``cert_cache``; without one it is
    fetched for every call (:class:`SesProvider` passes its own).

    Returns ``([], SubscribeURL)`` for a SubscriptionConfirmation (the caller GETs it),
    ``([], None)`` for an UnsubscribeConfirmation, and ``(events, None)`` for a Notification:
    one event per recipient, ``event_id`` = SNS ``MessageId`` + ``":"`` + index in the list.
    """
    try:
        message = load_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError("body is not an SNS message") from exc
    if not isinstance(message, dict):
        raise SignatureError("body is not an SNS message")
    _verify_sns(message, topic_arns, fetcher, {} if cert_cache is None else cert_cache)

    if message["Type"] == "SubscriptionConfirmation":
        return [], message["SubscribeURL"]
    if message["Type"] == "UnsubscribeConfirmation":
        return [], None
    return _ses_notification(message), None


# --- verification --------------------------------------------------------------------------------


def _sns_string_to_sign(message: dict[str, Any]) -> bytes:
    kind = message.get("Type")
    if kind == "Notification":
        keys = _SNS_NOTIFICATION_KEYS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        keys = _SNS_CONFIRMATION_KEYS
    else:
        raise SignatureError(f"unknown SNS message type {kind!r}")
    lines = []
    for key in keys:
        value = message.get(key)
        if value is None and key == "Subject":
            continue  # the one optional field: left out of the string when absent
        if not isinstance(value, str):
            raise SignatureError(f"SNS message lacks {key}")
        lines.append(f"{key}\n{value}\n")
    return "".join(lines).encode()


def _sns_certificate(
    url: str, fetcher: CertificateFetcher, cache: MutableMapping[str, x509.Certificate]
) -> x509.Certificate:
    cert = cache.get(url)
    if cert is None:
        pem = fetcher.fetch(url)
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise SignatureError("SigningCertURL did not return a PEM certificate") from exc
        cache[url] = cert
    return cert


def _verify_sns(
    message: dict[str, Any],
    topic_arns: Collection[str],
    fetcher: CertificateFetcher,
    cache: MutableMapping[str, x509.Certificate],
) -> None:
    algorithm = _SNS_HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise SignatureError("unsupported SNS SignatureVersion")
    topic_arn = message.get("TopicArn")
    if not isinstance(topic_arn, str) or topic_arn not in topic_arns:
        raise SignatureError("TopicArn is not one we subscribed to")
    cert_url = message.get("SigningCertURL")
    if not is_sns_url(cert_url) or not urlsplit(cert_url).path.endswith(".pem"):
        raise SignatureError("SigningCertURL is not an https SNS URL")
    if message.get("Type") == "SubscriptionConfirmation" and not is_sns_url(
        message.get("SubscribeURL")
    ):
        raise SignatureError("SubscribeURL is not an https SNS URL")
    to_sign = _sns_string_to_sign(message)
    try:
        signature = base64.b64decode(message.get("Signature") or "", validate=True)
    except (binascii.Error, TypeError) as exc:
        raise SignatureError("SNS Signature is not base64") from exc
    if not signature:
        raise SignatureError("SNS Signature is missing")

    cert = _sns_certificate(cert_url, fetcher, cache)
    if not cert.not_valid_before_utc <= utc_now() <= cert.not_valid_after_utc:
        raise SignatureError("SNS signing certificate is outside its validity period")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("SNS signing certificate does not hold an RSA key")
    try:
        key.verify(signature, to_sign, padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise SignatureError("SNS signature does not match") from exc


# --- reading the notification --------------------------------------------------------------------


def _ses_token(mail: dict[str, Any]) -> str | None:
    headers = mail.get("headers")
    if not isinstance(headers, list):
        return None  # "include original headers" is off
    for header in headers:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == HEADER_FIELD:
            return reported_token(header.get("value"))
    return None


def _ses_recipients(items: Any, field: str | None = None) -> list[tuple[Any, dict[str, Any]]]:
    """(address, entry) pairs from a list of dicts keyed by ``field`` or of plain strings."""
    if not isinstance(items, list):
        return []
    if field is None:
        return [(item, {}) for item in items]
    return [(item.get(field), item) for item in items if isinstance(item, dict)]


def _ses_notification(sns: dict[str, Any]) -> list[Event]:
    notification = parse_json(sns["Message"].encode(), PayloadError)
    if not isinstance(notification, dict):
        raise PayloadError("SES notification is not a JSON object")
    kind_name = notification.get("eventType") or notification.get("notificationType")
    mail = notification.get("mail") if isinstance(notification.get("mail"), dict) else {}
    token = _ses_token(mail)
    message_id = sns["MessageId"]
    sent_at = iso_time(sns["Timestamp"]) or utc_now()

    def section(name: str) -> dict[str, Any]:
        value = notification.get(name)
        if not isinstance(value, dict):
            raise PayloadError(f"SES {kind_name} notification lacks its {name!r} object")
        return value

    def per_recipient(pairs, kind, when, detail_of) -> list[Event]:
        return [
            Event(source="ses", event_id=f"{message_id}:{index}", kind=kind,
                  recipient=recipient_address(address), token=token, occurred_at=when,
                  detail=detail_of(entry))
            for index, (address, entry) in enumerate(pairs)
        ]

    if kind_name == "Bounce":
        bounce = section("bounce")
        bounce_type = bounce.get("bounceType")
        kind = HARD_BOUNCE if bounce_type == "Permanent" else SOFT_BOUNCE
        return per_recipient(
            _ses_recipients(bounce.get("bouncedRecipients"), "emailAddress"),
            kind,
            iso_time(bounce.get("timestamp")) or sent_at,
            lambda r: one_line(f"{bounce_type}/{bounce.get('bounceSubType')}:", r.get("status"),
                               r.get("diagnosticCode")),
        )
    if kind_name == "Complaint":
        complaint = section("complaint")
        feedback = complaint.get("complaintFeedbackType")
        # ARF "not-spam" is a reader saying the opposite of a complaint.
        kind = IGNORED if feedback == "not-spam" else COMPLAINT
        return per_recipient(
            _ses_recipients(complaint.get("complainedRecipients"), "emailAddress"),
            kind,
            iso_time(complaint.get("timestamp")) or sent_at,
            lambda r: one_line("Complaint:", feedback or "no feedback type",
                               complaint.get("complaintSubType")),
        )
    if kind_name == "Delivery":
        delivery = section("delivery")
        return per_recipient(
            _ses_recipients(delivery.get("recipients")),
            DELIVERED,
            iso_time(delivery.get("timestamp")) or sent_at,
            lambda r: one_line("Delivery:", delivery.get("smtpResponse")),
        )
    if kind_name == "DeliveryDelay":
        delay = section("deliveryDelay")
        return per_recipient(
            _ses_recipients(delay.get("delayedRecipients"), "emailAddress"),
            DEFERRED,
            iso_time(delay.get("timestamp")) or sent_at,
            lambda r: one_line(f"DeliveryDelay/{delay.get('delayType')}:", r.get("status"),
                               r.get("diagnosticCode")),
        )
    return [Event(source="ses", event_id=message_id, kind=IGNORED, recipient=None, token=token,
                  occurred_at=sent_at, detail=one_line("SES", kind_name or "unknown notification"))]
