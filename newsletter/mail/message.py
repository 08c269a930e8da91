"""Build RFC 5322 messages as bytes, ready for DKIM signing and SMTP.

Contract of :func:`build_message`:

* CRLF line ends everywhere; headers folded at 78 columns, RFC 2047 for non-ASCII text.
* Bodies are UTF-8 quoted-printable with lines of at most 76 characters, so the ~57,000
  character line of compiled MJML never travels as 8bit.
* With ``html`` the message is ``multipart/alternative`` (text/plain first, text/html
  second); without it, a single text/plain body.
* A header value or address containing CR, LF or NUL raises :class:`HeaderValueError`
  naming the header; nothing a reader typed can add a header.
"""

from __future__ import annotations

import binascii
import email.policy
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from newsletter.errors import Invalid

__all__ = ["HeaderValueError", "build_message"]

_POLICY = email.policy.SMTP
_CRLF = b"\r\n"
_FORBIDDEN = re.compile(r"[\r\n\0]")
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_MANAGED = frozenset({
    "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
    "content-transfer-encoding", "list-id", "list-unsubscribe", "list-unsubscribe-post",
    "return-path", "dkim-signature",
})
_TEXT_PART = (b'Content-Type: text/plain; charset="utf-8"\r\n'
              b"Content-Transfer-Encoding: quoted-printable\r\n")
_HTML_PART = (b'Content-Type: text/html; charset="utf-8"\r\n'
              b"Content-Transfer-Encoding: quoted-printable\r\n")


class HeaderValueError(Invalid, ValueError):
    """A header name or value would break the header block (CR, LF or NUL in it)."""

    def __init__(self, header: str, problem: str = "contains CR, LF or NUL") -> None:
        super().__init__(f"header {header!r} {problem}")
        self.header = header


def build_message(
    *,
    from_addr: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    message_id_domain: str,
    list_id: str | None = None,
    list_unsubscribe_url: str | None = None,
    list_unsubscribe_mailto: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    date: datetime | None = None,
    message_id: str | None = None,
) -> bytes:
    """Return the message as bytes.

    ``from_addr`` and ``to`` each hold exactly one mailbox (``"Name <addr@domain>"``).
    ``list_id`` is the whole header value (``"Modelwire <daily.modelwire.example>"``).
    ``list_unsubscribe_url`` (http or https; RFC 8058 one-click needs https in production)
    produces ``List-Unsubscribe`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``;
    ``list_unsubscribe_mailto`` (``addr`` or ``mailto:…``) is listed after the URL.
    No ``Return-Path`` header is written: the bounce address is the SMTP envelope sender,
    and the final MTA records it as that header (RFC 5321, 4.4).
    ``extra_headers`` may not repeat a header this function sets. ``date`` must be
    timezone-aware (default: now, UTC). ``message_id`` defaults to
    ``<random@message_id_domain>``. A single text/plain body gains a final line break if
    it lacks one; the parts of a multipart message come back exactly.
    """
    extra = dict(extra_headers or {})
    _check_values([
        ("From", from_addr), ("To", to), ("Subject", subject),
        ("Message-ID", message_id_domain if message_id is None else message_id),
        ("List-Id", list_id), ("List-Unsubscribe", list_unsubscribe_url),
        ("List-Unsubscribe", list_unsubscribe_mailto),
        *extra.items(),
    ])
    _check_extra_names(extra)

    if date is None:
        date = datetime.now(UTC)
    elif date.tzinfo is None:
        raise ValueError("date must be timezone-aware")
    if message_id is None:
        message_id = f"<{secrets.token_hex(16)}@{message_id_domain}>"
    elif not message_id.startswith("<"):
        message_id = f"<{message_id}>"

    headers: list[tuple[str, str]] = [
        ("From", _mailbox("From", from_addr)),
        ("To", _mailbox("To", to)),
        ("Subject", subject),
        ("Date", format_datetime(date)),
        ("Message-ID", message_id),
    ]
    if list_id is not None:
        headers.append(("List-Id", list_id))
    headers.extend(_unsubscribe_headers(list_unsubscribe_url, list_unsubscribe_mailto))
    headers.extend(extra.items())
    headers.append(("MIME-Version", "1.0"))

    out = bytearray()
    for name, value in headers:
        out += _fold(name, value)
    _append_body(out, text, html)
    return bytes(out)


