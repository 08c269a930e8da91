"""HEAD behaves as GET everywhere: it never confirms, changes an address, unsubscribes,
saves preferences or sends mail — whatever body it carries."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.db import db
from newsletter.subscribers.models import ConsentEvent, Reader, Suppression
from tests.factories_readers import links, make_reader

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def path_of(url: str) -> str:
    return url.split("news.example", 1)[1]


def _fingerprint(app) -> tuple:
    """Everything a state-changing request could touch: readers, consent, suppression,
    the outbox (mail sent)."""
    db.session.expire_all()
    readers = tuple(db.session.execute(
        select(Reader.id, Reader.email, Reader.status, Reader.pending_email)
        .order_by(Reader.id)).all())
    events = db.session.scalar(select(func.count(ConsentEvent.id)))
    suppressed = db.session.scalar(select(func.count(Suppression.id)))
    outbox = Path(app.config["OUTBOX_DIR"])
    mail = len(list(outbox.glob("*.eml"))) if outbox.exists() else 0
    return readers, events, suppressed, mail


@pytest.fixture
def pending(topics):
    return make_reader("pending@example.com", status="pending")


@pytest.fixture
def active(topics):
    return make_reader("ada@example.com")


def test_head_on_a_confirmation_link_confirms_nothing_and_signs_nobody_in(app, pending):
    client = app.test_client()
    before = _fingerprint(app)
    response = client.head(path_of(links().confirm(pending.id, pending.email, 0)))
    assert response.status_code == 200
    with client.session_transaction() as cookie_session:
        assert "_user_id" not in cookie_session, "nobody is signed in"
    assert _fingerprint(app) == before
    assert db.session.get(Reader, pending.id).status == "pending"


def test_head_on_an_address_change_link_changes_nothing(app, active):
    before = _fingerprint(app)
    response = app.test_client().head(path_of(links().email_change(active.id,
                                                                    "new@example.com")))
    assert response.status_code == 200
    assert _fingerprint(app) == before
    assert db.session.get(Reader, active.id).email == "ada@example.com"


def test_head_with_the_one_click_body_unsubscribes_nobody(app, active):
    before = _fingerprint(app)
    response = app.test_client(use_cookies=False).head(
        path_of(links().unsubscribe(active.id)), data=ONE_CLICK)
    assert response.status_code == 200
    assert _fingerprint(app) == before
    assert db.session.get(Reader, active.id).status == "active"


@pytest.mark.parametrize("path", ["/subscribe", "/preferences/link"])
def test_head_with_a_form_sends_no_mail_and_adds_nobody(app, active, path):
    before = _fingerprint(app)
    for _ in range(30):  # far past the rate limits, which count POSTs only
        response = app.test_client().head(path, data={"email": "ada@example.com",
                                                      "topic": "ai-policy-and-safety"})
        assert response.status_code == 200
    assert _fingerprint(app) == before


def test_head_on_the_preference_centre_saves_nothing(app, active):
    client = app.test_client()
    client.get(path_of(links().manage(active.id)))  # signed in, as from an email
    before = _fingerprint(app)
    response = client.head("/preferences", data={"frequency": "weekly", "format": "text"})
    assert response.status_code == 200
    assert _fingerprint(app) == before
    assert db.session.get(Reader, active.id).frequency == "daily"


def test_head_on_every_route_that_changes_state_changes_nothing(app, active, pending):
    """Every rule that takes POST, PUT, PATCH or DELETE, asked with HEAD and a body that
    would be accepted by its POST: never a 5xx, never a change."""
    rules = [rule for rule in app.url_map.iter_rules()
             if rule.methods & {"POST", "PUT", "PATCH", "DELETE"}]
    assert len(rules) >= 10
    tokens = {"confirm": links().confirm(pending.id, pending.email, 0),
              "email_change": links().email_change(active.id, "other@example.com"),
              # A real undo link (its POST would move the reader to another address).
              "email_undo": links().email_undo(active.id, "earlier@example.com", active.email),
              "unsubscribe": links().unsubscribe(active.id)}
    client = app.test_client()
    client.get(path_of(links().manage(active.id)))
    before = _fingerprint(app)
    asked = []
    for rule in rules:
        values = {}
        for argument in rule.arguments:
            match = next((url for name, url in tokens.items() if name in rule.endpoint), None)
            values[argument] = path_of(match).rsplit("/", 1)[1] if match else "1"
        path = rule.rule
        for argument, value in values.items():
            path = path.replace(f"<{argument}>", value).replace(f"<int:{argument}>", value)
        response = client.head(path, data={**ONE_CLICK, "email": "x@example.com",
                                           "confirm": "erase", "frequency": "weekly"})
        asked.append((path, response.status_code))
        assert response.status_code < 500, (path, response.status_code)
    assert _fingerprint(app) == before, asked
