"""JSON bodies in and problem answers out, shared by every API endpoint."""

from __future__ import annotations

import json

from flask import jsonify, request

from newsletter.validation import FieldError, JsonRefused, load_json


def problems(errors: list[FieldError], status: int = 400):
    """An error answer naming each field that is wrong and why."""
    return jsonify(error="invalid request",
                   problems=[error.as_dict() for error in errors]), status


def json_body():
    """(payload, None) for a JSON body, or (None, error response) saying what is wrong."""
    if not request.is_json:
        return None, (jsonify(error="unsupported media type",
                              message="send the body as application/json"), 415)
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
