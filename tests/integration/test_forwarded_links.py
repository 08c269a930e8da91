"""A forwarded email gives nobody the reader's account (issue 26, items 1, 2 and 9).

A link in a digest or an edition opens the preference centre, and that is all: the address,
the data, billing and erasure need a link sent to the reader's own inbox; the address left
by a change is always told, with a link that puts it back for at least a week; confirming
a new address proves that inbox, not the account.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine
from sqlalchemy import select

from newsletter.billing.models import BillingAccount
from newsletter.db import db
from newsletter.subscribers.models import AccountMail, ConsentEvent, Reader
from tests.factories_readers import links, make_reader
from tests.support.readers import csrf_from, link_in, outbox_messages

OWNER = "ada@example.com"
STRANGER = "mallory@evil.example"


def fresh(reader_id: int) -> Reader:
    db.session.expire_all()
    return db.session.get(Reader, reader_id)


def form(client, **overrides):
    data = {
        "csrf_token": csrf_from(client, "/preferences"),
        "topic": ["ai-policy-and-safety"], "order-ai-policy-and-safety": "1",
        "frequency": "daily", "weekly_day": "0", "paused_until": "",
        "delivery_time": "07:00", "timezone": "UTC", "format": "html", "new_email": "",
    }
    data.update(overrides)
    return data


def follow(client, url: str) -> None:
    assert client.get(urlsplit(url).path).status_code == 303


def from_a_forwarded_digest(app, reader: Reader):
    """A stranger's browser, signed in by the preference link of a digest."""
    client = app.test_client()
    follow(client, links().manage(reader.id, in_list_mail=True))
    return client


def from_own_inbox(app, reader: Reader):
    client = app.test_client()
    follow(client, links().manage(reader.id))
    return client


def confirm_path(client, path: str):
    return client.post(path, data={"csrf_token": csrf_from(client, path)})


@pytest.fixture
def reader(topics):
    reader = make_reader(OWNER)
    db.session.add(BillingAccount(reader_id=reader.id, customer_id="cus_ada"))
    db.session.commit()
    return reader


@pytest.fixture
def outbox(app) -> Path:
    return Path(app.config["OUTBOX_DIR"])


def sent(outbox: Path) -> list[tuple[str, str]]:
    return [(m["To"], m["Subject"]) for m in outbox_messages(outbox)]


# -- 1. the takeover that used to work ------------------------------------------------------

