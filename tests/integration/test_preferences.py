"""The preference centre: magic links, every setting, address change, export and erasure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.db import db, utcnow
from newsletter.subscribers.models import ConsentEvent, Reader, Suppression
from tests.factories_readers import links, make_reader
from tests.support.readers import csrf_from, link_in, outbox_messages


def path_of(url: str) -> str:
    return url.split("news.example", 1)[1]


def fresh(reader_id: int) -> Reader:
    reader = db.session.get(Reader, reader_id)
    db.session.refresh(reader)
    return reader


def form(client, **overrides):
    data = {
        "csrf_token": csrf_from(client, "/preferences"),
        "topic": ["ai-policy-and-safety", "models-and-research"],
        "order-ai-policy-and-safety": "1", "order-models-and-research": "2",
        "frequency": "daily", "weekly_day": "0", "paused_until": "",
        "delivery_time": "07:00", "timezone": "UTC", "format": "html", "new_email": "",
    }
    data.update(overrides)
    return data


@pytest.fixture
def reader(topics):
    return make_reader()


@pytest.fixture
def signed_in(client, reader):
    response = client.get(path_of(links().manage(reader.id)))
    assert response.status_code == 303 and response.headers["Location"].endswith("/preferences")
    return client


def kinds() -> list[str]:
    return list(db.session.scalars(select(ConsentEvent.kind).order_by(ConsentEvent.id)))


def test_magic_link_signs_in_and_shows_current_preferences(signed_in, reader):
    html = signed_in.get("/preferences").get_data(as_text=True)
    assert "Signed in as <strong>ada@example.com</strong>" in html
    assert 'value="07:00"' in html
    assert '<option value="UTC" selected>' in html


def test_without_a_link_the_page_offers_to_email_one(client, reader):
    html = client.get("/preferences").get_data(as_text=True)
    assert "Email me a link" in html and "Signed in as" not in html


def test_saving_every_setting(signed_in, reader):
    response = signed_in.post("/preferences", data=form(
        signed_in, topic=["models-and-research", "ai-policy-and-safety"],
        **{"order-models-and-research": "1", "order-ai-policy-and-safety": "2"},
        frequency="weekly", weekly_day="4", delivery_time="06:30",
        timezone="America/New_York", format="text"), follow_redirects=True)
    assert response.history[0].status_code == 303
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # The message names what changed, in the reader's terms.
    assert ("Saved: the order of your topics, how often, the day of the week (now Friday), "
            "the delivery time (now 06:30), the timezone (now New York), the format.") in html
    assert "Your next digest: <strong>Friday" in html and "06:30, New York time" in html
    saved = fresh(reader.id)
    assert [t.slug for t in saved.topics] == ["models-and-research", "ai-policy-and-safety"]
    assert (saved.frequency, saved.weekly_day, saved.delivery_time, saved.timezone,
            saved.format) == ("weekly", 4, "06:30", "America/New_York", "text")
    [event] = db.session.scalars(select(ConsentEvent))
    assert event.kind == "preferences" and event.source == "preferences"
    assert event.detail["changes"]["timezone"] == ["UTC", "America/New_York"]
    assert event.detail["changes"]["topics"] == [
        ["ai-policy-and-safety", "models-and-research"],
        ["models-and-research", "ai-policy-and-safety"]]


def test_pause_until_a_date(signed_in, reader):
    until = utcnow().date().replace(year=utcnow().year + 1).replace(day=1)
    response = signed_in.post("/preferences", data=form(signed_in, frequency="paused",
                                                         paused_until=until.isoformat()))
    assert response.status_code == 303
    assert fresh(reader.id).paused_until == until
    assert fresh(reader.id).frequency == "paused"


@pytest.mark.parametrize("overrides,field_message", [
    ({"timezone": "Mars/Olympus_Mons"}, "unknown timezone"),
    ({"timezone": "Europe/London\r\nX: y"}, "must be a single line"),
    ({"topic": ["crypto"]}, "unknown topic"),
    ({"topic": []}, "Choose at least one topic."),
    ({"delivery_time": "25:00"}, "must be a time of day as HH:MM"),
    ({"delivery_time": "7am"}, "must be a time of day as HH:MM"),
    ({"frequency": "hourly"}, "must be daily, weekly or paused"),
    ({"weekly_day": "9"}, "must be a day of the week"),
    ({"frequency": "paused", "paused_until": "2001-01-01"}, "The pause must end after today."),
    ({"frequency": "paused", "paused_until": "soon"}, "Give the date the pause ends"),
    ({"format": "pdf"}, "must be html or text"),
    ({"order-ai-policy-and-safety": "0"}, "must be a number from 1 to 99"),
    ({"new_email": "not-an-address"}, "An email address must have an @-sign."),
    ({"new_email": "x" * 300 + "@example.com"}, "at most 254 characters"),
    ({"delivery_time": "0" * 5000}, "is longer than 100 characters"),
])
def test_bad_preferences_are_refused_and_nothing_changes(signed_in, reader, overrides,
                                                         field_message):
    before = (fresh(reader.id).timezone, fresh(reader.id).delivery_time,
              [t.slug for t in fresh(reader.id).topics])
    response = signed_in.post("/preferences", data=form(signed_in, **{"frequency": "weekly",
                                                                        **overrides}))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Nothing was saved." in html and field_message in html
    after = fresh(reader.id)
    assert (after.timezone, after.delivery_time, [t.slug for t in after.topics]) == before
    assert after.frequency == "daily"
    assert kinds() == []


def test_missing_csrf_on_preferences_is_refused(signed_in, reader):
    data = form(signed_in, timezone="Asia/Tokyo")
    del data["csrf_token"]
    response = signed_in.post("/preferences", data=data)
    assert response.status_code == 400
    assert fresh(reader.id).timezone == "UTC"


def test_session_ends_after_the_configured_time(signed_in, reader):
    with time_machine.travel(utcnow().timestamp() + 61 * 60):
        html = signed_in.get("/preferences").get_data(as_text=True)
    assert "Email me a link" in html and "Signed in as" not in html


def test_expired_or_forged_magic_link(client, reader):
    with time_machine.travel(utcnow().timestamp() - 31 * 24 * 3600):
        old = path_of(links().manage(reader.id))
    response = client.get(old)
    assert response.status_code == 400
    assert "This link has expired" in response.get_data(as_text=True)
    forged = client.get("/manage/eyJyIjoxfQ.forged.sig")
    assert forged.status_code == 400 and "This link does not work" in forged.get_data(
        as_text=True)
    assert "Signed in as" not in client.get("/preferences").get_data(as_text=True)


def test_a_link_for_one_purpose_does_not_work_for_another(client, reader):
    unsubscribe_token = links().unsubscribe(reader.id).rsplit("/", 1)[1]
    assert client.get(f"/manage/{unsubscribe_token}").status_code == 400
    manage_token = links().manage(reader.id).rsplit("/", 1)[1]
    response = client.post(f"/u/{manage_token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert fresh(reader.id).status == "active"


def test_email_change_takes_effect_only_when_confirmed(signed_in, reader, app):
    outbox = Path(app.config["OUTBOX_DIR"])
    response = signed_in.post("/preferences", data=form(signed_in, new_email="Ada@New.Example"),
                              follow_redirects=True)
    assert "We sent a confirmation to the new address" in response.get_data(as_text=True)
    assert fresh(reader.id).email == "ada@example.com"
    assert fresh(reader.id).pending_email == "ada@new.example"
    [message] = outbox_messages(outbox)
    assert message["To"] == "ada@new.example"
    path = link_in(message, "/email-change/")
    assert signed_in.get(path).status_code == 200
    assert fresh(reader.id).email == "ada@example.com", "a GET changes nothing"
    confirm = signed_in.post(path, data={"csrf_token": csrf_from(signed_in, path)})
    assert confirm.status_code == 303
    assert fresh(reader.id).email == "ada@new.example"
    assert fresh(reader.id).pending_email is None
    assert kinds() == ["email_change_requested", "email_changed"]


def test_email_change_to_a_taken_address_sends_nothing(signed_in, reader, app, topics):
    make_reader(email="taken@example.com")
    response = signed_in.post("/preferences", data=form(signed_in, new_email="taken@example.com"),
                              follow_redirects=True)
    assert response.status_code == 200
    assert outbox_messages(Path(app.config["OUTBOX_DIR"])) == []
    assert fresh(reader.id).email == "ada@example.com"


def test_request_link_is_the_same_for_known_and_unknown_addresses(client, reader, app):
    outbox = Path(app.config["OUTBOX_DIR"])
    pages = []
    for address in ("ada@example.com", "nobody@example.com"):
        pages.append(client.post("/preferences/link", data={
            "csrf_token": csrf_from(client, "/preferences/link"), "email": address}).get_data())
    assert pages[0] == pages[1]
    [message] = outbox_messages(outbox)
    assert message["To"] == "ada@example.com"
    assert link_in(message, "/manage/")


def test_pending_reader_asking_for_a_link_gets_the_confirmation_again(client, topics, app):
    make_reader(email="new@example.com", status="pending")
    client.post("/preferences/link", data={"csrf_token": csrf_from(client, "/preferences/link"),
                                           "email": "new@example.com"})
    [message] = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    assert message["Subject"] == "Confirm your subscription to Modelwire"


def test_download_my_data(signed_in, reader):
    signed_in.post("/preferences", data=form(signed_in, timezone="Europe/Paris"))
    response = signed_in.get("/preferences/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.data)
    assert data["profile"]["email"] == "ada@example.com"
    assert data["preferences"]["timezone"] == "Europe/Paris"
    assert [e["kind"] for e in data["consent_events"]] == ["preferences"]
    assert data["consent_events"][0]["ip"] == "127.0.0.1"
    assert data["emails_sent"] == []


def test_export_needs_a_signed_in_reader(client, reader):
    assert client.get("/preferences/export").status_code == 401


def test_delete_me_erases_and_keeps_only_a_hash(signed_in, reader, app):
    from newsletter.subscribers import service
    from newsletter.wiring import reader_services

    signed_in.post("/preferences", data=form(signed_in, timezone="Europe/Paris"))
    refused = signed_in.post("/preferences/delete",
                             data={"csrf_token": csrf_from(signed_in, "/preferences")})
    assert refused.status_code == 400 and fresh(reader.id).status == "active"

    response = signed_in.post("/preferences/delete", data={
        "csrf_token": csrf_from(signed_in, "/preferences"), "confirm": "erase"})
    assert response.status_code == 200
    assert "Your data is erased" in response.get_data(as_text=True)
    erased = fresh(reader.id)
    assert (erased.email, erased.pending_email, erased.status) == (None, None, "erased")
    assert erased.followed == []
    events = list(db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)))
    assert [e.kind for e in events] == ["preferences", "erase"], "counts survive"
    assert all(e.ip is None and e.user_agent is None for e in events)
    [suppression] = db.session.scalars(select(Suppression))
    assert "ada" not in suppression.email_hash and len(suppression.email_hash) == 64
    assert service.is_suppressed(reader_services(), "ada@example.com")
    assert "Signed in as" not in signed_in.get("/preferences").get_data(as_text=True)
    assert db.session.scalar(select(func.count(Reader.id)).where(
        Reader.email == "ada@example.com")) == 0


@pytest.mark.parametrize("address", ["", "nope", "a@b.example\r\nBcc: c@d.example"])
def test_request_link_with_a_bad_address(client, reader, app, address):
    response = client.post("/preferences/link", data={
        "csrf_token": csrf_from(client, "/preferences/link"), "email": address})
    assert response.status_code == 400
    assert outbox_messages(Path(app.config["OUTBOX_DIR"])) == []


def test_download_my_data_lists_what_was_sent(signed_in, reader, app):
    from tests.support.editions import send, special_edition

    edition = special_edition(subject="Sent to Ada")
    send(app, edition.id)
    data = json.loads(signed_in.get("/preferences/export").data)
    [sent] = data["emails_sent"]
    assert (sent["edition"], sent["status"]) == ("Sent to Ada", "sent")
    assert sent["sent_at"]
