"""Unsubscribe per stream (issue 11, item 11): the one-click header of a digest leaves
digests, that of a special edition leaves special editions; the page still offers leaving
everything and single topics; the preference centre shows both streams."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from newsletter.db import db, utcnow
from newsletter.delivery.fanout import queue_readers
from newsletter.delivery.models import Delivery
from newsletter.editions.digests import compose_now
from newsletter.subscribers.models import ConsentEvent, Reader, Suppression
from newsletter.wiring import mail_setup
from tests.factories import make_synthesis
from tests.factories_readers import links, make_reader
from tests.support.editions import send, special_edition
from tests.support.readers import csrf_from


@pytest.fixture
def relay(app_config, smtp_server):
    app_config.update(MAIL_TRANSPORT="smtp", SMTP_URL=smtp_server.url)
    return smtp_server


@pytest.fixture
def provider(app):
    """A client that, like a mailbox provider, sends no cookie and no CSRF token."""
    return app.test_client(use_cookies=False)


def path_of(url: str) -> str:
    return url.split("news.example", 1)[1]


def one_click_url(message) -> str:
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return path_of(message["List-Unsubscribe"].strip().strip("<>"))


def fresh(reader_id: int) -> Reader:
    db.session.expire_all()
    return db.session.get(Reader, reader_id)


def suppressions() -> int:
    return db.session.scalar(select(func.count(Suppression.id)))


def send_special(app, relay, email: str):
    before = len(relay.messages)
    edition = special_edition()
    send(app, edition.id)
    got = [m for m in relay.messages[before:] if m.rcpt_tos == [email]]
    return edition, got


def send_digest(app, relay, email: str):
    before = len(relay.messages)
    make_synthesis(title=f"News at {len(relay.messages)}",
                   published_at=(utcnow() - timedelta(minutes=5)).isoformat())
    result = compose_now(mail_setup(), queue=queue_readers, now=utcnow(), slot_minutes=15)
    db.session.commit()
    for edition_id in result.editions:
        send(app, edition_id)
    return [m for m in relay.messages[before:] if m.rcpt_tos == [email]]


def test_one_click_in_a_special_edition_leaves_special_editions_only(relay, app, provider,
                                                                     topics):
    reader = make_reader("ada@example.com", topics=("ai-policy-and-safety",))
    _, [message] = send_special(app, relay, "ada@example.com")
    response = provider.post(one_click_url(message.message),
                             data="List-Unsubscribe=One-Click",
                             content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and "Location" not in response.headers
    assert "You stopped special editions" in response.get_data(as_text=True)
    after = fresh(reader.id)
    assert (after.status, after.gets_specials, after.gets_digests) == ("active", False, True)
    assert suppressions() == 0
    assert db.session.scalar(select(ConsentEvent.detail).where(
        ConsentEvent.kind == "unsubscribe_stream")) == {"stream": "special"}

    # The next special edition does not reach her; her digest still does.
    edition, got = send_special(app, relay, "ada@example.com")
    assert got == []
    assert db.session.scalar(select(func.count(Delivery.id)).where(
        Delivery.edition_id == edition.id, Delivery.reader_id == reader.id)) == 0
    assert len(send_digest(app, relay, "ada@example.com")) == 1


def test_one_click_in_a_digest_leaves_digests_only(relay, app, provider, topics):
    reader = make_reader("ada@example.com", topics=("ai-policy-and-safety",))
    [digest] = send_digest(app, relay, "ada@example.com")
    assert provider.post(one_click_url(digest.message),
                         data={"List-Unsubscribe": "One-Click"}).status_code == 200
    after = fresh(reader.id)
    assert (after.status, after.gets_digests, after.gets_specials) == ("active", False, True)
    assert send_digest(app, relay, "ada@example.com") == []
    _, got = send_special(app, relay, "ada@example.com")
    assert len(got) == 1


def test_leaving_the_last_stream_leaves_everything(relay, app, provider, topics):
    reader = make_reader("ada@example.com", topics=("ai-policy-and-safety",),
                         gets_digests=False)
    _, [message] = send_special(app, relay, "ada@example.com")
    response = provider.post(one_click_url(message.message),
                             data={"List-Unsubscribe": "One-Click"})
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert fresh(reader.id).status == "unsubscribed"
    assert suppressions() == 1


def test_one_click_again_is_idempotent(provider, topics):
    reader = make_reader()
    url = path_of(links().unsubscribe(reader.id, stream="digest"))
    for _ in range(3):
        assert provider.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert fresh(reader.id).status == "active"
    assert db.session.scalar(select(func.count(ConsentEvent.id)).where(
        ConsentEvent.kind == "unsubscribe_stream")) == 1


def test_a_queued_special_is_not_sent_after_its_reader_leaves_specials(relay, app, provider,
                                                                       topics):
    from newsletter.delivery import service as sending

    reader = make_reader("ada@example.com", topics=("ai-policy-and-safety",))
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())  # fanned out: her delivery is queued
    url = path_of(links().unsubscribe(reader.id, stream="special"))
    provider.post(url, data={"List-Unsubscribe": "One-Click"})
    send(app, edition.id)
    assert [m for m in relay.messages if m.rcpt_tos == ["ada@example.com"]] == []
    assert db.session.scalar(select(Delivery.status).where(
        Delivery.reader_id == reader.id)) == "cancelled"


def test_the_page_offers_the_stream_everything_and_each_topic(provider, topics):
    reader = make_reader()
    url = path_of(links().unsubscribe(reader.id, stream="special"))
    for method in (provider.get, provider.head):
        assert method(url).status_code == 200
    html = provider.get(url).get_data(as_text=True)
    assert "Stop special editions" in html
    assert 'name="List-Unsubscribe" value="One-Click"' in html
    assert 'name="leave" value="everything"' in html
    assert "Leave AI policy and safety" in html and "Leave Models and research" in html
    after = fresh(reader.id)
    assert (after.status, after.gets_specials) == ("active", True)  # GET and HEAD changed nothing

    response = provider.post(url, data={"leave": "everything"})
    assert response.status_code == 200
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert fresh(reader.id).status == "unsubscribed"


def test_a_link_sent_before_streams_still_leaves_everything(provider, topics):
    reader = make_reader()
    provider.post(path_of(links().unsubscribe(reader.id)), data={"List-Unsubscribe": "One-Click"})
    assert fresh(reader.id).status == "unsubscribed"


def _signed_in(client, reader):
    client.get(path_of(links().manage(reader.id)))


def _preferences_form(client, **changes):
    form = {"csrf_token": csrf_from(client, "/preferences"), "topic": ["ai-policy-and-safety"],
            "frequency": "daily", "weekly_day": "0", "delivery_time": "07:00",
            "timezone": "UTC", "format": "html", "streams_shown": "1",
            "stream": ["digest", "special"]}
    form.update(changes)
    return form


def test_the_preference_centre_shows_and_sets_both_streams(client, topics):
    reader = make_reader(gets_specials=False)
    _signed_in(client, reader)
    html = client.get("/preferences").get_data(as_text=True)
    assert 'name="stream" value="digest" checked' in html
    assert 'name="stream" value="special">' in html  # not ticked

    response = client.post("/preferences", data=_preferences_form(client, stream=["special"]))
    assert response.status_code == 303
    after = fresh(reader.id)
    assert (after.gets_digests, after.gets_specials) == (False, True)

    # Neither: refused with a clear message, nothing saved.
    response = client.post("/preferences", data=_preferences_form(client, stream=[],
                                                                  frequency="weekly"))
    assert response.status_code == 400
    assert "Choose at least one kind of email" in response.get_data(as_text=True)
    after = fresh(reader.id)
    assert (after.gets_digests, after.gets_specials, after.frequency) == (False, True, "daily")

    response = client.post("/preferences", data=_preferences_form(client, stream=["nope"]))
    assert response.status_code == 400
