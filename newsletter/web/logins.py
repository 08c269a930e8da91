"""The one ``user_loader``: a session id says whether a reader (``reader:<id>``) or an admin
(``admin:<id>:<epoch>``) is signed in, and each kind is loaded by its own rules.

A browser holds one of the two at a time: signing in as either clears the session first.
"""

from __future__ import annotations

import hashlib
import time

from flask import current_app, request, session
from flask_login import UserMixin, current_user

from newsletter.accounts import admins
from newsletter.accounts.models import Admin
from newsletter.extensions import login_manager

ADMIN_PREFIX = "admin:"


class AdminLogin(UserMixin):
    """An admin signed in with a password (and a code, when they turned one on)."""

    def __init__(self, admin: Admin):
        self.admin = admin

    def get_id(self) -> str:
        return f"{ADMIN_PREFIX}{self.admin.id}:{self.admin.session_epoch}"


def browser_fingerprint() -> str:
    """The user agent's hash: a stolen session cookie used from another browser is refused."""
    return hashlib.sha256(request.user_agent.string.encode("utf-8", "replace")).hexdigest()[:32]


def load_admin_login(user_id: str) -> AdminLogin | None:
    parts = user_id[len(ADMIN_PREFIX):].split(":")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) < 12 for p in parts):
        return None
    hours = current_app.config["ADMIN_SESSION_HOURS"]
    if time.time() - session.get("admin_signed_in_at", 0) > hours * 3600:
        return None
    if session.get("admin_fp") != browser_fingerprint():
        return None
    admin = admins.get_admin(int(parts[0]))
    if admin is None or admin.session_epoch != int(parts[1]):
        return None  # signed out everywhere, a new password, or a disabled account
    return AdminLogin(admin)


@login_manager.user_loader
def load_user(user_id: str):
    if user_id.startswith(ADMIN_PREFIX):
        return load_admin_login(user_id)
    from newsletter.web.public.readers import load_reader_login

    return load_reader_login(user_id)


def current_admin() -> Admin | None:
    if current_user.is_authenticated and isinstance(current_user, AdminLogin):
        return current_user.admin
    return None
