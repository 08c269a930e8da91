"""The one ``user_loader``: a session id says whether a reader (``reader:<id>``) or an admin
(``admin:<id>``) is signed in, and each kind is loaded by its own rules.

A browser holds one of the two at a time: signing in as either clears the session first.
An admin's cookie also carries the id of a server-side session (``accounts.sessions``);
without its row, nothing opens.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, request, session
from flask_login import UserMixin, current_user

from newsletter.accounts import admins, sessions
from newsletter.accounts.models import Admin
from newsletter.extensions import login_manager

ADMIN_PREFIX = "admin:"
SESSION_KEY = "admin_session"


class AdminLogin(UserMixin):
    """An admin signed in with a password (and a code, when they turned one on), in the
    browser whose server-side session is ``session_row_id``."""

    def __init__(self, admin: Admin, session_row_id: int | None = None):
        self.admin = admin
        self.session_row_id = session_row_id

    def get_id(self) -> str:
        return f"{ADMIN_PREFIX}{self.admin.id}"


def forget_admin_session() -> None:
    """Delete the row of the admin session this browser's cookie names, if any (uncommitted):
    called before the cookie is cleared for another sign-in, so no copy of it lives on."""
    sessions.close_session(session.get(SESSION_KEY))


def browser() -> sessions.Browser:
    return sessions.Browser(ip=request.remote_addr, user_agent=request.user_agent.string)


def load_admin_login(user_id: str) -> AdminLogin | None:
    number = user_id[len(ADMIN_PREFIX):]
    if not (number.isascii() and number.isdigit() and len(number) < 12):
        return None
    row = sessions.find_session(
        session.get(SESSION_KEY),
        timedelta(hours=current_app.config["ADMIN_SESSION_HOURS"]))
    if row is None or row.admin_id != int(number):
        return None  # signed out, signed out everywhere, too old, or another admin's
    admin = admins.get_admin(row.admin_id)
    if admin is None:
        return None  # disabled
    return AdminLogin(admin, row.id)


@login_manager.user_loader
def load_user(user_id: str):
    if user_id.startswith(ADMIN_PREFIX):
        return load_admin_login(user_id)
    from newsletter.web.public.reader_sessions import load_reader_login

    return load_reader_login(user_id)


def current_admin() -> Admin | None:
    if current_user.is_authenticated and isinstance(current_user, AdminLogin):
        return current_user.admin
    return None


def current_session_row() -> int | None:
    """The row id of this browser's admin session (None for anyone else)."""
    if current_user.is_authenticated and isinstance(current_user, AdminLogin):
        return current_user.session_row_id
    return None
