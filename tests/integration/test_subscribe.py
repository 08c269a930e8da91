"""Subscribe with double opt-in: the form, the confirmation, and the no-enumeration rule."""

from __future__ import annotations

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.db import db, utcnow
from newsletter.subscribers.models import ConsentEvent, Reader, Suppression
from newsletter.subscribers.service import CONSENT_VERSION
from tests.support.readers import csrf_from, link_in, outbox_messages


@pytest.fixture
def outbox(app):
    from pathlib import Path

    return Path(app.config["OUTBOX_DIR"])


def subscribe(client, email="ada@example.com", topics=("ai-policy-and-safety",), **extra):
    data = {"csrf_token": csrf_from(client), "email": email, "topic": list(topics),
            "timezone": "Europe/London", **extra}
    return client.post("/subscribe", data=data, headers={"User-Agent": "TestBrowser/1.0"})


def readers() -> list[Reader]:
    return list(db.session.scalars(select(Reader).order_by(Reader.id)))


def events(kind: str | None = None) -> list[ConsentEvent]:
    query = select(ConsentEvent).order_by(ConsentEvent.id)
    if kind:
        query = query.where(ConsentEvent.kind == kind)
    return list(db.session.scalars(query))


def confirm(client, path: str):
    token_page = client.get(path)
    assert token_page.status_code == 200
    return client.post(path, data={"csrf_token": csrf_from(client, path)})


def test_subscribe_creates_a_pending_reader_and_sends_only_the_confirmation(
        client, topics, outbox):
    response = subscribe(client, email="  Ada@Example.COM ",
                         topics=["models-and-research", "ai-policy-and-safety"])
    assert response.status_code == 200
    assert "Check your inbox" in response.get_data(as_text=True)

    [reader] = readers()
    assert reader.email == "ada@example.com"
    assert reader.status == "pending"
    assert reader.timezone == "Europe/London"
    assert [t.slug for t in reader.topics] == ["ai-policy-and-safety", "models-and-research"]
    [event] = events()
    assert (event.kind, event.source, event.consent_version) == ("subscribe", "form",
                                                                 CONSENT_VERSION)
    assert event.ip == "127.0.0.1" and event.user_agent == "TestBrowser/1.0"

    [message] = outbox_messages(outbox)
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Confirm your subscription to Modelwire"
    assert "List-Unsubscribe" not in message
    assert link_in(message, "/confirm/").startswith("/confirm/")


def test_confirmation_is_a_button_then_activates_and_signs_in(client, topics, outbox):
    subscribe(client)
    path = link_in(outbox_messages(outbox)[0], "/confirm/")
    page = client.get(path)
    assert "Confirm my subscription" in page.get_data(as_text=True)
    assert readers()[0].status == "pending", "a GET (a link scanner) confirms nothing"

    response = client.post(path, data={"csrf_token": csrf_from(client, path)})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/preferences?welcome=1")
    reader = readers()[0]
    assert reader.status == "active" and reader.confirmed_at is not None
    assert [e.kind for e in events()] == ["subscribe", "confirm"]
    preferences = client.get("/preferences?welcome=1").get_data(as_text=True)
    assert "You are subscribed." in preferences and "ada@example.com" in preferences

    again = confirm(client, path)
    assert again.status_code == 303, again.get_data(as_text=True)[-1500:]
    assert [e.kind for e in events()] == ["subscribe", "confirm"]
    # The confirmation, then one welcome: confirming twice welcomes once.
    assert [m["Subject"] for m in outbox_messages(outbox)] == [
        "Confirm your subscription to Modelwire", "Welcome to Modelwire"]


@pytest.mark.parametrize("state", ["new", "active", "pending", "unsubscribed", "suppressed"])
def test_answer_page_is_the_same_whatever_the_address(client, app, topics, state):
    from newsletter.subscribers import service
    from newsletter.wiring import reader_services

    reference = subscribe(client, email="someone-new@example.com").get_data()
    address = f"{state}@example.com"
    if state != "new":
        db.session.add(Reader(email=address, status={"suppressed": "active"}.get(state, state)))
        db.session.commit()
    if state == "suppressed":
        service.suppress(reader_services(), address, service.SuppressionReason.HARD_BOUNCE)
        db.session.commit()
    assert subscribe(client, email=address).get_data() == reference


