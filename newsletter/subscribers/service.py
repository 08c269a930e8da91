"""Reader use cases: subscribe, confirm, preferences, unsubscribe, suppress (export and
erasure: ``subscribers.privacy``).

Rules kept here (each has a test):
* Nothing but the confirmation is ever sent to an unconfirmed address.
* The subscribe answer never depends on whether the address is known (the caller shows one
  page for every case).
* Every subscribe, confirm, preference change, unsubscribe and erasure adds a consent event.
* An address that left everything, bounced hard, complained or was erased is suppressed (by
  keyed hash); it comes back only by confirming a new subscription.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import delete, select

from newsletter.content.models import Topic
from newsletter.db import db, utcnow
from newsletter.subscribers.addresses import email_hash, normalise_email
from newsletter.subscribers.mailer import ReaderMailer
from newsletter.subscribers.models import (
    STREAM_FIELDS,
    AccountMailKind,
    ConsentEvent,
    Reader,
    ReaderStatus,
    ReaderTopic,
    Suppression,
    SuppressionReason,
    latest_request,
    request_ended,
)
from newsletter.subscribers.outbox import queue_mail
from newsletter.subscribers.preferences import (
    Preferences,
    parse_first_name,
    parse_preferences,
    parse_topics,
    valid_timezone,
)
from newsletter.subscribers.suppression import suppress_hashes
from newsletter.subscribers.tokens import Purpose, TokenInvalid, Tokens
from newsletter.validation import FieldError, InvalidInput

log = logging.getLogger(__name__)

# The words shown next to the subscribe button. Its version is derived from the text, so a
# change of wording can never be recorded under the old version.
CONSENT_TEXT = (
    "Send me the digest of the topics I chose. I can change my preferences or unsubscribe "
    "at any time, from any email."
)
CONSENT_VERSION = "c1-" + hashlib.sha256(CONSENT_TEXT.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Actor:
    """Who or what caused a change, for the consent record."""

    source: str                   # form, api, import, email-link, one-click, preferences
    ip: str | None = None
    user_agent: str | None = None


@dataclass
class ReaderServices:
    """What the reader use cases need, built once in ``create_app``."""

    tokens: Tokens
    mailer: ReaderMailer
    hash_key: bytes
    # The topics a reader may choose from (called with the reader; with nothing for a new
    # reader): billing's entitlement rule, passed in by the wiring (subscribers sit below
    # billing and never import it).
    offered_topics: Callable[..., list[Topic]]
    check_deliverability: bool = False
    record_ip: bool = True
    # Erasure's billing part (cancel the subscription, drop the customer link), run first;
    # passed in by the wiring for the same reason. It raises when it cannot be done now.
    before_erasure: Callable[[Reader], None] | None = None


class LinkNoLongerValid(TokenInvalid):
    """A genuine link whose reader or request is gone (erased, unsubscribed, superseded)."""


# -- helpers -------------------------------------------------------------------------------

def record_event(services: ReaderServices, reader: Reader, kind: str, actor: Actor, *,
                 consent: bool = False, detail: dict[str, Any] | None = None) -> ConsentEvent:
    """Add a consent event (uncommitted) and return it, with its id."""
    event = ConsentEvent(
        reader_id=reader.id,
        kind=kind,
        source=actor.source,
        ip=actor.ip if services.record_ip else None,
        user_agent=(actor.user_agent or "")[:300] or None,
        consent_version=CONSENT_VERSION if consent else None,
        detail=detail or {},
    )
    db.session.add(event)
    db.session.flush()
    return event


def set_topics(reader: Reader, topics: list[Topic]) -> None:
    keep = {link.topic_id: link for link in reader.followed}
    reader.followed = [
        keep.get(topic.id) or ReaderTopic(topic_id=topic.id, topic=topic) for topic in topics
    ]
    for position, link in enumerate(reader.followed, start=1):
        link.position = position


def find_by_email(email: str) -> Reader | None:
    return db.session.scalar(select(Reader).where(Reader.email == email))


def get_reader(reader_id: int) -> Reader | None:
    reader = db.session.get(Reader, reader_id)
    return None if reader is None or reader.status == ReaderStatus.ERASED.value else reader


# -- suppression ---------------------------------------------------------------------------

def is_suppressed(services: ReaderServices, email: str) -> bool:
    digest = email_hash(email, services.hash_key)
    return db.session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) \
        is not None


def suppress(services: ReaderServices, email: str, reason: SuppressionReason) -> None:
    """Add the address to the suppression list (a no-op when it is there already)."""
    suppress_hash(email_hash(email, services.hash_key), reason)


def suppress_hash(digest: str, reason: SuppressionReason) -> None:
    """Suppress by keyed hash, for callers that only know the hash (bounce reports), in
    the session's transaction (``suppression``, the one writer)."""
    suppress_hashes(db.session.connection(), [digest], reason, utcnow())


