"""JSON API v1: ingest and list syntheses (routes in :mod:`newsletter.web.api`)."""

from __future__ import annotations

from datetime import datetime

from flask import jsonify, request

from newsletter.content import service as content
from newsletter.content.validation import InvalidSynthesis
from newsletter.validation import FieldError
from newsletter.web.api.auth import require_token
from newsletter.web.api.payloads import json_body, problems
from newsletter.web.urls import absolute_url

MAX_LIMIT = 200


def _payload(synthesis) -> dict:
    return content.synthesis_as_dict(
        synthesis, url=absolute_url("public.synthesis", slug=synthesis.slug)
    )


@require_token
def create_synthesis():
    """Create or update (by ``external_id``) one synthesis: 201 created, 200 updated."""
    payload, error = json_body()
    if error:
        return error
    try:
        result = content.ingest(payload)
    except InvalidSynthesis as exc:
        return problems(exc.errors)
    status = 201 if result.outcome is content.IngestOutcome.CREATED else 200
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
            since = datetime.fromisoformat(args["since"].replace("Z", "+00:00"))
            if since.tzinfo is None:
                errors.append(FieldError("since", "needs a timezone offset, e.g. "
                                                  "2026-11-27T00:00:00Z"))
        except ValueError:
            errors.append(FieldError("since", "is not an ISO 8601 date-time"))
    status: str | None = args.get("status", "published")
    if status not in {"published", "draft", "all"}:
        errors.append(FieldError("status", "must be published, draft or all"))
    elif status == "all":
        status = None
    numbers = {}
    for name, default, low, high in (("limit", 50, 1, MAX_LIMIT), ("offset", 0, 0, 10**9)):
        value = args.get(name, str(default))
        if not value.isdigit() or not low <= int(value) <= high:
            errors.append(FieldError(name, f"must be a whole number from {low} to {high}"))
        else:
            numbers[name] = int(value)
    return topic, since, status, numbers, errors


@require_token
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
