"""Verify and read the delivery webhooks of email providers (SES via SNS, Postmark, Mailgun,
SendGrid) into one kind of record, :class:`ProviderEvent`.

Contract, for every ``*_events`` function:

* Nothing is read before the request is authenticated. :class:`SignatureError` (the view answers
  401) means the request is not proven to come from the provider: missing or wrong signature or
  credentials, a stale timestamp, an SNS topic we did not subscribe to, a certificate or
  subscription URL outside AWS, or a body too broken to even find its signature in.
  :class:`PayloadError` (400) means it *is* authenticated but cannot be read.
* Event types we do not act on come back with kind ``"ignored"``, not as errors, so the provider
  is answered 2xx and stops retrying.
* ``event_id`` is the same each time the provider delivers the same event (retries included), so
  the caller can store it and drop replays. Mailgun signs only ``timestamp + token``, not the
  event: the caller should also refuse a Mailgun ``signature.token`` it has seen before.
* This module does no network I/O: the SNS signing certificate comes through an injected
  :class:`CertificateFetcher`, and the SNS ``SubscribeURL`` is returned for the caller to GET.
  Errors raised by the fetcher propagate unchanged (a transient outage, not a forgery: answer 5xx
  so SNS retries).
* A ``ValueError`` that is not a :class:`PayloadError` is our own misconfiguration (an empty
  secret, an unreadable SendGrid key): a 500, never the sender's fault.

Kinds: ``hard_bounce`` and ``complaint`` are what the caller suppresses; ``soft_bounce`` and
``deferred`` may be retried; ``delivered`` means accepted by the receiving server (not read).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Collection, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

__all__ = [
    "CertificateFetcher",
    "PayloadError",
    "ProviderEvent",
    "SignatureError",
    "clear_certificate_cache",
    "is_sns_url",
    "mailgun_events",
    "postmark_events",
    "sendgrid_events",
    "ses_events",
]

HARD_BOUNCE = "hard_bounce"
SOFT_BOUNCE = "soft_bounce"
COMPLAINT = "complaint"
DELIVERED = "delivered"
DEFERRED = "deferred"
IGNORED = "ignored"

TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{4,64}")
METADATA_FIELD = "nl_token"
HEADER_FIELD = "x-newsletter-token"
DETAIL_MAX = 500


@dataclass(frozen=True)
class ProviderEvent:
    """One thing a provider tells us about one recipient of one message."""

    provider: str  # "ses" | "postmark" | "mailgun" | "sendgrid"
    event_id: str  # stable across redeliveries of the same webhook
    kind: str  # hard_bounce | soft_bounce | complaint | delivered | deferred | ignored
    recipient: str | None  # lowercased address
    token: str | None  # our X-Newsletter-Token, None unless it matches TOKEN_RE
    occurred_at: datetime  # aware, UTC
    detail: str  # one line, at most 500 characters


class SignatureError(Exception):
    """Not proven to come from the provider (answer 401)."""


class PayloadError(ValueError):
    """Authenticated, but unreadable or unsupported (answer 400)."""


class CertificateFetcher(Protocol):
    def fetch(self, url: str) -> bytes:
        """Return the PEM at ``url``; only called for URLs that passed :func:`is_sns_url`."""
        ...


# --- small helpers -------------------------------------------------------------------------------


def _token(value: Any) -> str | None:
    if isinstance(value, str) and TOKEN_RE.fullmatch(value.strip()):
        return value.strip()
    return None


def _recipient(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    address = value.strip()
    # SES may copy a DSN's Final-Recipient, occasionally with a display name around it.
    if address.endswith(">") and "<" in address:
        address = address[address.rindex("<") + 1 : -1].strip()
    return address.lower() or None


def _detail(*parts: Any) -> str:
    text = " ".join(str(p) for p in parts if p not in (None, ""))
    return " ".join(text.split())[:DETAIL_MAX]


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return _now()
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return _aware(moment).astimezone(UTC)


def _epoch_time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _json(body: bytes, error: type[Exception]) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error("body is not JSON") from exc


def _check_fresh(timestamp: Any, max_age: int, now: datetime | None) -> None:
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not isinstance(timestamp, str) or not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureError("timestamp is missing or not a number")
    age = _aware(now).timestamp() - int(timestamp)
    if abs(age) > max_age:
        raise SignatureError(f"timestamp is {int(age)} s from now, outside ±{max_age} s")


# --- Amazon SES through SNS ----------------------------------------------------------------------

_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_SNS_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SNS_CONFIRMATION_KEYS = (
    "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
)
_SNS_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}

_CERT_CACHE: dict[str, x509.Certificate] = {}


def clear_certificate_cache() -> None:
    """Forget every SNS signing certificate fetched so far (the module-level cache)."""
    _CERT_CACHE.clear()


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
    if not cert.not_valid_before_utc <= _now() <= cert.not_valid_after_utc:
        raise SignatureError("SNS signing certificate is outside its validity period")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("SNS signing certificate does not hold an RSA key")
    try:
        key.verify(signature, to_sign, padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise SignatureError("SNS signature does not match") from exc


def _ses_token(mail: dict[str, Any]) -> str | None:
    headers = mail.get("headers")
    if not isinstance(headers, list):
        return None  # "include original headers" is off
    for header in headers:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == HEADER_FIELD:
            return _token(header.get("value"))
    return None


def _ses_recipients(items: Any, field: str | None = None) -> list[tuple[Any, dict[str, Any]]]:
    """(address, entry) pairs from a list of dicts keyed by ``field`` or of plain strings."""
    if not isinstance(items, list):
        return []
    if field is None:
        return [(item, {}) for item in items]
    return [(item.get(field), item) for item in items if isinstance(item, dict)]


def _ses_notification(sns: dict[str, Any]) -> list[ProviderEvent]:
    notification = _json(sns["Message"].encode(), PayloadError)
    if not isinstance(notification, dict):
        raise PayloadError("SES notification is not a JSON object")
    kind_name = notification.get("eventType") or notification.get("notificationType")
    mail = notification.get("mail") if isinstance(notification.get("mail"), dict) else {}
    token = _ses_token(mail)
    message_id = sns["MessageId"]
    sent_at = _iso_time(sns["Timestamp"]) or _now()

    def section(name: str) -> dict[str, Any]:
        value = notification.get(name)
        if not isinstance(value, dict):
            raise PayloadError(f"SES {kind_name} notification lacks its {name!r} object")
        return value

    def per_recipient(pairs, kind, when, detail_of) -> list[ProviderEvent]:
        return [
            ProviderEvent("ses", f"{message_id}:{index}", kind, _recipient(address), token,
                          when, detail_of(entry))
            for index, (address, entry) in enumerate(pairs)
        ]

    if kind_name == "Bounce":
        bounce = section("bounce")
        bounce_type = bounce.get("bounceType")
        kind = HARD_BOUNCE if bounce_type == "Permanent" else SOFT_BOUNCE
        return per_recipient(
            _ses_recipients(bounce.get("bouncedRecipients"), "emailAddress"),
            kind,
            _iso_time(bounce.get("timestamp")) or sent_at,
            lambda r: _detail(f"{bounce_type}/{bounce.get('bounceSubType')}:", r.get("status"),
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
            _iso_time(complaint.get("timestamp")) or sent_at,
            lambda r: _detail("Complaint:", feedback or "no feedback type",
                              complaint.get("complaintSubType")),
        )
    if kind_name == "Delivery":
        delivery = section("delivery")
        return per_recipient(
            _ses_recipients(delivery.get("recipients")),
            DELIVERED,
            _iso_time(delivery.get("timestamp")) or sent_at,
            lambda r: _detail("Delivery:", delivery.get("smtpResponse")),
        )
    if kind_name == "DeliveryDelay":
        delay = section("deliveryDelay")
        return per_recipient(
            _ses_recipients(delay.get("delayedRecipients"), "emailAddress"),
            DEFERRED,
            _iso_time(delay.get("timestamp")) or sent_at,
            lambda r: _detail(f"DeliveryDelay/{delay.get('delayType')}:", r.get("status"),
                              r.get("diagnosticCode")),
        )
    return [ProviderEvent("ses", message_id, IGNORED, None, token, sent_at,
                          _detail("SES", kind_name or "unknown notification"))]


def ses_events(
    body: bytes,
    *,
    topic_arns: Collection[str],
    fetcher: CertificateFetcher,
    cert_cache: MutableMapping[str, x509.Certificate] | None = None,
) -> tuple[list[ProviderEvent], str | None]:
    """Verify an SNS HTTP(S) delivery and read the SES notification or event it carries.

    The signature (``SignatureVersion`` 1 = SHA1withRSA, 2 = SHA256withRSA) is checked over the
    AWS string to sign, with the certificate at ``SigningCertURL`` — fetched only once the URL is
    ``https://sns.<region>.amazonaws.com[.cn]/….pem`` and the ``TopicArn`` is in ``topic_arns``,
    then kept in ``cert_cache`` (default: the module's, see :func:`clear_certificate_cache`).
    Raw message delivery must be off on the subscription: the SNS envelope is what is signed.

    Returns ``([], SubscribeURL)`` for a SubscriptionConfirmation (the caller GETs it),
    ``([], None)`` for an UnsubscribeConfirmation, and ``(events, None)`` for a Notification:
    one event per recipient, ``event_id`` = SNS ``MessageId`` + ``":"`` + index in the list.
    """
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError("body is not an SNS message") from exc
    if not isinstance(message, dict):
        raise SignatureError("body is not an SNS message")
    _verify_sns(message, topic_arns, fetcher, _CERT_CACHE if cert_cache is None else cert_cache)

    if message["Type"] == "SubscriptionConfirmation":
        return [], message["SubscribeURL"]
    if message["Type"] == "UnsubscribeConfirmation":
        return [], None
    return _ses_notification(message), None


# --- Postmark ------------------------------------------------------------------------------------

_POSTMARK_BOUNCE_KINDS = {
    # The address is gone or refused for good.
    "HardBounce": HARD_BOUNCE,
    "BadEmailAddress": HARD_BOUNCE,
    "ManuallyDeactivated": HARD_BOUNCE,  # Postmark will not send to it any more
    # Not delivered this time; the address itself may be fine.
    "Transient": SOFT_BOUNCE,
    "SoftBounce": SOFT_BOUNCE,
    "DnsError": SOFT_BOUNCE,
    "Blocked": SOFT_BOUNCE,  # the receiver blocked the sender or content, not the address
    "SpamNotification": SOFT_BOUNCE,  # filtered as spam by the receiver; no reader complained
    "VirusNotification": SOFT_BOUNCE,
    "DMARCPolicy": SOFT_BOUNCE,  # our authentication failed: worth seeing, not suppressing
    "Unknown": SOFT_BOUNCE,
    # The reader acted.
    "SpamComplaint": COMPLAINT,
    "Unsubscribe": COMPLAINT,  # an emailed "remove me": honoured like a complaint
}
# Everything else (AutoResponder, AddressChange, Subscribe, OpenRelayTest, ChallengeVerification,
# Unconfirmed, SMTPApiError, InboundError, TemplateRenderingFailed, …) is ignored.

_POSTMARK_SUPPRESSION_KINDS = {"HardBounce": HARD_BOUNCE, "SpamComplaint": COMPLAINT}


def _basic_auth_ok(authorization: str | None, username: str, password: str) -> bool:
    if not authorization:
        return False
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, secret = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return False
    user_ok = hmac.compare_digest(user, username.encode())
    secret_ok = hmac.compare_digest(secret, password.encode())
    return bool(sep) and user_ok and secret_ok


def postmark_events(
    body: bytes, authorization: str | None, *, username: str, password: str
) -> list[ProviderEvent]:
    """Check the webhook's HTTP Basic credentials, then read its one record.

    ``event_id``: the bounce ``ID`` for Bounce and SpamComplaint records (one ID space);
    ``delivery:<MessageID>:<recipient>`` for Delivery and ``subscription:<recipient>:<ChangedAt>``
    for SubscriptionChange, which carry no ID of their own.
    """
    if not username or not password:
        raise ValueError("Postmark webhook credentials are not configured")
    if not _basic_auth_ok(authorization, username, password):
        raise SignatureError("missing or wrong HTTP Basic credentials")
    record = _json(body, PayloadError)
    if not isinstance(record, dict):
        raise PayloadError("Postmark webhook body is not a JSON object")

    record_type = record.get("RecordType")
    if record_type is None and "BouncedAt" in record:
        record_type = "Bounce"  # bounce hooks set up before RecordType existed
    metadata = record.get("Metadata") if isinstance(record.get("Metadata"), dict) else {}
    token = _token(metadata.get(METADATA_FIELD))

    def event(event_id: Any, kind: str, recipient: Any, when: Any, detail: str) -> ProviderEvent:
        if event_id in (None, ""):
            raise PayloadError(f"Postmark {record_type} record has no identifier")
        return ProviderEvent("postmark", str(event_id), kind, _recipient(recipient), token,
                             _iso_time(when) or _now(), detail)

    if record_type in ("Bounce", "SpamComplaint"):
        bounce_type = record.get("Type")
        kind = COMPLAINT if record_type == "SpamComplaint" else _POSTMARK_BOUNCE_KINDS.get(
            bounce_type, IGNORED)
        return [event(record.get("ID"), kind, record.get("Email"), record.get("BouncedAt"),
                      _detail(f"{bounce_type}:", record.get("Description"),
                              record.get("Details")))]
    recipient = _recipient(record.get("Recipient"))
    if record_type == "Delivery":
        message_id = record.get("MessageID")
        return [event(message_id and f"delivery:{message_id}:{recipient}", DELIVERED, recipient,
                      record.get("DeliveredAt"), _detail("Delivery:", record.get("Details")))]
    if record_type == "SubscriptionChange":
        # Broadcast streams report complaints only this way.
        reason = record.get("SuppressionReason")
        kind = (_POSTMARK_SUPPRESSION_KINDS.get(reason, IGNORED)
                if record.get("SuppressSending") is True else IGNORED)
        changed_at = record.get("ChangedAt")
        return [event(recipient and changed_at and f"subscription:{recipient}:{changed_at}",
                      kind, recipient, changed_at,
                      _detail("SubscriptionChange:",
                              "suppressed" if record.get("SuppressSending") else "reactivated",
                              reason, record.get("Origin")))]
    ident = record.get("ID") or record.get("MessageID")
    event_id = (f"{record_type}:{ident}:{recipient}" if ident
                else "sha256:" + hashlib.sha256(body).hexdigest())
    return [event(event_id, IGNORED,
                  recipient or record.get("Email"), record.get("ReceivedAt"),
                  _detail("Postmark", record_type or "record without RecordType"))]


# --- Mailgun -------------------------------------------------------------------------------------

_MAILGUN_KINDS = {"complained": COMPLAINT, "delivered": DELIVERED}


def mailgun_events(
    body: bytes, *, signing_key: str, max_age: int = 300, now: datetime | None = None
) -> list[ProviderEvent]:
    """Verify a JSON webhook (``signature``: hex HMAC-SHA256 of ``timestamp + token`` under the
    webhook signing key, timestamp within ``max_age`` seconds of ``now``) and read ``event-data``.

    ``failed`` is a hard bounce when ``severity`` is ``permanent`` (this includes Mailgun refusing
    an address on its own suppression lists) and a soft bounce otherwise. ``event_id`` is
    ``event-data.id``. The signature does not cover the event: see the module docstring.
    """
    if not signing_key:
        raise ValueError("Mailgun webhook signing key is not configured")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError("body is not a JSON Mailgun webhook") from exc
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict):
        raise SignatureError("Mailgun signature is missing")
    timestamp, nonce, given = (signature.get(k) for k in ("timestamp", "token", "signature"))
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not all(isinstance(v, str) and v for v in (timestamp, nonce, given)):
        raise SignatureError("Mailgun signature is incomplete")
    expected = hmac.new(signing_key.encode(), f"{timestamp}{nonce}".encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest().encode(), given.strip().lower().encode()):
        raise SignatureError("Mailgun signature does not match")
    _check_fresh(timestamp, max_age, now)

    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise PayloadError("Mailgun webhook lacks event-data")
    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise PayloadError("Mailgun event-data has no id")
    name = data.get("event")
    severity = data.get("severity")
    if name == "failed":
        kind = HARD_BOUNCE if severity == "permanent" else SOFT_BOUNCE
    else:
        kind = _MAILGUN_KINDS.get(name, IGNORED)
    variables = data.get("user-variables") if isinstance(data.get("user-variables"), dict) else {}
    status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
    return [ProviderEvent(
        "mailgun", event_id, kind, _recipient(data.get("recipient")),
        _token(variables.get(METADATA_FIELD)),
        _epoch_time(data.get("timestamp")) or _now(),
        _detail(f"{name}{'/' + severity if severity else ''}:", data.get("reason"),
                status.get("code"), status.get("message") or status.get("description")),
    )]


# --- SendGrid ------------------------------------------------------------------------------------

_SENDGRID_KINDS = {"deferred": DEFERRED, "spamreport": COMPLAINT, "delivered": DELIVERED}
_SENDGRID_HARD_DROPS = {"Bounced Address", "Invalid"}
_SENDGRID_KEYS: dict[str, ec.EllipticCurvePublicKey] = {}


def _sendgrid_key(configured: str) -> ec.EllipticCurvePublicKey:
    key = _SENDGRID_KEYS.get(configured)
    if key is not None:
        return key
    text = configured.strip()
    try:
        if "-----BEGIN" in text:
            loaded = serialization.load_pem_public_key(text.encode())
        else:
            loaded = serialization.load_der_public_key(
                base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ValueError("SendGrid verification key is neither base64 DER nor PEM") from exc
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise ValueError("SendGrid verification key is not an elliptic-curve key")
    _SENDGRID_KEYS[configured] = loaded
    return loaded


def _sendgrid_kind(event: dict[str, Any]) -> str:
    name = event.get("event")
    if name == "bounce":
        return SOFT_BOUNCE if event.get("type") == "blocked" else HARD_BOUNCE
    if name == "dropped":
        return HARD_BOUNCE if event.get("reason") in _SENDGRID_HARD_DROPS else IGNORED
    return _SENDGRID_KINDS.get(name, IGNORED)


def sendgrid_events(
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    public_key_pem_or_b64: str,
    max_age: int = 300,
    now: datetime | None = None,
) -> list[ProviderEvent]:
    """Verify a Signed Event Webhook post and read its events.

    ``signature`` and ``timestamp`` are the ``X-Twilio-Email-Event-Webhook-Signature`` (base64
    DER ECDSA) and ``-Timestamp`` headers; the signature is ECDSA P-256/SHA-256 over the timestamp
    followed by the raw body. ``event_id`` is ``sg_event_id``.
    """
    key = _sendgrid_key(public_key_pem_or_b64)
    if not signature or not timestamp:
        raise SignatureError("SendGrid signature headers are missing")
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, timestamp.strip().encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise SignatureError("SendGrid signature does not match") from exc
    _check_fresh(timestamp.strip(), max_age, now)

    events = _json(body, PayloadError)
    if not isinstance(events, list):
        raise PayloadError("SendGrid webhook body is not a JSON array")
    return list(_sendgrid_records(events))


def _sendgrid_records(events: Iterable[Any]) -> Iterable[ProviderEvent]:
    for event in events:
        if not isinstance(event, dict):
            raise PayloadError("SendGrid event is not a JSON object")
        event_id = event.get("sg_event_id")
        if not isinstance(event_id, str) or not event_id:
            raise PayloadError("SendGrid event has no sg_event_id")
        yield ProviderEvent(
            "sendgrid", event_id, _sendgrid_kind(event), _recipient(event.get("email")),
            _token(event.get(METADATA_FIELD)),
            _epoch_time(event.get("timestamp")) or _now(),
            _detail(f"{event.get('event')}{'/' + event['type'] if event.get('type') else ''}:",
                    event.get("status"), event.get("reason") or event.get("response")),
        )
