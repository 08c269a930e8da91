"""Parse bounces (RFC 3464 DSNs) and complaints (RFC 5965 ARF) that arrive as email into
:class:`BounceReport` records.

A plain library: it parses and classifies (with :func:`classify_dsn_status`), and knows
nothing of deliveries or the database. The caller maps each :class:`BounceReport` to a delivery
through ``token`` (falling back to ``recipient`` + ``original_message_id``) and drops replays by
``(report_id, recipient)``: one DSN yields a report per recipient block, all with the same
``report_id``.

Contract:

* :func:`parse_report` accepts only ``multipart/report`` messages with
  ``report-type=delivery-status`` (DSN) or ``report-type=feedback-report`` (ARF); when the
  parameter is missing, the report part present decides. Anything else - a personal
  reply, a vacation notice, a non-standard plain-text bounce - raises
  :class:`MalformedReport`: guessing a bounce from free text risks suppressing good readers.
* Every string in a report is one line (no CR, LF or other control character), decoded from
  RFC 2047 where encoded, and capped; ``diagnostic`` is at most 500 characters. A token is
  returned only if it matches ``events.REPORTED_TOKEN_RE`` (``[A-Za-z0-9_-]{4,64}``) exactly.
* Input is untrusted. The MIME structure is parsed with ``compat32``, which never builds
  header objects: the ``email.policy.default`` header parser needs seconds for a 100 KB
  ``Content-Type`` and raises ``RecursionError`` on deeply nested comments. The header values
  used are cut to 2,048 characters and then decoded with ``email.policy.default``'s
  unstructured-header parser, with ``compat32``'s ``decode_header`` as the fallback when it
  raises, and the raw text as the last resort.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import quopri
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value, getaddresses

from newsletter.delivery.events import (
    COMPLAINT,
    DETAIL_MAX,
    REPORTED_TOKEN_RE,
    UNKNOWN,
)
from newsletter.errors import Invalid
from newsletter.mail.policy import classify_dsn_status, normalise_status

__all__ = ["BounceReport", "MalformedReport", "parse_report"]

VERP_RE = re.compile(rf"(?<![A-Za-z0-9._%+=-])(?i:bounces)\+({REPORTED_TOKEN_RE.pattern})@")
DIAGNOSTIC_MAX = DETAIL_MAX
_RAW_CAP = 2048  # characters of any header value we look at
_ID_MAX = 255
_ACTION_MAX = 32

# Control characters, line/paragraph separators, zero-width and bidi controls.
_UNSAFE_CHARS = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_ADDRESS_RE = re.compile(r"[^\s@<>,;:()\[\]\"\\]{1,64}@[^\s@<>,;:()\[\]\"\\]{1,253}")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")

_COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
_ADDRESS_TYPES = frozenset({"rfc822", "utf-8"})
_OWN_RECIPIENT_HEADERS = ("to", "delivered-to", "x-original-to", "envelope-to")
_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_FEEDBACK_TYPE = "message/feedback-report"
_ORIGINAL_TYPES = frozenset({
    "message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers",
    "message/global-headers",
})
_ENCODED = frozenset({"base64", "quoted-printable"})

_UNSTRUCTURED = email_policy.default.header_factory


@dataclass(frozen=True, slots=True)
class BounceReport:
    """What one DSN recipient block or one ARF report says about one recipient."""

    kind: str  # hard_bounce | soft_bounce | deferred | complaint | delivered | unknown
    token: str | None  # our VERP / X-Newsletter-Token token; None unless REPORTED_TOKEN_RE fits
    recipient: str | None  # lowercased address
    status: str | None  # DSN Status, normalised ("5.1.1"); None if absent or unreadable
    action: str | None  # DSN Action, lowercased
    diagnostic: str | None  # one line, at most 500 characters
    original_message_id: str | None  # Message-ID of the attached original, brackets kept
    report_id: str  # the report's Message-ID, else the hex SHA-256 of its raw bytes


class MalformedReport(Invalid, ValueError):
    """The message is not a DSN or an ARF report, or too broken to read; the text says why."""


# --- parsing -------------------------------------------------------------------------------------


def parse_report(raw: bytes) -> list[BounceReport]:
    """One :class:`BounceReport` per recipient block of a DSN, or one for an ARF report.

    Raises :class:`MalformedReport` for an empty or unreadable message, a message that is
    not ``multipart/report``, a report type other than delivery-status or feedback-report,
    and a report without its machine-readable part or without any recipient block.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"parse_report needs bytes, not {type(raw).__name__}")
    raw = bytes(raw)
    if not raw.strip():
        raise MalformedReport("empty message")
    try:
        msg = message_from_bytes(raw, policy=email_policy.compat32)
        return _parse(msg, raw)
    except MalformedReport:
        raise
    except Exception as exc:  # a hostile message may trip any corner of the email package
        raise MalformedReport(f"unreadable message ({type(exc).__name__})") from exc