def test_active_reader_subscribing_again_gets_their_link_and_nothing_changes(
        client, topics, outbox):
    db.session.add(Reader(email="ada@example.com", status="active"))
    db.session.commit()
    subscribe(client, topics=["models-and-research"])
    reader = readers()[0]
    assert reader.status == "active" and reader.topics == []
    [message] = outbox_messages(outbox)
    assert message["Subject"] == "Your Modelwire subscription"
    assert link_in(message, "/manage/")
    assert events() == []


def test_honeypot_answers_the_same_and_does_nothing(client, topics, outbox):
    reference = subscribe(client, email="real@example.com").get_data()
    bot = subscribe(client, email="bot@example.com", website="http://spam.example")
    assert bot.get_data() == reference
    assert [r.email for r in readers()] == ["real@example.com"]
    assert len(outbox_messages(outbox)) == 1


@pytest.mark.parametrize("address,message", [
    ("not-an-address", "An email address must have an @-sign."),
    ("ada@example", "The part after the @-sign is not valid. It should have a period."),
    ("", "Enter an email address."),
    ("ada@example.com\r\nBcc: x@example.com", "cannot contain line breaks"),
    ("a" * 250 + "@example.com", "at most 254 characters"),
])
def test_invalid_addresses_get_a_clear_message_and_change_nothing(
        client, topics, outbox, address, message):
    response = subscribe(client, email=address)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert readers() == [] and outbox_messages(outbox) == []


@pytest.mark.parametrize("chosen,message", [
    ([], "Choose at least one topic."),
    (["crypto"], "unknown topic"),
    (["analyst-briefings"], "unknown topic"),      # premium: not offered yet
    (["x" * 5000], "unknown topic"),
])
def test_topics_are_checked(client, topics, outbox, chosen, message):
    response = subscribe(client, topics=chosen)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert readers() == [] and outbox_messages(outbox) == []


def test_unknown_or_overlong_timezone_falls_back_to_utc(client, topics):
    subscribe(client, email="a@example.com", timezone="Mars/Olympus_Mons")
    subscribe(client, email="b@example.com", timezone="Europe/" + "x" * 500)
    assert [r.timezone for r in readers()] == ["UTC", "UTC"]


def test_missing_csrf_token_is_refused(client, topics, outbox):
    response = client.post("/subscribe", data={"email": "ada@example.com",
                                               "topic": "ai-policy-and-safety"})
    assert response.status_code == 400
    assert "not sent from this site" in response.get_data(as_text=True)
    assert readers() == [] and outbox_messages(outbox) == []


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-3] + ("aaa" if not t.endswith("aaa") else "bbb"),   # tampered signature
    lambda t: "eyJyIjo5OTl9.forged.signature",                        # forged
    lambda t: "x" * 2000,                                             # overlong
])
def test_forged_or_tampered_confirmation_changes_nothing(client, topics, outbox, mangle):
    subscribe(client)
    path = link_in(outbox_messages(outbox)[0], "/confirm/")
    bad = "/confirm/" + mangle(path.removeprefix("/confirm/"))
    for response in (client.get(bad), client.post(bad, data={"csrf_token": csrf_from(client)})):
        assert response.status_code == 400
        assert "This link does not work" in response.get_data(as_text=True)
        assert "Nothing was changed." in response.get_data(as_text=True)
    assert readers()[0].status == "pending"


def test_expired_confirmation_says_so(client, topics, outbox):
    with time_machine.travel(utcnow().replace(microsecond=0), tick=False) as traveller:
        subscribe(client)
        path = link_in(outbox_messages(outbox)[0], "/confirm/")
        traveller.shift(8 * 24 * 3600)
        response = client.post(path, data={"csrf_token": csrf_from(client, "/subscribe")})
    assert response.status_code == 400
    assert "This link has expired" in response.get_data(as_text=True)
    assert readers()[0].status == "pending"


