"""Who is signed in as a reader, and how they came in: through a link sent to them alone
(an own-inbox session, the only kind that reaches the account) or one in mail people forward.

A reader's session is a signed cookie naming the reader and the version of their address
(``readers.address_version``): a change of address, or its undo, ends every session from
before it.
"""

from __future__ import annotations

import time

from flask import current_app, render_template, request, session
from flask_login import UserMixin, current_user, login_user

from newsletter.db import db, utcnow
from newsletter.subscribers import fresh_links, service
from newsletter.subscribers.models import Reader
from newsletter.web.logins import forget_admin_session

READER_PREFIX = "reader:"


class ReaderLogin(UserMixin):
    """A reader signed in through a link (admins are ``web.logins.AdminLogin``)."""

    def __init__(self, reader: Reader):
        self.reader = reader

    def get_id(self) -> str:
        return f"{READER_PREFIX}{self.reader.id}"


def load_reader_login(user_id: str):
    """The reader behind a session id ``reader:<id>`` (see ``web.logins``), or None."""
    number = user_id[len(READER_PREFIX):]
    if not user_id.startswith(READER_PREFIX) or not (number.isascii() and number.isdigit()):
        return None
    signed_in_at = session.get("reader_signed_in_at", 0)
    if time.time() - signed_in_at > current_app.config["READER_SESSION_MINUTES"] * 60:
        return None
    reader = service.get_reader(int(user_id[len(READER_PREFIX):]))
    if reader is None or session.get("reader_address") != _address_mark(reader):
        return None  # gone, or its address changed (or was put back) since: signed out
    return ReaderLogin(reader)


def _address_mark(reader: Reader) -> int:
    """What a session remembers of the reader's address: its version, raised by every
    change and every undo, so no session from before either survives it."""
    return reader.address_version or 0


# How the reader came in (``session["reader_link"]``); only OWN_INBOX reaches the account.
OWN_INBOX = "account"    # a link sent to them alone: confirmation, sign-in link, undo
LIST_MAIL = "list"       # a link in a digest or an edition, which people forward
NEW_ADDRESS = "changed"  # confirming a new address: proves that inbox, not the account


def sign_in(reader: Reader, how: str = OWN_INBOX) -> None:
    """Sign the reader in, saying how they came in (:data:`OWN_INBOX`, :data:`LIST_MAIL`,
    :data:`NEW_ADDRESS`). The session names the reader's address: when it changes, the
    session ends."""
    forget_admin_session()  # an admin session in this browser ends for good, row and all
    db.session.commit()
    session.clear()
    login_user(ReaderLogin(reader))
    session["reader_signed_in_at"] = time.time()
    session["reader_link"] = how
    session["reader_address"] = _address_mark(reader)


def signed_in_from_own_inbox() -> bool:
    """Whether the reader came in through a link sent to them alone (a confirmation, a
    sign-in link they asked for), not one in list mail that may have been forwarded, nor
    by confirming a new address (which anyone who asked for the change can do). Only
    such a session may change the address, download the data, open billing or erase."""
    return session.get("reader_link") == OWN_INBOX


def own_inbox_needed(reader: Reader, what: str):
    """The answer to an account action asked from any other session: a fresh link goes to
    the reader's current address, and the page says so (403, nothing done)."""
    send_fresh_link(reader)
    return render_template("readers/fresh_link.html", reader=reader, what=what,
                           how=session.get("reader_link")), 403


def send_fresh_link(reader: Reader) -> None:
    """Email the reader a sign-in link of their own: at most one every
    ``fresh_links.FRESH_LINK_EVERY`` (the pages that ask are open to whoever holds a forwarded
    link), and none for a HEAD."""
    if reader.email and request.method != "HEAD":
        fresh_links.send_fresh_link(reader, utcnow())


def current_reader() -> Reader | None:
    """The reader signed in through a link, or None (a visitor, or an admin)."""
    if current_user.is_authenticated and isinstance(current_user, ReaderLogin):
        return current_user.reader
    return None
