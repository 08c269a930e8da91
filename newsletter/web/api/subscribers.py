"""JSON API v1: readers added, read and erased by another system (routes in
:mod:`newsletter.web.api`). Each is its own scope: adding readers (a signup form elsewhere)
neither reads nor erases them. The audit log names readers by id only, as the admin area's
does, so an erased reader's address does not live on there."""

from __future__ import annotations

from datetime import date

from flask import g, jsonify

from newsletter.accounts import audit
from newsletter.accounts.scopes import Scope
from newsletter.billing.gateway import BillingUnavailable
from newsletter.db import db
from newsletter.subscribers import intake, privacy, service
from newsletter.subscribers.models import Reader
from newsletter.validation import MAX_ID, InvalidInput
from newsletter.web.actors import request_actor
from newsletter.web.api.auth import require_token, token_actor
from newsletter.web.api.payloads import api_error, json_body, problems
from newsletter.wiring import reader_services


def _reader_json(reader: Reader) -> dict:
    data = privacy.export_reader(reader)
    return {"id": reader.id, **data["profile"], "preferences": data["preferences"]}


@require_token(Scope.READERS_ADD)
def create_subscriber():
    """202 when a confirmation was sent (double opt-in), 201 when a consent record made the
    reader active, 200 when already active, 409 when a suppressed address comes with a
    consent record (only the person can lift a suppression, by confirming). The answer
    shows the reader (address, preferences) only to a token that may also read readers;
    others get the id alone, so adding an address that is already active reads nothing."""
    payload, error = json_body()
    if error:
        return error
    try:
        reader, outcome = intake.add_reader(reader_services(), payload, request_actor("api"),
                                            date.today())
    except InvalidInput as exc:
        return problems(exc.errors)
    except intake.AddressSuppressed:
        return api_error("conflict", "This address is on the suppression list; the person "
                                     "must subscribe and confirm through the site.")
    if reader is None:
        audit.record(token_actor(), "asked a reader to confirm", "reader",
                     {"outcome": outcome})
        return jsonify(outcome=outcome), 202
    if outcome == "created":
        audit.record(token_actor(), "added reader", f"reader {reader.id}",
                     {"consent_record": True})
    status = 201 if outcome == "created" else 200
    shown = (_reader_json(reader) if g.api_token.allows(Scope.READERS_READ)
             else {"id": reader.id})
    return jsonify(outcome=outcome, subscriber=shown), status


def _reader_or_404(reader_id: int):
    reader = service.get_reader(reader_id) if reader_id <= MAX_ID else None
    if reader is None:
        return None, api_error("not_found", f"there is no subscriber {reader_id}")
    return reader, None


@require_token(Scope.READERS_READ)
def get_subscriber(reader_id: int):
    reader, missing = _reader_or_404(reader_id)
    return missing or jsonify(_reader_json(reader))


@require_token(Scope.READERS_WRITE)
def delete_subscriber(reader_id: int):
    """Erase the reader (as "delete me" does): 204, then 404 for the id; 503 with nothing
    erased when their paid subscription cannot be cancelled at Stripe just now. The audit
    entry goes in the erasure's own commit: both or neither."""
    reader, missing = _reader_or_404(reader_id)
    if missing:
        return missing
    audit.record(token_actor(), "erased reader", f"reader {reader.id}", commit=False)
    try:
        privacy.erase_reader(reader_services(), reader, service.Actor(source="api"))
    except BillingUnavailable:
        db.session.rollback()
        return api_error("unavailable", "the reader's paid subscription could not be "
                                        "cancelled at Stripe just now: nothing was erased; "
                                        "try again later")
    return "", 204