def test_a_forwarded_digest_cannot_move_the_address(app, reader, outbox):
    stranger = from_a_forwarded_digest(app, reader)
    answer = stranger.post("/preferences", data=form(stranger, new_email=STRANGER,
                                                     delivery_time="09:00"),
                           follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "Check your inbox to change your address" in page and OWNER in page
    after = fresh(reader.id)
    assert (after.email, after.pending_email) == (OWNER, None)
    assert after.delivery_time == "09:00"  # the rest of the form was saved
    # Nothing went to the stranger: a link of her own went to the reader.
    assert sent(outbox) == [(OWNER, "Your Modelwire subscription")]
    assert "email_change_requested" not in db.session.scalars(select(ConsentEvent.kind)).all()


def test_from_a_forwarded_digest_the_data_is_not_downloadable(app, reader, outbox):
    stranger = from_a_forwarded_digest(app, reader)
    answer = stranger.get("/preferences/export")
    assert answer.status_code == 403
    body = answer.get_data(as_text=True)
    assert "Check your inbox" in body and "cus_ada" not in body
    assert "attachment" not in answer.headers.get("Content-Disposition", "")
    assert sent(outbox) == [(OWNER, "Your Modelwire subscription")]
    # From the link that arrives, the reader downloads it.
    link = link_in(outbox_messages(outbox)[0], "/manage/")
    own = app.test_client()
    assert own.get(link).status_code == 303
    data = json.loads(own.get("/preferences/export").data)
    assert data["profile"]["email"] == OWNER


def test_the_whole_takeover_from_a_forwarded_digest_fails(app, reader, outbox):
    """The attack as reproduced: address, then billing and erasure, from one forward."""
    stranger = from_a_forwarded_digest(app, reader)
    stranger.post("/preferences", data=form(stranger, new_email=STRANGER))
    token = csrf_from(stranger, "/preferences")
    assert stranger.post("/billing/portal", data={"csrf_token": token}).status_code == 403
    assert stranger.post("/preferences/delete", data={"confirm": "erase",
                                                      "csrf_token": token}).status_code == 403
    after = fresh(reader.id)
    assert (after.email, after.status, after.pending_email) == (OWNER, "active", None)
    assert all(to == OWNER for to, _ in sent(outbox))


# -- 1. an address change from the reader's own inbox ---------------------------------------

def change_address(app, reader, outbox, new: str = "ada@new.example"):
    """The reader asks from their own inbox and confirms from the new one: the browser
    that confirmed, and the email the old address got."""
    own = from_own_inbox(app, reader)
    answer = own.post("/preferences", data=form(own, new_email=new), follow_redirects=True)
    assert "We sent a confirmation to the new address" in answer.get_data(as_text=True)
    [confirmation] = [m for m in outbox_messages(outbox) if m["To"] == new]
    new_inbox = app.test_client()
    assert confirm_path(new_inbox, link_in(confirmation, "/email-change/")).status_code == 303
    assert fresh(reader.id).email == new
    [notice] = [m for m in outbox_messages(outbox) if m["To"] == OWNER
                and "moved" in m["Subject"]]
    return own, new_inbox, notice


def test_the_old_address_is_told_with_a_link_that_undoes_the_change(app, reader, outbox):
    own, new_inbox, notice = change_address(app, reader, outbox)
    assert notice["Subject"] == "Your Modelwire subscription moved to another address"
    text = notice.get_body(("plain",)).get_content()
    assert "ada@new.example" in text and "14 days" in text
    undo = link_in(notice, "/email-change/undo/")

    page = app.test_client().get(undo)
    assert page.status_code == 200 and fresh(reader.id).email == "ada@new.example", \
        "a GET (a mail scanner) undoes nothing"
    old_inbox = app.test_client()
    answer = confirm_path(old_inbox, undo)
    assert answer.status_code == 303
    assert fresh(reader.id).email == OWNER
    assert "Your address is ada@example.com again" in old_inbox.get(
        "/preferences").get_data(as_text=True)
    # Whoever confirmed the new address is signed out; the old inbox is the account's.
    assert "Email me a link" in new_inbox.get("/preferences").get_data(as_text=True)
    assert old_inbox.get("/preferences/export").status_code == 200
    kinds = db.session.scalars(select(ConsentEvent.kind).order_by(ConsentEvent.id)).all()
    assert kinds[-2:] == ["email_changed", "email_change_undone"]
    # Twice is once.
    assert confirm_path(app.test_client(), undo).status_code == 303
    assert fresh(reader.id).email == OWNER


def test_the_undo_link_works_for_a_week_and_more(app, reader, outbox):
    _, _, notice = change_address(app, reader, outbox)
    undo = link_in(notice, "/email-change/undo/")
    with time_machine.travel(time.time() + 13 * 86400, tick=False):
        assert confirm_path(app.test_client(), undo).status_code == 303
    assert fresh(reader.id).email == OWNER


def test_an_expired_or_forged_undo_link_changes_nothing(app, reader, outbox):
    _, _, notice = change_address(app, reader, outbox)
    undo = link_in(notice, "/email-change/undo/")
    with time_machine.travel(time.time() + 15 * 86400, tick=False):
        client = app.test_client()
        assert client.post(undo, data={"csrf_token": csrf_from(client)}).status_code == 400
    client = app.test_client()
    forged = undo[:-3] + ("AAA" if not undo.endswith("AAA") else "BBB")
    assert client.post(forged, data={"csrf_token": csrf_from(client)}).status_code == 400
    # Nor does an email-change link, a manage link or an unsubscribe link in its place.
    other = links().manage(reader.id).rsplit("/", 1)[1]
    assert client.post(f"/email-change/undo/{other}",
                       data={"csrf_token": csrf_from(client)}).status_code == 400
    assert fresh(reader.id).email == "ada@new.example"


def test_undo_is_refused_when_the_old_address_was_taken_since(app, reader, outbox):
    _, _, notice = change_address(app, reader, outbox)
    make_reader(OWNER)  # someone subscribed with the address the reader left
    client = app.test_client()
    path = link_in(notice, "/email-change/undo/")
    answer = client.post(path, data={"csrf_token": csrf_from(client)})
    assert answer.status_code == 400
    assert "another subscription uses that address now" in answer.get_data(as_text=True)
    assert fresh(reader.id).email == "ada@new.example"


def test_confirming_a_new_address_does_not_unlock_billing_export_or_erasure(app, reader,
                                                                         outbox):
    _, new_inbox, _ = change_address(app, reader, outbox)
    token = csrf_from(new_inbox, "/preferences")
    assert new_inbox.get("/preferences/export").status_code == 403
    portal = new_inbox.post("/billing/portal", data={"csrf_token": token})
    assert portal.status_code == 403
    assert "You came in by confirming a new address" in portal.get_data(as_text=True)
    assert new_inbox.post("/preferences/delete", data={"confirm": "erase",
                                                       "csrf_token": token}).status_code == 403
    assert fresh(reader.id).status == "active"
    # Nor a second change of address: that too waits for a link sent afresh.
    new_inbox.post("/preferences", data=form(new_inbox, new_email="third@evil.example"))
    assert fresh(reader.id).pending_email is None


def test_the_notice_goes_to_the_old_address_even_when_it_is_no_longer_the_readers(app, reader,
                                                                                outbox):
    change_address(app, reader, outbox)
    row = db.session.scalar(select(AccountMail).where(AccountMail.kind == "email_changed"))
    assert (row.to_email, row.status) == (OWNER, "sent")


def test_an_erasure_takes_the_queued_notice_with_it(app, reader, outbox):
    from newsletter.subscribers import privacy, service
    from newsletter.wiring import reader_services

    own = from_own_inbox(app, reader)
    own.post("/preferences", data=form(own, new_email="ada@new.example"))
    [confirmation] = [m for m in outbox_messages(outbox) if m["To"] == "ada@new.example"]
    confirm_path(app.test_client(), link_in(confirmation, "/email-change/"))
    # Erased before the worker's next turn: no row keeps the old address.
    privacy.erase_reader(reader_services(), fresh(reader.id), service.Actor(source="test"))
    rows = db.session.scalars(select(AccountMail.to_email)).all()
    assert OWNER not in rows


# -- 9. asking twice ------------------------------------------------------------------------

def subscribe(client, topics: list[str]):
    return client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": OWNER,
                                           "topic": topics})