def lift_suppression(services: ReaderServices, email: str) -> None:
    digest = email_hash(email, services.hash_key)
    db.session.execute(delete(Suppression).where(Suppression.email_hash == digest))


# -- subscribe and confirm -----------------------------------------------------------------

def request_subscription(services: ReaderServices, raw_email: str, topic_slugs: list[str],
                         actor: Actor, timezone: str = "UTC",
                         first_name: str | None = None) -> None:
    """Start (or restart) a subscription and email what the address needs next.

    Raises ``InvalidInput`` for a malformed address or topics: those answers depend only on
    what was typed. Whatever the address's state, the caller then shows the same page.
    """
    errors: list[FieldError] = []
    email = None
    try:
        email = normalise_email(raw_email, check_deliverability=services.check_deliverability)
    except ValueError as exc:
        errors.append(FieldError("email", str(exc)))
    topics = parse_topics({"topic": topic_slugs}, services.offered_topics(), errors)
    name = parse_first_name(first_name, errors)
    if errors:
        raise InvalidInput(errors)
    if not valid_timezone(timezone or ""):
        timezone = "UTC"

    reader = find_by_email(email)
    if reader is not None and reader.status == ReaderStatus.ACTIVE.value:
        # Known and confirmed: change nothing, send them their own way in.
        queue_mail(reader.id, AccountMailKind.MANAGE_LINK, email)
        db.session.commit()
        return
    # The name of an active reader never changes from here (this form is open to anyone);
    # a new or returning one takes the request's, which their confirmation accepts.
    detail: dict[str, Any] = {"topics": [t.slug for t in topics]}
    if reader is None:
        reader = Reader(email=email, email_hash=email_hash(email, services.hash_key),
                        source=actor.source, timezone=timezone, first_name=name)
        db.session.add(reader)
        db.session.flush()
    else:  # pending or unsubscribed: start a fresh confirmation
        if (reader.timezone, reader.first_name) != (timezone, name):
            # Not the same request again, though its topics match: an earlier link must
            # not confirm what this one asked (``request_ended``).
            detail["changed"] = True
        reader.status = ReaderStatus.PENDING.value
        reader.timezone = timezone
        reader.first_name = name
    set_topics(reader, topics)
    request = record_event(services, reader, "subscribe", actor, consent=True, detail=detail)
    db.session.flush()
    queue_mail(reader.id, AccountMailKind.CONFIRM, email, request.id)
    db.session.commit()


