"""The admin area, ``/admin``: every page behind sign-in, every action checked against the
admin's role (``accounts.roles``), every change written to the audit log.

Views stay thin: they parse the form, ask :func:`allowed`, call a domain service, record
what was done and redirect (POST, redirect, GET), so a reload never repeats an action.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, redirect, request, url_for

from newsletter.accounts import audit
from newsletter.accounts.roles import Permission, may
from newsletter.web.logins import current_admin

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="../templates")
OPEN_ENDPOINTS = {"admin.login", "admin.login_code"}


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
    """Where to go after sign-in: a path inside the admin area, never another site."""
    value = value or ""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/admin") or "\\" in value:
        return url_for("admin.dashboard")
    return value


def register(app) -> None:
    from newsletter.web.admin import (  # noqa: F401 - the views register on bp
        accounts,
        auth,
        composer,
        content,
        dashboard,
        editions,
        outbox,
        settings,
    )

    app.register_blueprint(bp)
