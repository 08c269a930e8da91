"""Sign-in links the reader did not ask for: sent when someone in a session opened by a
forwarded link (or by confirming a new address) asks for an account action — the link
goes to the reader's own inbox instead, at most one every :data:`FRESH_LINK_EVERY`, since
the pages asking are open to whoever holds a forwarded email."""

from __future__ import annotations

from datetime import datetime, timedelta

from newsletter.db import db
from newsletter.subscribers.models import AccountMailKind, Reader, ReaderStatus
from newsletter.subscribers.outbox import queue_mail, queued_since

FRESH_LINK_EVERY = timedelta(minutes=15)


def send_fresh_link(reader: Reader, now: datetime) -> bool:
    """Email the reader (subscribed or not: an unsubscribed reader may still want their
    data, or erasure) a sign-in link to their own inbox, unless one was queued
    in the last :data:`FRESH_LINK_EVERY` (the pages asking for it are open to whoever holds
    a forwarded link: they must not mail-bomb the reader). True when one was queued."""
    if not reader.email or reader.status == ReaderStatus.PENDING.value:
        return False
    if queued_since(reader.id, AccountMailKind.MANAGE_LINK, now - FRESH_LINK_EVERY):
        return False
    queue_mail(reader.id, AccountMailKind.MANAGE_LINK, reader.email)
    db.session.commit()
    return True