def confirm_subscription(services: ReaderServices, token: str, actor: Actor) -> Reader:
    """Activate the reader the confirmation link names; confirming twice changes nothing.

    Raises ``TokenExpired``/``TokenInvalid``, or ``LinkNoLongerValid`` when the reader is gone,
    changed address, or unsubscribed after the link was sent.
    """
    payload = services.tokens.read(Purpose.CONFIRM, token)
    reader = get_reader(payload["r"])
    if reader is None or reader.email != payload.get("e"):
        raise LinkNoLongerValid("this subscription no longer exists")
    request = payload.get("q")
    if request is not None and not isinstance(request, int):
        raise TokenInvalid("this link is not valid")
    ended = request_ended(reader.id, request)
    if reader.status == ReaderStatus.ACTIVE.value and (
            ended is None or (ended == "changed" and request == latest_request(reader.id))):
        return reader  # confirmed already (perhaps changed preferences since): signs in
    # A link answers one request: after an unsubscribe and a new request (perhaps someone
    # else's, with other topics), only the newest link confirms. The same request made
    # twice is one: either email confirms it.
    if ended == "superseded":
        raise LinkNoLongerValid("this link answers an earlier request; use the newest "
                                "confirmation email we sent, or subscribe again")
    if ended is not None or reader.status != ReaderStatus.PENDING.value:
        raise LinkNoLongerValid("you unsubscribed after this link was sent; subscribe again "
                                "to get a new one")
    reader.status = ReaderStatus.ACTIVE.value
    reader.confirmed_at = utcnow()
    reader.unsubscribed_at = None
    lift_suppression(services, reader.email)
    record_event(services, reader, "confirm", actor)
    # Committed with the confirmation: a welcome that says what they chose and when their
    # first digest comes (sent by the worker, like all account mail).
    queue_mail(reader.id, AccountMailKind.WELCOME, reader.email)
    db.session.commit()
    return reader


def send_manage_link(services: ReaderServices, raw_email: str) -> None:
    """Email a fresh preference-centre link (or, if unconfirmed, the confirmation again).

    Raises ``InvalidInput`` only for a malformed address; an unknown address gets no email
    and the caller shows the same page as for a known one.
    """
    try:
        email = normalise_email(raw_email)
    except ValueError as exc:
        raise InvalidInput([FieldError("email", str(exc))]) from None
    reader = find_by_email(email)
    if reader is None:
        return
    if reader.status == ReaderStatus.PENDING.value:
        # The latest request's link again: it confirms what was asked, nothing else. (A
        # reader added before requests were recorded has none: the link names none.)
        queue_mail(reader.id, AccountMailKind.CONFIRM, email, latest_request(reader.id))
    else:
        queue_mail(reader.id, AccountMailKind.MANAGE_LINK, email)
    db.session.commit()


def reader_from_link(services: ReaderServices, purpose: Purpose, token: str) -> Reader:
    return reader_and_link(services, purpose, token)[0]


def reader_and_link(services: ReaderServices, purpose: Purpose,
                    token: str) -> tuple[Reader, dict[str, Any]]:
    """The reader a link names, and the link's payload."""
    payload = services.tokens.read(purpose, token)
    reader = get_reader(payload["r"])
    if reader is None:
        raise LinkNoLongerValid("this subscription no longer exists")
    if purpose is Purpose.MANAGE and not payload.get("l") \
            and payload.get("v", 0) != reader.address_version:
        raise LinkNoLongerValid("this link was sent before your address changed; ask for a "
                                "new one below")
    return reader, payload


# -- preferences ---------------------------------------------------------------------------

def preferences_snapshot(reader: Reader) -> dict[str, Any]:
    return {
        "topics": [link.topic.slug for link in reader.followed],
        "frequency": reader.frequency,
        "weekly_day": reader.weekly_day,
        "paused_until": reader.paused_until.isoformat() if reader.paused_until else None,
        "delivery_time": reader.delivery_time,
        "timezone": reader.timezone,
        "format": reader.format,
        "streams": [stream.value for stream, field in STREAM_FIELDS.items()
                    if getattr(reader, field)],
    }


