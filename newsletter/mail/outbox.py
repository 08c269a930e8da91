"""Reading the file transport's outbox: what ``make run`` "sent", for a person to look at.

Only names the file transport writes are read (``<UTC time>-<32 hex>.eml``), so a name
from a URL can never reach another file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
