"""The admin area, ``/admin``: every page behind sign-in, every action checked against the
admin's role (``accounts.roles``), every change written to the audit log.

Views stay thin: they parse the form, ask :func:`allowed`, call a domain service, record
what was done and redirect (POST, redirect, GET), so a reload never repeats an action.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import unquote, urlsplit

from flask import Blueprint, abort, g, redirect, request, url_for
from werkzeug.routing import IntegerConverter

from newsletter.accounts import audit
from newsletter.accounts.roles import Permission, may
from newsletter.web.logins import current_admin

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="../templates")
OPEN_ENDPOINTS = {"admin.login", "admin.login_code"}


class AsciiIntegerConverter(IntegerConverter):
    """``<int:…>`` of ASCII digits, at most 2**31 - 1: werkzeug's ``\\d+`` also matches
    "١٢" (``int()`` reads it as 12, so one record answered at many addresses), and every
    record an admin URL names has a 32-bit INTEGER id, which PostgreSQL refuses to compare
    with a bigger number (a 500). Anything else is not found. A route naming a BigInteger
    id would pass ``max=…`` of its own."""

    regex = r"[0-9]+"

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = 2**31 - 1, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)
        self.regex = r"-?[0-9]+" if signed else r"[0-9]+"


@bp.before_request
def _signed_in_only():
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    admin = current_admin()
    if admin is None:
        if request.method in ("GET", "HEAD") and not request.path.endswith(".json"):
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        abort(401, "Sign in to the admin area first.")
    g.admin = admin
    return None


@bp.after_request
def _private(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def _admin_context():
    admin = g.get("admin")
    return {"admin": admin,
            "can": (lambda name: admin is not None and may(admin.role, Permission(name)))}


def requires(permission: Permission):
    """The view runs only for an admin whose role grants ``permission``; others get 403
    and nothing changes."""
    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not may(g.admin.role, permission):
                abort(403, f"Your role ({g.admin.role}) may not do this.")
            return view(*args, **kwargs)
        return wrapped
    return decorate


def actor() -> audit.AdminActor:
    return audit.AdminActor.of(g.admin, request.remote_addr)


def record(action: str, target: str = "", **detail) -> None:
    audit.record(actor(), action, target, detail)


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a path inside the admin area, never another site.

    Browsers read ``\\`` as ``/``, ``%2e`` as a dot and resolve ``..``, and a control
    character cannot go in a header: any of those, and the dashboard it is."""
    value = value or ""
    parts = urlsplit(value)
    segments = unquote(parts.path).split("/")
    if (parts.scheme or parts.netloc or "\\" in value
            or not (value == "/admin" or value.startswith(("/admin/", "/admin?")))
            or any(not c.isprintable() or c.isspace() for c in value)
            or "." in segments or ".." in segments):
        return url_for("admin.dashboard")
    return value


def register(app) -> None:
    from newsletter.web.admin import (  # noqa: F401 - the views register on bp
        accounts,
        auth,
        billing,
        composer,
        content,
        dashboard,
        editions,
        outbox,
        reader_imports,
        readers,
        settings,
        tokens,
    )

    # The admin rules are built with the ASCII converter; rules made before keep theirs.
    default_int = app.url_map.converters["int"]
    app.url_map.converters["int"] = AsciiIntegerConverter
    try:
        app.register_blueprint(bp)
    finally:
        app.url_map.converters["int"] = default_int