def test_unsubscribed_reader_cannot_be_reactivated_by_an_old_link(client, topics, outbox):
    subscribe(client)
    path = link_in(outbox_messages(outbox)[0], "/confirm/")
    confirm(client, path)
    reader = readers()[0]
    from newsletter.subscribers import service
    from newsletter.wiring import reader_services

    service.unsubscribe(reader_services(), reader, service.Actor(source="test"))
    response = client.post(path, data={"csrf_token": csrf_from(client, "/subscribe")})
    assert response.status_code == 400
    assert "you unsubscribed after this link was sent" in response.get_data(as_text=True)
    assert readers()[0].status == "unsubscribed"


def test_resubscribing_after_unsubscribe_needs_a_new_confirmation(client, topics, outbox):
    from newsletter.subscribers import service
    from newsletter.wiring import reader_services

    subscribe(client)
    confirm(client, link_in(outbox_messages(outbox)[0], "/confirm/"))
    service.unsubscribe(reader_services(), readers()[0], service.Actor(source="test"))
    assert db.session.scalar(select(func.count(Suppression.id))) == 1

    subscribe(client, topics=["models-and-research"])
    reader = readers()[0]
    assert reader.status == "pending"
    assert service.is_suppressed(reader_services(), "ada@example.com"), "until confirmed"
    second = outbox_messages(outbox)[-1]
    assert second["Subject"] == "Confirm your subscription to Modelwire"
    confirm(client, link_in(second, "/confirm/"))
    assert readers()[0].status == "active"
    assert not service.is_suppressed(reader_services(), "ada@example.com")
    assert [e.kind for e in events()] == ["subscribe", "confirm", "unsubscribe", "subscribe",
                                          "confirm"]


def test_ip_recording_can_be_switched_off(app_config, request):
    app_config["RECORD_IP"] = False
    request.getfixturevalue("topics")
    subscribe(request.getfixturevalue("client"))
    [event] = events()
    assert event.ip is None and event.user_agent == "TestBrowser/1.0"


def test_an_international_domain_is_stored_and_mailed_in_ascii_form(client, topics, outbox):
    response = subscribe(client, email="user@bücher.de")
    assert response.status_code == 200
    [reader] = readers()
    assert reader.email == "user@xn--bcher-kva.de"
    [message] = outbox_messages(outbox)
    assert message["To"] == "user@xn--bcher-kva.de", "the confirmation actually went out"


def test_a_local_part_we_cannot_mail_is_refused_at_the_form_and_the_api(client, app, topics,
                                                                       outbox, api_token):
    response = subscribe(client, email="jörg@example.com")
    assert response.status_code == 400
    assert "letters outside A–Z before the @" in response.get_data(as_text=True)
    api = client.post("/api/v1/subscribers", headers={"Authorization": f"Bearer {api_token}"},
                      json={"email": "jörg@example.com", "topics": ["ai-policy-and-safety"],
                            "consent": {"obtained_at": "2026-11-01T00:00:00Z",
                                        "wording_version": "test"}})
    assert api.status_code == 400
    assert any("outside A–Z" in p["message"] for p in api.json["problems"])
    assert readers() == [] and outbox_messages(outbox) == []


def test_an_old_confirmation_link_cannot_confirm_a_later_request(client, topics, outbox):
    """After an unsubscribe, anyone may ask again with other topics; the link of the
    first request must not confirm that second one."""
    from newsletter.subscribers import service
    from newsletter.wiring import reader_services

    subscribe(client)
    old_link = link_in(outbox_messages(outbox)[0], "/confirm/")
    confirm(client, old_link)
    service.unsubscribe(reader_services(), readers()[0], service.Actor(source="test"))
    subscribe(app_client := client.application.test_client(), topics=["models-and-research"])
    assert readers()[0].status == "pending"

    response = client.post(old_link, data={"csrf_token": csrf_from(client, "/subscribe")})
    assert response.status_code == 400
    assert "this link answers an earlier request" in response.get_data(as_text=True)
    db.session.expire_all()
    assert readers()[0].status == "pending", "the old link confirmed nothing"
    assert service.is_suppressed(reader_services(), "ada@example.com")

    new_link = link_in(outbox_messages(outbox)[-1], "/confirm/")
    assert confirm(app_client, new_link).status_code == 303
    assert readers()[0].status == "active"
