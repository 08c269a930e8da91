"""JSON bodies in and problem answers out, shared by every API endpoint."""

from __future__ import annotations

import json

from flask import jsonify, request

from newsletter.validation import FieldError, JsonRefused, load_json

# One status per kind of error (``newsletter.errors``); the API's other answers (401, 403,
# 413, 415) are about the request itself and keep their own.
KIND_STATUS = {"invalid": 400, "conflict": 409, "not_found": 404, "unavailable": 503}


def api_error(kind: str, message: str, *, status: int | None = None,
              problems: list[FieldError] | None = None):
    """The API's one error shape: ``{"error": kind, "message": sentence}``, plus
    ``problems`` (each field that is wrong and why) for invalid input."""
    body: dict = {"error": kind, "message": message}
    if problems is not None:
        body["problems"] = [problem.as_dict() for problem in problems]
    return jsonify(body), status or KIND_STATUS[kind]


def problems(errors: list[FieldError]):
    """400 naming each field that is wrong and why."""
    count = len(errors)
    return api_error("invalid", f"the request has {count} problem{'s' if count != 1 else ''}"
                                ": " + "; ".join(str(error) for error in errors),
                     problems=errors)


def json_body():
    """(payload, None) for a JSON body, or (None, error response) saying what is wrong."""
    if not request.is_json:
        return None, api_error("unsupported_media_type", "send the body as application/json",
                               status=415)
    raw = request.get_data(cache=False)
    try:
        return load_json(raw), None
    except UnicodeDecodeError:
        return None, problems([FieldError("(body)", "is not UTF-8")])
    except JsonRefused as exc:
        return None, problems([FieldError("(body)", str(exc))])
    except json.JSONDecodeError as exc:
        return None, problems([FieldError("(body)", f"is not valid JSON: {exc.msg} at line "
                                                    f"{exc.lineno} column {exc.colno}")])
