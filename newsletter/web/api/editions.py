"""JSON API v1: special editions made by another system (a CMS's breaking news), and any
edition's status and counts (routes in :mod:`newsletter.web.api`)."""

from __future__ import annotations

from flask import g, jsonify, request, url_for

from newsletter.accounts import audit
from newsletter.accounts.scopes import Scope
from newsletter.db import utcnow
from newsletter.delivery import service as sending
from newsletter.delivery import stats
from newsletter.editions import intake
from newsletter.editions.models import Edition
from newsletter.validation import FieldError, InvalidInput
from newsletter.web.api.auth import lacks, require_token, token_actor
from newsletter.web.api.payloads import api_error, json_body, problems
from newsletter.web.urls import absolute_url

COUNTS = ("queued", "claimed", "sent", "deferred", "bounced", "failed", "cancelled",
          "opened", "clicked", "unsubscribed", "complained")


def _payload(edition: Edition) -> dict:
    return intake.edition_as_dict(edition,
                                  url=absolute_url("admin.edition", edition_id=edition.id))


def _idempotency_key() -> tuple[str | None, FieldError | None]:
    """The caller's ``Idempotency-Key`` (bare, or a quoted string as the IETF draft writes
    it), scoped to their token; (None, None) without one."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None, None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 0 < len(key) <= intake.KEY_LENGTH or not all("!" <= ch <= "~" for ch in key):
        return None, FieldError("Idempotency-Key", f"must be 1 to {intake.KEY_LENGTH} "
                                                   "printable ASCII characters, no spaces")
    return f"api:{g.api_token.id}:{key}", None


def _schedules(payload) -> bool:
    """Whether the request asks for the edition to go out (any ``send_at``, valid or not)."""
    return isinstance(payload, dict) and payload.get("send_at") is not None


@require_token(Scope.EDITIONS_DRAFT, Scope.EDITIONS_SEND)
def create_edition():
    """201 with the new edition — a draft, or scheduled with ``send_at`` — and how many
    readers it would go to now; 200 with the same edition when its ``Idempotency-Key``
    comes again with the same request; 422 listing every problem (nothing created), or
    when the key was used for a different request. A draft needs ``editions:draft``, a
    ``send_at`` needs ``editions:send``: 403 otherwise, checked before anything else."""
    payload, error = json_body()
    if error:
        return error
    refused = lacks(Scope.EDITIONS_SEND if _schedules(payload) else Scope.EDITIONS_DRAFT)
    if refused:
        return refused
    key, key_error = _idempotency_key()
    if key_error:
        return problems([key_error])
    try:
        edition, created = intake.create_requested(payload, now=utcnow(),
                                                   recipients=sending.audience_size,
                                                   idempotency_key=key)
    except InvalidInput as exc:
        return problems(exc.errors)
    except intake.KeyReused as exc:
        return api_error("conflict", f"This Idempotency-Key already made edition "
                                     f"{exc.edition_id} from a different request; use a new "
                                     "key for a new edition.")
    recipients = sending.audience_size(edition)
    if created:
        # After intake's commit: the edition's id is known only once it is written.
        audit.record(token_actor(), "scheduled edition" if edition.send_at else "saved draft",
                     f"edition {edition.id}", {
                         "subject": edition.subject, "status": edition.status,
                         "send_at": edition.send_at.isoformat() if edition.send_at else None,
                         "audience": edition.audience, "recipients": recipients})
    response = jsonify({**_payload(edition), "recipients": recipients})
    response.status_code = 201 if created else 200
    response.headers["Location"] = url_for("api.get_edition", edition_id=edition.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@require_token(Scope.EDITIONS_DRAFT, Scope.EDITIONS_SEND)
def get_edition(edition_id: int):
    """Any edition (special or digest): status, times and its deliveries' counts — ``sent``
    is accepted by a relay, not delivered; ``opened`` and ``clicked`` count people, not
    machines."""
    edition = intake.get_edition(edition_id)
    if edition is None:
        return api_error("not_found", f"there is no edition {edition_id}")
    funnel = stats.funnel(edition.id)
    return jsonify({**_payload(edition), "counts": {name: funnel[name] for name in COUNTS}})