def _check_extra_names(extra: Mapping[str, str]) -> None:
    for name in extra:
        if not _FIELD_NAME.fullmatch(name):
            raise HeaderValueError(name, "is not a valid header name")
        if name.lower() in _MANAGED:
            raise ValueError(f"extra header {name!r} is set by build_message itself")


def _append_body(out: bytearray, text: str, html: str | None) -> None:
    """The body: one text/plain part, or multipart/alternative with text and HTML."""
    if html is None:
        body = _quoted_printable(text)
        out += _TEXT_PART + _CRLF + body
        if not body.endswith(_CRLF):
            out += _CRLF
        return
    # "=_" never occurs in quoted-printable output, so the boundary cannot occur in a part.
    boundary = b"=_" + secrets.token_hex(12).encode()
    out += b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n'
    for part_headers, content in ((_TEXT_PART, text), (_HTML_PART, html)):
        out += b"--" + boundary + _CRLF + part_headers + _CRLF
        out += _quoted_printable(content) + _CRLF
    out += b"--" + boundary + b"--" + _CRLF


def _check_values(items: Iterable[tuple[str, str | None]]) -> None:
    for name, value in items:
        if value is not None and _FORBIDDEN.search(value):
            raise HeaderValueError(name)
        if _FORBIDDEN.search(name):
            raise HeaderValueError(name.encode("unicode_escape").decode(), "has a bad name")


def _mailbox(name: str, value: str) -> str:
    """Check that ``value`` is exactly one ASCII mailbox; return it unchanged."""
    header = _POLICY.header_factory(name, value)
    addresses = header.addresses
    if len(addresses) != 1 or header.defects:
        raise ValueError(f"{name} must hold exactly one valid address, got {value!r}")
    address = addresses[0]
    if not address.username or not address.domain or not address.addr_spec.isascii():
        raise ValueError(f"{name} must hold an ASCII user@domain address, got {value!r}")
    return value


def _unsubscribe_headers(url: str | None, mailto: str | None) -> list[tuple[str, str]]:
    targets = []
    if url is not None:
        if not url.lower().startswith(("https://", "http://")):
            raise ValueError(f"list_unsubscribe_url must be an http(s) URL, got {url!r}")
        targets.append(f"<{url}>")
    if mailto is not None:
        if not mailto.lower().startswith("mailto:"):
            mailto = f"mailto:{mailto}"
        targets.append(f"<{mailto}>")
    headers = [("List-Unsubscribe", ", ".join(targets))] if targets else []
    if url is not None:
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return headers


# Structured headers whose value must reach the reader's client exactly as written: never
# RFC 2047-encoded, folded only at white space (a URL is never broken).
_VERBATIM = frozenset({"list-unsubscribe", "list-unsubscribe-post", "list-id", "message-id"})


def _fold(name: str, value: str) -> bytes:
    if name.lower() in _VERBATIM and value.isascii():
        return _fold_at_spaces(name, value)
    return _POLICY.header_factory(name, value).fold(policy=_POLICY).encode("ascii")


def _fold_at_spaces(name: str, value: str) -> bytes:
    """``Name: value`` folded before spaces so lines stay ≤ 78 where they can (≤ 998 always)."""
    lines: list[str] = []
    line = f"{name}:"
    for word in value.split(" "):
        if line.endswith(":") or len(line) + 1 + len(word) <= 78:
            line = f"{line} {word}"
        else:
            lines.append(line)
            line = f" {word}"
    lines.append(line)
    if any(len(item) > 998 for item in lines):
        raise HeaderValueError(name, "has a part longer than 998 characters")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _quoted_printable(content: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends and lines of at most 76 characters."""
    # b2a_qp passes a lone CR through and picks LF or CRLF from the first line, so
    # normalise to LF first and turn every LF into CRLF after.
    data = content.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(
        b"\n", _CRLF
    )


def reply_to_header(config: Mapping[str, Any]) -> dict[str, str]:
    """``{"Reply-To": …}`` when ``NEWSLETTER_REPLY_TO`` is set (checked at start), else {}."""
    reply_to = config.get("REPLY_TO")
    return {"Reply-To": reply_to} if reply_to else {}
