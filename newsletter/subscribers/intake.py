"""Readers added by another system (the API; later imports), with or without proof of consent.

Without a consent record the address gets the same double opt-in as the form. With one —
when, where and with which wording the person agreed — the reader is active at once, but a
suppressed address is refused: only the person, through a confirmation, can bring it back.
"""

from __future__ import annotations

from typing import Any

from newsletter.db import db, utcnow
from newsletter.errors import Conflict
from newsletter.subscribers import service
from newsletter.subscribers.addresses import email_hash, normalise_email
from newsletter.subscribers.models import Reader, ReaderStatus
from newsletter.subscribers.preferences import parse_first_name, parse_preferences
from newsletter.validation import FieldError, InvalidInput, aware_datetime, single_line

_ALLOWED = {"email", "first_name", "topics", "timezone", "delivery_time", "frequency",
            "weekly_day", "format", "consent"}
_CONSENT_FIELDS = {"obtained_at", "wording_version", "source_detail", "ip", "user_agent"}


class AddressSuppressed(Conflict):
    """The address is on the suppression list; only a confirmed subscription lifts it."""


def _text(value: Any, name: str, limit: int, errors: list[FieldError],
          required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            errors.append(FieldError(name, "is required"))
        return None
    return single_line(name, value, limit, errors)


def _consent(value: Any, errors: list[FieldError]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append(FieldError("consent", "must be an object"))
        return None
    for unknown in sorted(set(value) - _CONSENT_FIELDS):
        errors.append(FieldError(f"consent.{unknown}"[:100], "is not a known field"))
    record: dict[str, Any] = {}
    obtained = _text(value.get("obtained_at"), "consent.obtained_at", 40, errors, True)
    if obtained:
        try:
            when = aware_datetime(obtained)
        except ValueError as exc:
            errors.append(FieldError("consent.obtained_at", str(exc)))
        else:
            if when > utcnow():
                errors.append(FieldError("consent.obtained_at", "is in the future"))
            else:
                record["obtained_at"] = when.isoformat()
    record["wording_version"] = _text(value.get("wording_version"), "consent.wording_version",
                                      40, errors, True)
    for name, limit in (("source_detail", 200), ("ip", 45), ("user_agent", 300)):
        record[name] = _text(value.get(name), f"consent.{name}", limit, errors)
    return record


def add_reader(services: service.ReaderServices, payload: Any, actor: service.Actor,
               today) -> tuple[Reader | None, str]:
    """Add a reader from a JSON payload; return (reader, outcome).

    Outcomes: ``confirmation_sent`` (no consent record: double opt-in, reader not returned
    so the answer does not reveal a known address), ``created`` (active at once),
    ``exists`` (already active). Raises ``InvalidInput`` or ``AddressSuppressed``.
    """
    if not isinstance(payload, dict):
        raise InvalidInput([FieldError("(body)", "must be a JSON object")])
    errors = [FieldError(str(k)[:100], "is not a known field") for k in sorted(set(payload)
                                                                             - _ALLOWED)]
    email = None
    try:
        email = normalise_email(payload.get("email") or "",
                                check_deliverability=services.check_deliverability)
    except ValueError as exc:
        errors.append(FieldError("email", str(exc)))
    topics = payload.get("topics")
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        errors.append(FieldError("topics", "must be an array of topic slugs"))
        topics = []
    form = {"topic": topics}
    for name in ("timezone", "delivery_time", "frequency", "weekly_day", "format"):
        if name in payload:
            value = payload[name]
            form[name] = [str(value) if isinstance(value, int | str) else ""]
    consent = _consent(payload.get("consent"), errors)
    first_name = parse_first_name(payload.get("first_name"), errors)
    prefs = None
    try:
        prefs = parse_preferences(form, services.offered_topics(), today)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors)

    if consent is None:
        service.request_subscription(services, email, [t.slug for t in prefs.topics], actor,
                                     timezone=prefs.timezone, first_name=first_name)
        return None, "confirmation_sent"

    reader = service.find_by_email(email)
    if reader is not None and reader.status == ReaderStatus.ACTIVE.value:
        return reader, "exists"
    if service.is_suppressed(services, email):
        raise AddressSuppressed(email)
    if reader is None:
        reader = Reader(email=email, email_hash=email_hash(email, services.hash_key),
                        source=actor.source)
        db.session.add(reader)
        db.session.flush()
    service.set_topics(reader, prefs.topics)
    reader.first_name = first_name
    reader.frequency = prefs.frequency
    reader.weekly_day = prefs.weekly_day
    reader.delivery_minute = prefs.delivery_minute
    reader.timezone = prefs.timezone
    reader.format = prefs.format
    reader.status = ReaderStatus.ACTIVE.value
    reader.confirmed_at = utcnow()
    service.record_event(services, reader, "subscribe", actor, detail={
        "topics": [t.slug for t in prefs.topics], "consent_record": consent})
    service.record_event(services, reader, "confirm", actor, detail={"method": "consent_record"})
    db.session.commit()
    return reader, "created"