def update_preferences(services: ReaderServices, reader: Reader, form: dict[str, list[str]],
                       actor: Actor, today: date) -> dict[str, Any]:
    """Save the preference form; return the changed fields (old → new).

    A new address is not applied: a confirmation goes to it, and it takes effect when
    followed. Raises ``InvalidInput`` (nothing saved) when any field is wrong.
    """
    errors: list[FieldError] = []
    new_email = None
    first_name = reader.first_name
    if "first_name" in form:
        first_name = parse_first_name((form.get("first_name") or [""])[0], errors)
    raw_new = (form.get("new_email") or [""])[0]
    if isinstance(raw_new, str) and raw_new.strip():
        try:
            new_email = normalise_email(raw_new,
                                        check_deliverability=services.check_deliverability)
        except ValueError as exc:
            errors.append(FieldError("new_email", str(exc)))
    try:
        prefs: Preferences | None = parse_preferences(form, services.offered_topics(reader), today)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        prefs = None
    if errors:
        raise InvalidInput(errors)

    before = preferences_snapshot(reader)
    name_changed, had_name = first_name != reader.first_name, bool(reader.first_name)
    reader.first_name = first_name
    set_topics(reader, prefs.topics)
    reader.frequency = prefs.frequency
    reader.weekly_day = prefs.weekly_day
    reader.paused_until = prefs.paused_until
    reader.delivery_minute = prefs.delivery_minute
    reader.timezone = prefs.timezone
    reader.format = prefs.format
    if prefs.streams is not None:
        for stream, field in STREAM_FIELDS.items():
            setattr(reader, field, stream.value in prefs.streams)
    after = preferences_snapshot(reader)
    changes = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
    if name_changed:
        # The consent record says that the name changed, never the name: it is personal
        # data, and consent events outlive an erasure.
        changes["first_name"] = ["(a name)" if had_name else None,
                                 "(a name)" if first_name else None]
    if changes:
        record_event(services, reader, "preferences", actor, detail={"changes": changes})

    if new_email and new_email != reader.email:
        owner = find_by_email(new_email)
        reader.pending_email = new_email
        record_event(services, reader, "email_change_requested", actor)
        if owner is None:
            queue_mail(reader.id, AccountMailKind.EMAIL_CHANGE, new_email)
        db.session.commit()
        changes["email"] = ["(unchanged until confirmed)", "confirmation sent"]
        return changes
    db.session.commit()
    return changes


# -- unsubscribe ---------------------------------------------------------------------------

def unsubscribe(services: ReaderServices, reader: Reader, actor: Actor,
                topic_slug: str | None = None) -> bool:
    """Leave one topic, or everything; return True if something changed (idempotent).
    The use case: :func:`leave` and one commit."""
    changed = leave(services, reader, actor, topic_slug)
    db.session.commit()
    return changed


def leave(services: ReaderServices, reader: Reader, actor: Actor,
          topic_slug: str | None = None) -> bool:
    """What :func:`unsubscribe` does, in the caller's transaction (flushed, not committed):
    for a use case that unsubscribes as one of its steps (a complaint).

    Leaving the last followed topic leaves everything. Leaving everything suppresses the
    address, so no send path mails it again until a new confirmed subscription. Delivery
    workers check the reader's status and the suppression list when they claim mail, so
    mail queued before this call is not sent.
    """
    if topic_slug is not None:
        remaining = [link for link in reader.followed if link.topic.slug != topic_slug]
        if len(remaining) == len(reader.followed):
            return False
        if remaining:
            reader.followed = remaining
            record_event(services, reader, "unsubscribe_topic", actor, detail={"topic": topic_slug})
            return True
    if reader.status == ReaderStatus.UNSUBSCRIBED.value:
        return False
    reader.status = ReaderStatus.UNSUBSCRIBED.value
    reader.unsubscribed_at = utcnow()
    suppress(services, reader.email, SuppressionReason.UNSUBSCRIBED)
    record_event(services, reader, "unsubscribe", actor,
                 detail={"topic": topic_slug} if topic_slug else {})
    return True
