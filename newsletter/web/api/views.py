"""JSON API v1: ingest and list syntheses."""

from __future__ import annotations

import json
from datetime import datetime

from flask import Blueprint, jsonify, request

from newsletter.content import service as content
from newsletter.content.validation import InvalidSynthesis
from newsletter.validation import FieldError
from newsletter.web.api.auth import require_token
from newsletter.web.urls import absolute_url

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_LIMIT = 200


def problems(errors: list[FieldError], status: int = 400):
    return jsonify(error="invalid request",
                   problems=[error.as_dict() for error in errors]), status


def json_body():
    """(payload, None) for a JSON body, or (None, error response) saying what is wrong."""
    if not request.is_json:
        return None, (jsonify(error="unsupported media type",
                              message="send the body as application/json"), 415)
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw), None
    except UnicodeDecodeError:
        return None, problems([FieldError("(body)", "is not UTF-8")])
    except json.JSONDecodeError as exc:
        return None, problems([FieldError("(body)", f"is not valid JSON: {exc.msg} at line "
                                                    f"{exc.lineno} column {exc.colno}")])


def _payload(synthesis) -> dict:
    return content.synthesis_as_dict(
        synthesis, url=absolute_url("public.synthesis", slug=synthesis.slug)
    )


@bp.post("/syntheses")
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
    status = 201 if result.outcome is content.Outcome.CREATED else 200
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


@bp.get("/syntheses")
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
