"""Reading the file transport's outbox: what ``make run`` "sent", for a person to look at.

Only names the file transport writes are read (``<UTC time>-<32 hex>.eml``), so a name
from a URL can never reach another file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{32}\.eml$")
MAX_MESSAGE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class OutboxMessage:
    name: str
    headers: list[tuple[str, str]]
    subject: str
    to: str
    sender: str
    date: str
    text: str | None
    html: str | None
    links_withheld: bool = False

    @property
    def is_account_mail(self) -> bool:
        """Mail about a reader's subscription (its ``Feedback-ID`` says ``:account:``),
        whose links sign the reader in."""
        return any(key.lower() == "feedback-id" and ":account:" in value
                   for key, value in self.headers)


def _parse(path: Path, *, body: bool) -> OutboxMessage:
    with path.open("rb") as handle:
        data = handle.read(MAX_MESSAGE_BYTES) if body else handle.read(64 * 1024)
    message = BytesParser(policy=policy.default).parsebytes(data, headersonly=not body)
    text = html = None
    if body and isinstance(message, EmailMessage):
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else None
        part = message.get_body(preferencelist=("html",))
        html = part.get_content() if part is not None else None
    headers = [(k, str(v)) for k, v in message.items()]
    return OutboxMessage(name=path.name, headers=headers, subject=str(message["Subject"] or ""),
                         to=str(message["To"] or ""), sender=str(message["From"] or ""),
                         date=str(message["Date"] or ""), text=text, html=html)


def list_messages(folder: str | Path, limit: int = 100) -> list[OutboxMessage]:
    """The newest ``limit`` messages, newest first (headers only)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    names = sorted((p.name for p in root.iterdir() if NAME.match(p.name)), reverse=True)
    return [_parse(root / name, body=False) for name in names[:limit]]


def read_message(folder: str | Path, name: str) -> OutboxMessage | None:
    """One message, whole; None for a name the transport would not write or a file gone."""
    if not NAME.match(name or ""):
        return None
    path = Path(folder) / name
    if not path.is_file():
        return None
    return _parse(path, body=True)


WITHHELD = "withheld"


def withhold_links(message: OutboxMessage, paths: Iterable[str]) -> OutboxMessage:
    """The message with the token of every link under ``paths`` (``"/manage/"``…) replaced
    by ``withheld``, in the text, the HTML and the headers: for people who may read the
    outbox but must not follow a reader's own sign-in links. Only account mail is changed."""
    if not message.is_account_mail:
        return message
    # Longest first: "/email-change/undo/" before "/email-change/".
    ordered = sorted(paths, key=len, reverse=True)
    pattern = re.compile("(" + "|".join(re.escape(p) for p in ordered) + r")[A-Za-z0-9_.\-]+")

    def hide(value: str | None) -> str | None:
        return None if value is None else pattern.sub(r"\g<1>" + WITHHELD, value)

    return replace(message, text=hide(message.text), html=hide(message.html),
                   headers=[(k, hide(v) or "") for k, v in message.headers],
                   links_withheld=True)
