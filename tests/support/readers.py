"""Helpers for reader tests: the outbox as a reader sees it, CSRF tokens, links in mail."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

from flask import has_app_context

_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def send_account_mail() -> None:
    """Do what the worker does every 2 s: send the queued account mail (in the current app)."""
    from newsletter.db import utcnow
    from newsletter.subscribers.outbox import send_due
    from newsletter.wiring import reader_services

    while send_due(reader_services().mailer, utcnow()).handled:
        pass


def outbox_messages(outbox: Path) -> list[EmailMessage]:
    """Messages the file transport wrote, oldest first, once the worker has sent the account
    mail that requests queued (when an app context is open)."""
    if has_app_context():
        send_account_mail()
    if not outbox.exists():
        return []
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(outbox.glob("*.eml"))]


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def link_in(message: EmailMessage, path_prefix: str) -> str:
    """The first absolute link in the text part whose path starts with ``path_prefix``."""
    match = re.search(r"https?://[^/\s]+(" + re.escape(path_prefix) + r"[^\s]+)",
                      text_of(message))
    assert match, f"no {path_prefix} link in:\n{text_of(message)}"
    return match.group(1)


def csrf_from(client, url: str = "/subscribe") -> str:
    html = client.get(url).get_data(as_text=True)
    match = _CSRF_RE.search(html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)
