"""Bearer-token authentication for the API."""

from __future__ import annotations

from functools import wraps

from flask import g, jsonify, request

from newsletter.accounts import service as accounts


def _unauthorized():
    response = jsonify(error="unauthorized")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def require_token(view):
    """Reject the request with a bare 401 unless it carries a live API token."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return _unauthorized()
        token = accounts.authenticate(secret.strip())
        if token is None:
            return _unauthorized()
        g.api_token = token
        return view(*args, **kwargs)

    return wrapper