def _parse(msg: Message, raw: bytes) -> list[BounceReport]:
    ctype = msg.get_content_type()
    if ctype != "multipart/report":
        raise MalformedReport(
            f"not a DSN or ARF report: the message is {ctype}, not multipart/report "
            "(non-standard plain-text bounces are not read)")
    parts = [p for p in msg.get_payload() if isinstance(p, Message)] if msg.is_multipart() else []
    report_type = _report_type(msg)
    if not report_type:
        if any(p.get_content_type() == _FEEDBACK_TYPE for p in parts):
            report_type = "feedback-report"
        elif any(p.get_content_type() in _STATUS_TYPES for p in parts):
            report_type = "delivery-status"
    original = next((p for p in parts if p.get_content_type() in _ORIGINAL_TYPES), None)
    original_headers = _fields(_original_headers(original)) if original is not None else {}
    own_id = _message_id(_fields(msg.raw_items()).get("message-id"))
    report_id = own_id or hashlib.sha256(raw).hexdigest()
    original_id = _message_id(original_headers.get("message-id"))
    if report_type == "delivery-status":
        return _dsn_reports(msg, parts, original_headers, original_id, report_id)
    if report_type == "feedback-report":
        return [_arf_report(msg, parts, original_headers, original_id, report_id)]
    raise MalformedReport(
        f"not a DSN or ARF report: multipart/report with report-type={report_type or 'missing'!r}")


def _dsn_reports(msg: Message, parts: list[Message], original: dict[str, str],
                 original_id: str | None, report_id: str) -> list[BounceReport]:
    status_part = next((p for p in parts if p.get_content_type() in _STATUS_TYPES), None)
    if status_part is None:
        raise MalformedReport("delivery-status report without a message/delivery-status part")
    blocks = [_fields(items) for items in _report_blocks(status_part)]
    per_message = [b for b in blocks if not _is_recipient_block(b)]
    recipients = [b for b in blocks if _is_recipient_block(b)]
    if not recipients:
        raise MalformedReport("delivery-status part has no recipient block (truncated?)")
    echoed = [b.get("x-postfix-sender") for b in per_message]  # Postfix echoes the sender
    token = _token(msg, original, echoed)
    reports = []
    for block in recipients:
        action = _text(block.get("action"), _ACTION_MAX).lower() or None
        status_field = block.get("status")
        status = normalise_status(_text(status_field, 64)) if status_field else None
        diagnostic = _text(block.get("diagnostic-code"), DIAGNOSTIC_MAX) or None
        recipient = (_dsn_address(block.get("original-recipient"))
                     or _dsn_address(block.get("final-recipient")))
        reports.append(BounceReport(
            kind=classify_dsn_status(action, status, diagnostic=diagnostic), token=token,
            recipient=recipient, status=status, action=action, diagnostic=diagnostic,
            original_message_id=original_id, report_id=report_id))
    return reports


def _arf_report(msg: Message, parts: list[Message], original: dict[str, str],
                original_id: str | None, report_id: str) -> BounceReport:
    feedback_part = next((p for p in parts if p.get_content_type() == _FEEDBACK_TYPE), None)
    if feedback_part is None:
        raise MalformedReport("feedback report without a message/feedback-report part")
    fields: dict[str, str] = {}
    for items in _report_blocks(feedback_part):
        for name, value in _fields(items).items():
            fields.setdefault(name, value)
    feedback_type = _text(fields.get("feedback-type"), 40).lower()
    user_agent = _text(fields.get("user-agent"), 200)
    diagnostic = f"feedback-type={feedback_type or 'missing'}"
    if user_agent:
        diagnostic += f"; user-agent={user_agent}"
    recipient = _address(_text(fields.get("original-rcpt-to"), 320))
    if recipient is None and original.get("to"):
        addresses = getaddresses([_text(original["to"], _RAW_CAP)])
        recipient = next((a for a in (_address(addr) for _, addr in addresses) if a), None)
    return BounceReport(
        kind=COMPLAINT if feedback_type in _COMPLAINT_TYPES else UNKNOWN,
        token=_token(msg, original, [fields.get("original-mail-from")]),
        recipient=recipient, status=None, action=None, diagnostic=diagnostic[:DIAGNOSTIC_MAX],
        original_message_id=original_id, report_id=report_id)


def _token(msg: Message, original: dict[str, str], echoed: Iterable[str | None]) -> str | None:
    """The first valid token: the report's own recipient headers, our header in the original,
    the original's Return-Path, then an envelope sender the report echoes."""
    own = [(name.lower(), value) for name, value in msg.raw_items()]
    for wanted in _OWN_RECIPIENT_HEADERS:
        for name, value in own:
            if name == wanted and (token := _verp_token(value)):
                return token
    candidate = _text(original.get("x-newsletter-token"), 80)
    if REPORTED_TOKEN_RE.fullmatch(candidate):
        return candidate
    for value in (original.get("return-path"), *echoed):
        if token := _verp_token(value):
            return token
    return None