def confirmations(outbox: Path) -> list[str]:
    return [link_in(m, "/confirm/") for m in outbox_messages(outbox)
            if m["Subject"].startswith("Confirm your subscription")]


def test_asking_twice_then_clicking_the_first_email_confirms(app, client, topics, outbox):
    subscribe(client, ["ai-policy-and-safety"])
    first = confirmations(outbox)[0]
    subscribe(client, ["ai-policy-and-safety"])
    assert len(confirmations(outbox)) == 2
    browser = app.test_client()
    answer = confirm_path(browser, first)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    reader = db.session.scalar(select(Reader))
    assert reader.status == "active"
    # And the second email, clicked after, says the same (already confirmed).
    assert confirm_path(app.test_client(), confirmations(outbox)[1]).status_code == 303


def test_a_link_stays_dead_once_the_request_changed(app, client, topics, outbox):
    subscribe(client, ["ai-policy-and-safety"])
    first = confirmations(outbox)[0]
    subscribe(client, ["models-and-research"])  # another request: other topics
    answer = confirm_path(app.test_client(), first)
    assert answer.status_code == 400
    assert "earlier request" in answer.get_data(as_text=True)
    assert db.session.scalar(select(Reader)).status == "pending"
    # The newest one confirms, with its topics.
    assert confirm_path(app.test_client(), confirmations(outbox)[-1]).status_code == 303
    reader = db.session.scalar(select(Reader))
    assert [t.slug for t in reader.topics] == ["models-and-research"]


def test_a_link_stays_dead_after_an_unsubscribe_and_the_same_request_again(app, client,
                                                                          topics, outbox):
    from newsletter.subscribers import service
    from newsletter.wiring import reader_services

    subscribe(client, ["ai-policy-and-safety"])
    first = confirmations(outbox)[0]
    assert confirm_path(app.test_client(), first).status_code == 303
    service.unsubscribe(reader_services(), db.session.scalar(select(Reader)),
                        service.Actor(source="test"))
    subscribe(client, ["ai-policy-and-safety"])
    assert confirm_path(app.test_client(), first).status_code == 400
    assert db.session.scalar(select(Reader)).status == "pending"


