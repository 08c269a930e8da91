"""An address change taking effect, and its undo: the address left is always told, and
every session and own-inbox link from before the change stops working.

The change is asked for in the preference centre (``service.update_preferences``, from an
own-inbox session only) and confirmed from the new inbox; the old address gets a notice
with a link that puts it back (``Purpose.EMAIL_UNDO``, 14 days) — that change only.
"""

from __future__ import annotations

from newsletter.db import db
from newsletter.subscribers.addresses import email_hash
from newsletter.subscribers.models import AccountMailKind, Reader, ReaderStatus
from newsletter.subscribers.outbox import queue_mail
from newsletter.subscribers.service import (
    Actor,
    LinkNoLongerValid,
    ReaderServices,
    find_by_email,
    get_reader,
    record_event,
)
from newsletter.subscribers.tokens import Purpose


def confirm_email_change(services: ReaderServices, token: str, actor: Actor) -> Reader:
    """Move the reader to the address the link was sent to. The address left is told, in
    the same transaction, with a link that puts it back (:func:`undo_email_change`)."""
    payload = services.tokens.read(Purpose.EMAIL_CHANGE, token)
    reader = get_reader(payload["r"])
    new_email = payload.get("e")
    if reader is None:
        raise LinkNoLongerValid("this subscription no longer exists")
    if reader.email == new_email:
        return reader  # followed twice
    if reader.pending_email != new_email:
        raise LinkNoLongerValid("a newer address change replaced this one")
    if find_by_email(new_email) is not None:
        raise LinkNoLongerValid("that address is already subscribed")
    old_email = reader.email
    _move_address(services, reader, new_email)
    record_event(services, reader, "email_changed", actor)
    if old_email:
        queue_mail(reader.id, AccountMailKind.EMAIL_CHANGED, old_email)
    db.session.commit()
    return reader


def undo_email_change(services: ReaderServices, token: str, actor: Actor) -> Reader:
    """Put back the address an address change left (the link sent to it). Whoever is signed
    in under another address is signed out, since a reader's session names its address.
    Following it twice changes nothing more.

    Raises ``TokenExpired``/``TokenInvalid``, or ``LinkNoLongerValid`` when the reader is
    gone or another subscription took the old address meanwhile."""
    payload = services.tokens.read(Purpose.EMAIL_UNDO, token)
    reader = get_reader(payload["r"])
    old_email, new_email = payload.get("o"), payload.get("n")
    if reader is None or reader.status == ReaderStatus.ERASED.value:
        raise LinkNoLongerValid("this subscription no longer exists")
    if not isinstance(old_email, str) or not old_email:
        raise LinkNoLongerValid("this link is not valid")
    if reader.email == old_email:
        return reader
    if reader.email != new_email:
        # It undoes one change: after another one, the address it names is not the one
        # to take back from (that change's own notice went to the address it left).
        raise LinkNoLongerValid("the address changed again since this email; write to us "
                                "if you did not make these changes")
    owner = find_by_email(old_email)
    if owner is not None and owner.id != reader.id:
        raise LinkNoLongerValid("another subscription uses that address now")
    _move_address(services, reader, old_email)
    record_event(services, reader, "email_change_undone", actor)
    db.session.commit()
    return reader


def _move_address(services: ReaderServices, reader: Reader, email: str) -> None:
    """The reader's address becomes ``email``; every session and own-inbox link made
    before stops working (they name the older ``address_version``)."""
    reader.email = email
    reader.email_hash = email_hash(email, services.hash_key)
    reader.pending_email = None
    reader.address_version = Reader.address_version + 1
