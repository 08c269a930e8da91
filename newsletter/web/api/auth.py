"""Bearer-token authentication and scopes for the API.

Every view declares the scopes that let a token in (:func:`require_token`); a view whose
answer depends on the request (a draft or a scheduled edition) checks the narrower scope
itself with :func:`lacks`, before it changes anything.
"""

from __future__ import annotations

from functools import wraps

from flask import g, request

from newsletter.accounts import audit
from newsletter.accounts import service as accounts
from newsletter.accounts.scopes import Scope
from newsletter.web.api.payloads import api_error


def _unauthorized():
    response, status = api_error("unauthorized", "send a live API token as "
                                 "'Authorization: Bearer <token>'", status=401)
    response.status_code = status
    response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def forbidden(*needed: Scope):
    """403 naming the scope (or scopes, any one of which would do) the token lacks."""
    names = " or ".join(scope.value for scope in needed)
    return api_error("forbidden", f"this token lacks the {names} scope", status=403)


def lacks(*needed: Scope):
    """None when the request's token holds one of ``needed``, else the 403 answer."""
    if any(g.api_token.allows(scope) for scope in needed):
        return None
    return forbidden(*needed)


def require_token(*scopes: Scope):
    """Reject the request with a bare 401 unless it carries a live API token, and with 403
    unless that token holds one of ``scopes`` (at least one must be named)."""
    if not scopes or not all(isinstance(scope, Scope) for scope in scopes):
        raise TypeError("require_token needs the scopes that let a token in")

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                return _unauthorized()
            token = accounts.authenticate(secret.strip())
            if token is None:
                return _unauthorized()
            g.api_token = token
            return lacks(*scopes) or view(*args, **kwargs)

        wrapper.required_scopes = frozenset(scopes)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def token_actor() -> audit.AdminActor:
    """The request's token as the audit log names it: ``api token <name>``."""
    return audit.AdminActor(admin_id=None, name=f"api token {g.api_token.name}",
                            ip=request.remote_addr)
