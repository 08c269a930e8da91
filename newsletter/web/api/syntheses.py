"""JSON API v1: ingest and list syntheses (routes in :mod:`newsletter.web.api`)."""

from __future__ import annotations

from flask import jsonify, request

from newsletter.accounts import audit
from newsletter.accounts.scopes import Scope
from newsletter.content import service as content
from newsletter.content.validation import InvalidSynthesis
from newsletter.validation import FieldError, aware_datetime, whole_number
from newsletter.web.api.auth import require_token, token_actor
from newsletter.web.api.payloads import json_body, problems
from newsletter.web.urls import absolute_url

MAX_LIMIT = 200


def _payload(synthesis) -> dict:
    return content.synthesis_as_dict(
        synthesis, url=absolute_url("public.synthesis", slug=synthesis.slug)
    )


@require_token(Scope.SYNTHESES_WRITE)
def create_synthesis():
    """Create or update (by ``external_id``) one synthesis: 201 created, 200 updated. A
    creation or a change is audited under the token's name (after the ingest's own commit);
    the same payload again changes nothing and writes nothing."""
    payload, error = json_body()
    if error:
        return error
    try:
        result = content.ingest(payload)
    except InvalidSynthesis as exc:
        return problems(exc.errors)
    created = result.outcome is content.IngestOutcome.CREATED
    if created or result.outcome is content.IngestOutcome.UPDATED:
        synthesis = result.synthesis
        audit.record(token_actor(), "created synthesis" if created else "updated synthesis",
                     f"synthesis {synthesis.id}", {"title": synthesis.title[:200],
                                                   "status": synthesis.status})
    status = 201 if created else 200
    body = {"outcome": result.outcome.value, "synthesis": _payload(result.synthesis)}
    return jsonify(body), status


def _query_args():
    errors: list[FieldError] = []
    args = request.args
    topic = None
    if args.get("topic"):
        topic = content.get_topic(args["topic"])
        if topic is None:
            errors.append(FieldError("topic", f"unknown topic {args['topic'][:120]!r}"))
    since = None
    if args.get("since"):
        try:
            since = aware_datetime(args["since"])
        except ValueError as exc:
            errors.append(FieldError("since", str(exc)))
    status: str | None = args.get("status", "published")
    if status not in {"published", "draft", "all"}:
        errors.append(FieldError("status", "must be published, draft or all"))
    elif status == "all":
        status = None
    numbers = {}
    for name, default, low, high in (("limit", 50, 1, MAX_LIMIT), ("offset", 0, 0, 10**9)):
        value = whole_number(args.get(name, str(default)), low, high)
        if value is None:
            errors.append(FieldError(name, f"must be a whole number from {low} to {high}"))
        else:
            numbers[name] = value
    return topic, since, status, numbers, errors


@require_token(Scope.SYNTHESES_WRITE)
def list_syntheses():
    """Oldest first; ``since`` (exclusive) and ``topic`` filter; ``offset``/``limit`` page."""
    topic, since, status, numbers, errors = _query_args()
    if errors:
        return problems(errors)
    items = content.find_syntheses(topic=topic, since=since, status=status,
                                   limit=numbers["limit"], offset=numbers["offset"])
    body: dict = {"items": [_payload(item) for item in items]}
    if len(items) == numbers["limit"]:
        body["next_offset"] = numbers["offset"] + numbers["limit"]
    return jsonify(body)