def _verp_token(value: str | None) -> str | None:
    match = VERP_RE.search(_text(value, _RAW_CAP))
    return match.group(1) if match else None


def _is_recipient_block(block: dict[str, str]) -> bool:
    return any(k in block for k in ("final-recipient", "original-recipient", "action"))


def _report_type(msg: Message) -> str:
    value = msg.get_param("report-type")
    if isinstance(value, tuple):
        value = collapse_rfc2231_value(value)
    return _text(value if isinstance(value, str) else None, 64).lower()


# --- reading MIME parts and header values ---------------------------------------------------------


def _report_blocks(part: Message) -> list[list[tuple[str, str]]]:
    """The field blocks of a delivery-status or feedback-report part, however it was parsed."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _text_blocks(_decoded_body(part))
    blocks = []
    cte = _transfer_encoding(part)
    for sub in payload:
        if not isinstance(sub, Message) or sub.is_multipart():
            continue
        items, rest = list(sub.raw_items()), _body_bytes(sub)
        if not items and cte in _ENCODED:
            rest = _undo_transfer_encoding(rest, cte)
        if items:
            blocks.append(items)
        if rest.strip():
            blocks.extend(_text_blocks(rest.decode("utf-8", "replace")))
    return blocks


def _original_headers(part: Message) -> list[tuple[str, str]]:
    """The header fields of the attached original message (or of its headers-only copy)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        sub = payload[0] if payload and isinstance(payload[0], Message) else None
        if sub is None:
            return []
        items = list(sub.raw_items())
        cte = _transfer_encoding(part)
        if items or cte not in _ENCODED or sub.is_multipart():
            return items
        # A base64 message/rfc822 (RFC 2046 forbids it; some feedback loops send it anyway).
        text = _undo_transfer_encoding(_body_bytes(sub), cte).decode("utf-8", "replace")
    else:
        text = _decoded_body(part)
    return list(HeaderParser(policy=email_policy.compat32)
                .parsestr(text.lstrip("\r\n"), headersonly=True).raw_items())


def _text_blocks(text: str) -> list[list[tuple[str, str]]]:
    parser = HeaderParser(policy=email_policy.compat32)
    blocks = []
    for chunk in _BLANK_LINE.split(text.strip("\r\n")):
        items = list(parser.parsestr(chunk, headersonly=True).raw_items())
        if items:
            blocks.append(items)
    return blocks


def _body_bytes(part: Message) -> bytes:
    """The body as bytes, transfer encoding undone; 8-bit bytes come back as they were."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _decoded_body(part: Message) -> str:
    return _body_bytes(part).decode("utf-8", "replace")


def _transfer_encoding(part: Message) -> str:
    return _text(part.get("content-transfer-encoding"), 40).lower()


def _undo_transfer_encoding(data: bytes, cte: str) -> bytes:
    try:
        return base64.b64decode(data) if cte == "base64" else quopri.decodestring(data)
    except (binascii.Error, ValueError):
        return b""


def _fields(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    """Header fields by lowercased name; the first occurrence wins. Values stay raw."""
    fields: dict[str, str] = {}
    for name, value in items:
        fields.setdefault(str(name).strip().lower(), str(value))
    return fields


def _text(value: str | None, limit: int) -> str:
    """An untrusted header value as one line of text of at most ``limit`` characters."""
    if not value:
        return ""
    value = _FOLD.sub("", value[:_RAW_CAP])
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8", "replace")
    try:
        text = str(_UNSTRUCTURED("unstructured", value))
    except Exception:  # the default policy's parser failed: try the older, simpler decoder
        try:
            text = str(make_header(decode_header(value)))
        except Exception:  # an unknown charset or broken base64: keep the raw text
            text = value
    text = " ".join(_UNSAFE_CHARS.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _message_id(value: str | None) -> str | None:
    text = _text(value, _ID_MAX + 1)
    if not text or len(text) > _ID_MAX or " " in text:
        return None
    return text


def _address(value: str | None) -> str | None:
    text = (value or "").strip()
    if "<" in text and text.endswith(">"):
        text = text[text.rindex("<") + 1 : -1]
    text = text.strip().lower()
    return text if len(text) <= 254 and _ADDRESS_RE.fullmatch(text) else None


def _dsn_address(value: str | None) -> str | None:
    """``rfc822; User@Example.org`` -> ``user@example.org``; other address types -> None."""
    text = _text(value, 400)
    kind, sep, address = text.partition(";")
    if not sep:
        return _address(text)
    return _address(address) if kind.strip().lower() in _ADDRESS_TYPES else None