# -- what a review found after the first fix ------------------------------------------------

def test_a_forwarded_welcome_or_payment_notice_opens_preferences_only(app, reader, outbox):
    from newsletter.subscribers.models import AccountMailKind
    from newsletter.subscribers.outbox import queue_mail

    queue_mail(reader.id, AccountMailKind.WELCOME, OWNER)
    db.session.commit()
    [welcome] = outbox_messages(outbox)
    stranger = app.test_client()
    assert stranger.get(link_in(welcome, "/manage/")).status_code == 303
    assert stranger.get("/preferences").status_code == 200
    assert stranger.get("/preferences/export").status_code == 403


def test_an_own_inbox_link_from_before_an_address_change_is_dead(app, reader, outbox):
    own = app.test_client()
    own.post("/preferences/link", data={"csrf_token": csrf_from(own, "/preferences/link"),
                                        "email": OWNER})
    [sign_in_mail] = outbox_messages(outbox)
    old_link = link_in(sign_in_mail, "/manage/")
    change_address(app, reader, outbox)
    answer = app.test_client().get(old_link)
    assert answer.status_code == 400
    assert "sent before your address changed" in answer.get_data(as_text=True)


def test_undo_ends_every_session_from_before_even_at_the_old_address(app, reader, outbox):
    """The one who moved the address was signed in under the old one: putting the old
    address back must not bring that session back."""
    mover, new_inbox, notice = change_address(app, reader, outbox)
    confirm_path(app.test_client(), link_in(notice, "/email-change/undo/"))
    assert fresh(reader.id).email == OWNER
    for browser in (mover, new_inbox):
        assert "Email me a link" in browser.get("/preferences").get_data(as_text=True)
        assert browser.get("/preferences/export").status_code == 401


def test_a_forwarded_digest_cannot_mail_bomb_the_reader(app, reader, outbox):
    stranger = from_a_forwarded_digest(app, reader)
    for _ in range(10):
        assert stranger.get("/preferences/export").status_code == 403
        stranger.head("/preferences/export")
        stranger.post("/preferences", data=form(stranger, new_email=STRANGER))
    assert sent(outbox) == [(OWNER, "Your Modelwire subscription")]
    with time_machine.travel(time.time() + 16 * 60, tick=False):
        assert stranger.get(urlsplit(links().manage(reader.id, in_list_mail=True)).path) \
            .status_code == 303
        stranger.get("/preferences/export")
        assert len(sent(outbox)) == 2


def test_an_undo_link_undoes_its_own_change_only(app, reader, outbox):
    _, new_inbox, first_notice = change_address(app, reader, outbox)
    # The reader (now at the new address, from a link sent there) moves once more.
    follow(new_inbox, links().manage(reader.id, version=fresh(reader.id).address_version))
    new_inbox.post("/preferences", data=form(new_inbox, new_email="ada@third.example"))
    [confirmation] = [m for m in outbox_messages(outbox) if m["To"] == "ada@third.example"]
    confirm_path(app.test_client(), link_in(confirmation, "/email-change/"))
    assert fresh(reader.id).email == "ada@third.example"
    answer = confirm_path(app.test_client(), link_in(first_notice, "/email-change/undo/"))
    assert answer.status_code == 400
    assert "changed again" in answer.get_data(as_text=True)
    assert fresh(reader.id).email == "ada@third.example"


def test_the_same_topics_with_another_name_or_timezone_is_another_request(app, client, topics,
                                                                          outbox):
    subscribe(client, ["ai-policy-and-safety"])
    first = confirmations(outbox)[0]
    client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": OWNER,
                                    "topic": ["ai-policy-and-safety"],
                                    "first_name": "Scammer", "timezone": "Pacific/Kiritimati"})
    assert confirm_path(app.test_client(), first).status_code == 400
    assert db.session.scalar(select(Reader)).status == "pending"


def test_an_honest_reader_clicking_the_confirmation_again_later_is_signed_in(app, client,
                                                                           topics, outbox):
    subscribe(client, ["ai-policy-and-safety"])
    link = confirmations(outbox)[0]
    browser = app.test_client()
    assert confirm_path(browser, link).status_code == 303
    browser.post("/preferences", data=form(browser, delivery_time="09:00"))
    again = confirm_path(app.test_client(), link)
    assert again.status_code == 303, again.get_data(as_text=True)
