"""Special editions asked for by another system (the API): a JSON payload checked field by
field, refused when nobody would receive it, and created as the composer creates a draft —
or scheduled, in the same statement, when it names a time.

Contract of :func:`create_requested`:

* Every problem with the payload is reported at once (``InvalidInput``, each error naming
  its field); when there is any, nothing is written.
* An edition whose audience has no recipient *now* is refused, with the reason (field
  ``topics``; ``tier`` for a paid edition to every topic).
* The edition has the composer's shape: the sanitised rendering of the Markdown in
  ``content["body_html"]``/``["body_text"]``, the source in ``content["markdown"]``, the
  synthesis ids in one untitled section, a preheader taken from the first paragraph when
  none is given.
* With an idempotency key, one key names one creation: the key is the edition's unique
  ``idempotency_key`` (scoped to the caller), so two requests with the same key — one after
  the other or at the same moment — create one edition; the other gets that edition back
  (``created`` False), even once its ``send_at`` has passed. A key reused for a different
  request raises :class:`KeyReused`.

It goes through ``service.create_edition`` (which ``drafts.save_draft`` calls for a new
draft) rather than ``save_draft`` then ``drafts.schedule``: only it takes the key and
``send_at`` in the one INSERT, so a crash or a race never leaves a keyless or unscheduled
copy of what was asked for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter.billing import entitlements
from newsletter.db import db
from newsletter.editions.audience import nobody_would_receive
from newsletter.editions.markdown import first_paragraph_text, render_markdown
from newsletter.editions.models import Edition, EditionKind
from newsletter.editions.service import create_edition, validate_edition
from newsletter.editions.specials import PREHEADER_LENGTH
from newsletter.errors import Conflict
from newsletter.validation import FieldError, InvalidInput, aware_datetime

FIELDS = ("subject", "preheader", "markdown", "synthesis_ids", "topics", "tier", "send_at")
MAX_SYNTHESES = 50
MAX_TOPICS = 100
# Ids are refused (synthesis ids) or not found (edition ids) from here on, as in the admin
# area: far from SQLite's 2**63 overflow.
ID_LIMIT = 2**62
# A send_at this far in the past still counts as "now": the client's clock and the trip here.
SEND_AT_SLACK = timedelta(minutes=1)
KEY_LENGTH = 100
# The domain names the synthesis ids after its own shape; the API's callers know this name.
_API_FIELD = {"sections": "synthesis_ids"}


class KeyReused(Conflict):
    """The idempotency key already names an edition made from a different request."""

    def __init__(self, edition_id: int):
        self.edition_id = edition_id
        super().__init__(f"the key already made edition {edition_id}")


@dataclass(frozen=True)
class EditionRequest:
    """A payload that passed every check, normalised (topics and ids without repeats)."""

    subject: str
    preheader: str
    markdown: str
    synthesis_ids: list[int]
    topics: list[str]
    tier: str
    send_at: datetime | None

    def fingerprint(self) -> str:
        """The same for two requests that would make the same edition."""
        data = asdict(self)
        data["send_at"] = self.send_at.isoformat() if self.send_at else None
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _text(payload: dict, name: str, errors: list[FieldError]) -> str:
    value = payload.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be text"))
        return ""
    return value


def _synthesis_ids(value: Any, errors: list[FieldError]) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(FieldError("synthesis_ids", "must be an array of synthesis ids"))
        return []
    if len(value) > MAX_SYNTHESES:
        errors.append(FieldError("synthesis_ids", f"has more than {MAX_SYNTHESES} ids"))
        return []
    ids: list[int] = []
    for index, item in enumerate(value):
        # bool is an int in Python; JSON true is no id. Floats (3.0) are no id either.
        if isinstance(item, bool) or not isinstance(item, int) \
                or not 1 <= item < ID_LIMIT:
            errors.append(FieldError(f"synthesis_ids[{index}]",
                                     f"must be a whole number from 1 to {ID_LIMIT - 1}"))
        elif item not in ids:
            ids.append(item)
    return ids


def _topics(value: Any, errors: list[FieldError]) -> list[str]:
    if value is None:
        errors.append(FieldError("topics", "is required: the topic slugs whose readers get "
                                           "the edition ([] for every reader)"))
        return []
    if not isinstance(value, list) or not all(isinstance(slug, str) for slug in value):
        errors.append(FieldError("topics", "must be an array of topic slugs"))
        return []
    if len(value) > MAX_TOPICS:
        errors.append(FieldError("topics", f"has more than {MAX_TOPICS} topics"))
        return []
    return list(dict.fromkeys(value))


def _send_at(value: Any, now: datetime | None, errors: list[FieldError]) -> datetime | None:
    if value is None:
        return None
    try:
        send_at = aware_datetime(value)
    except ValueError as exc:
        errors.append(FieldError("send_at", str(exc)))
        return None
    if now is not None and send_at < now - SEND_AT_SLACK:
        errors.append(FieldError("send_at", "is in the past"))
        return None
    return send_at


def _rendered(markdown: str, errors: list[FieldError]) -> tuple[str, str]:
    if not markdown.strip():
        return "", ""
    try:
        return render_markdown(markdown)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        return "", ""


def parse_request(payload: Any, now: datetime | None) -> tuple[EditionRequest, str, str]:
    """Check a decoded JSON payload; return the request with the Markdown's rendering
    (``body_html``, ``body_text``), or raise ``InvalidInput`` listing every problem:
    unknown fields, wrong types, a missing subject, no body and no syntheses, unknown topics
    or syntheses, a tier that is not ``all`` or ``paid``, a ``send_at`` without an offset or
    before ``now`` (beyond :data:`SEND_AT_SLACK`; not checked when ``now`` is None)."""
    if not isinstance(payload, dict):
        raise InvalidInput([FieldError("(body)", "must be a JSON object")])
    errors = [FieldError(str(name)[:100], "is not a known field")
              for name in sorted(set(payload) - set(FIELDS))]
    subject = _text(payload, "subject", errors)
    preheader = _text(payload, "preheader", errors).strip()
    markdown = _text(payload, "markdown", errors).replace("\r\n", "\n")
    synthesis_ids = _synthesis_ids(payload.get("synthesis_ids"), errors)
    topics = _topics(payload.get("topics"), errors)
    tier = payload.get("tier", entitlements.TIER_ALL)
    if tier not in entitlements.TIERS:  # also any value that is not text
        errors.append(FieldError("tier", f"must be one of {', '.join(entitlements.TIERS)}"))
        tier = entitlements.TIER_ALL
    send_at = _send_at(payload.get("send_at"), now, errors)
    body_html, body_text = _rendered(markdown, errors)
    if not markdown.strip() and not synthesis_ids and not any(
            e.field.startswith(("markdown", "synthesis_ids")) for e in errors):
        errors.append(FieldError("markdown", "is required unless synthesis_ids are given"))
    sections = [{"title": "", "synthesis_ids": synthesis_ids}] if synthesis_ids else []
    try:
        subject = validate_edition(subject=subject, preheader=preheader, sections=sections,
                                   has_body=True, topics=topics, tier=tier)
    except InvalidInput as exc:
        reported = {e.field for e in errors}  # a subject that was no text is not also missing
        errors.extend(FieldError(_API_FIELD.get(e.field, e.field), e.message)
                      for e in exc.errors if e.field not in reported)
    if errors:
        raise InvalidInput(errors)
    request = EditionRequest(subject=subject, preheader=preheader, markdown=markdown,
                             synthesis_ids=synthesis_ids, topics=topics, tier=tier,
                             send_at=send_at)
    return request, body_html, body_text


def _no_recipients(request: EditionRequest) -> FieldError:
    paid = request.tier == entitlements.TIER_PAID
    field = "tier" if paid and not request.topics else "topics"
    return FieldError(field, nobody_would_receive(request.topics, paid))


def _by_key(key: str) -> Edition | None:
    return db.session.scalar(select(Edition).where(Edition.idempotency_key == key))


def _replayed(edition: Edition, request: EditionRequest) -> Edition:
    # The fingerprint is stored with the edition (one commit). An edition edited in the
    # composer since has lost it; it stays the answer to its key.
    stored = (edition.content or {}).get("request_sha256")
    if stored not in (None, request.fingerprint()):
        raise KeyReused(edition.id)
    return edition


def create_requested(payload: Any, *, now: datetime, recipients: Callable[[Edition], int],
                     idempotency_key: str | None = None) -> tuple[Edition, bool]:
    """Create the special edition a payload asks for; return ``(edition, created)``.

    ``recipients`` counts an edition's audience as fan-out would now (the delivery
    engine's ``audience_size``; passed in, as this layer sits below it).
    ``idempotency_key`` is the caller's key, already scoped to the caller. Raises
    ``InvalidInput`` (nothing written) or :class:`KeyReused`.
    """
    if idempotency_key is not None:
        existing = _by_key(idempotency_key)
        if existing is not None:
            # A retry may come after the send_at it asked for: the same request still.
            return _replayed(existing, parse_request(payload, None)[0]), False
    request, body_html, body_text = parse_request(payload, now)
    probe = Edition(kind=EditionKind.SPECIAL.value,
                    audience={"topics": request.topics, "tier": request.tier})
    if recipients(probe) == 0:
        raise InvalidInput([_no_recipients(request)])
    sections = ([{"title": "", "synthesis_ids": request.synthesis_ids}]
                if request.synthesis_ids else [])
    try:
        edition = create_edition(
            subject=request.subject, sections=sections, body_html=body_html,
            body_text=body_text, topics=request.topics, tier=request.tier,
            preheader=request.preheader or first_paragraph_text(body_html, PREHEADER_LENGTH),
            send_at=request.send_at, kind=EditionKind.SPECIAL.value,
            idempotency_key=idempotency_key, markdown=request.markdown,
            request_sha256=request.fingerprint() if idempotency_key is not None else None)
        # One commit: the edition, its Markdown and its request's fingerprint together, so
        # a key reused with another body can never find an edition without a fingerprint.
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        winner = _by_key(idempotency_key) if idempotency_key is not None else None
        if winner is None:
            raise
        return _replayed(winner, request), False
    return edition, True


def edition_as_dict(edition: Edition, url: str | None = None) -> dict[str, Any]:
    """What the API says of any edition (special or digest), without its counts."""
    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    data = {
        "id": edition.id,
        "kind": edition.kind,
        "status": edition.status,
        "subject": edition.subject,
        "preheader": edition.preheader,
        "audience": {"topics": list((edition.audience or {}).get("topics", [])),
                     "tier": (edition.audience or {}).get("tier", entitlements.TIER_ALL)},
        "send_at": moment(edition.send_at),
        "created_at": moment(edition.created_at),
        "started_at": moment(edition.started_at),
        "finished_at": moment(edition.finished_at),
    }
    if url:
        data["url"] = url
    return data


def get_edition(edition_id: int) -> Edition | None:
    """Any edition by id, or None — for an id past what any table holds, too."""
    return db.session.get(Edition, edition_id) if 0 < edition_id < ID_LIMIT else None
