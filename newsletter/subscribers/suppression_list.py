"""The suppression list as the admin area sees it: a page of entries (reason, date, and
the address when a reader row still holds it — the list itself keeps only keyed hashes),
adding an address by hand, and lifting an entry.

Only entries we made ourselves may be lifted: ``manual`` ones and bounces (a mailbox that
was full, a domain that was down). An unsubscribe, a complaint or an erasure is the
person's own word: only they can undo it, by subscribing and confirming again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select

from newsletter.db import db
from newsletter.errors import Conflict
from newsletter.subscribers.addresses import email_hash, normalise_email
from newsletter.subscribers.models import Reader, ReaderStatus, Suppression, SuppressionReason
from newsletter.subscribers.service import Actor, ReaderServices, record_event, suppress
from newsletter.validation import FieldError, InvalidInput, single_line

PAGE = 50
LIFTABLE = frozenset({SuppressionReason.MANUAL.value, SuppressionReason.HARD_BOUNCE.value,
                      SuppressionReason.SOFT_BOUNCES.value})
REASONS = tuple(r.value for r in SuppressionReason)


class NotLiftable(Conflict):
    """This entry may not be lifted from the admin area; the message says why."""


@dataclass(frozen=True)
class Entry:
    id: int
    reason: str
    created_at: datetime
    reader_id: int | None     # the reader whose address it is, when one still holds it
    email: str | None

    @property
    def liftable(self) -> bool:
        return self.reason in LIFTABLE


def entries(page: int = 1, reason: str = "") -> tuple[list[Entry], int]:
    """A page of :data:`PAGE` entries, newest first, optionally of one reason, and how many
    there are."""
    where = [Suppression.reason == reason] if reason else []
    total = db.session.scalar(select(func.count(Suppression.id)).where(*where)) or 0
    rows = db.session.execute(
        select(Suppression.id, Suppression.reason, Suppression.created_at, Reader.id,
               Reader.email)
        .outerjoin(Reader, Reader.email_hash == Suppression.email_hash)
        .where(*where).order_by(Suppression.id.desc())
        .offset((page - 1) * PAGE).limit(PAGE)).all()
    return [Entry(*row) for row in rows], total


def entry_for(services: ReaderServices, email: str) -> Suppression | None:
    """The entry of ``email`` (already normalised), if it is suppressed."""
    return db.session.scalar(select(Suppression).where(
        Suppression.email_hash == email_hash(email, services.hash_key)))


def _reader_of(digest: str) -> Reader | None:
    return db.session.scalar(select(Reader).where(Reader.email_hash == digest,
                                                  Reader.status != ReaderStatus.ERASED.value))


def add(services: ReaderServices, raw_email: str, actor: Actor, note: str = "") -> tuple[
        str, bool]:
    """Suppress an address by hand (reason ``manual``); return (address, whether it was
    added — False when it was on the list already). A reader with that address gets a
    consent event saying so. Raises ``InvalidInput`` for a malformed address or note."""
    errors: list[FieldError] = []
    email = None
    try:
        email = normalise_email(raw_email)
    except ValueError as exc:
        errors.append(FieldError("email", str(exc)))
    note = single_line("note", note or "", 200, errors) or ""
    if errors:
        raise InvalidInput(errors)
    if entry_for(services, email) is not None:
        return email, False
    suppress(services, email, SuppressionReason.MANUAL)
    reader = _reader_of(email_hash(email, services.hash_key))
    if reader is not None:
        record_event(services, reader, "suppressed", actor,
                     detail={"reason": SuppressionReason.MANUAL.value, "note": note})
    db.session.commit()
    return email, True


def lift(services: ReaderServices, suppression_id: int, actor: Actor) -> Entry:
    """Remove an entry we made (see :data:`LIFTABLE`); return what it was. Raises
    ``LookupError`` when there is no such entry and :class:`NotLiftable` for the person's
    own choices. A reader with that address gets a consent event; their status is not
    changed (an unsubscribed reader stays unsubscribed)."""
    found = db.session.get(Suppression, suppression_id)
    if found is None:
        raise LookupError("There is no such entry on the suppression list.")
    if found.reason not in LIFTABLE:
        raise NotLiftable(
            f"This address is suppressed because of {found.reason.replace('_', ' ')}: that "
            "was the person's own choice, and only they can undo it, by subscribing and "
            "confirming again.")
    reader = _reader_of(found.email_hash)
    entry = Entry(found.id, found.reason, found.created_at, reader.id if reader else None,
                  reader.email if reader else None)
    db.session.execute(delete(Suppression).where(Suppression.id == found.id))
    if reader is not None:
        record_event(services, reader, "suppression_lifted", actor,
                     detail={"reason": found.reason})
    db.session.commit()
    return entry
