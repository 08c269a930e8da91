"""One-click unsubscribe (RFC 8058), exactly as a mailbox provider sends it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from newsletter.db import db
from newsletter.subscribers.models import ConsentEvent, Reader, Suppression
from tests.factories_readers import links, make_reader


def path_of(url: str) -> str:
    return url.split("news.example", 1)[1]


def state(reader_id: int) -> tuple[str, int, int]:
    reader = db.session.get(Reader, reader_id)
    db.session.refresh(reader)
    events = db.session.scalar(select(func.count(ConsentEvent.id)).where(
        ConsentEvent.reader_id == reader_id, ConsentEvent.kind == "unsubscribe"))
    suppressed = db.session.scalar(select(func.count(Suppression.id)))
    return reader.status, events, suppressed


@pytest.fixture
def reader(topics):
    return make_reader()


@pytest.fixture
def provider(app):
    """A client that, like a mailbox provider, sends no cookie and no CSRF token."""
    client = app.test_client(use_cookies=False)
    return client


def test_one_click_form_urlencoded(provider, reader):
    url = path_of(links().unsubscribe(reader.id))
    response = provider.post(url, data="List-Unsubscribe=One-Click",
                             content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert state(reader.id) == ("unsubscribed", 1, 1)


def test_one_click_multipart(provider, reader):
    url = path_of(links().unsubscribe(reader.id))
    boundary = "----provider"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
            f"One-Click\r\n--{boundary}--\r\n")
    response = provider.post(url, data=body,
                             content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 200
    assert state(reader.id) == ("unsubscribed", 1, 1)


def test_one_click_is_idempotent(provider, reader):
    url = path_of(links().unsubscribe(reader.id))
    for _ in range(3):
        response = provider.post(url, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    assert state(reader.id) == ("unsubscribed", 1, 1)


def test_get_shows_a_button_and_changes_nothing(provider, reader):
    url = path_of(links().unsubscribe(reader.id))
    for _ in range(2):
        response = provider.get(url)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "Unsubscribe from everything" in html
        assert 'name="leave" value="everything"' in html
    assert state(reader.id) == ("active", 0, 0)


def test_leave_one_topic_keeps_the_others(provider, reader):
    url = path_of(links().unsubscribe(reader.id))
    response = provider.post(url, data={"topic": "models-and-research"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "You left Models and research" in html and "Undo: follow Models and research" in html
    fresh = db.session.get(Reader, reader.id)
    db.session.refresh(fresh)
    assert [t.slug for t in fresh.topics] == ["ai-policy-and-safety"]
    assert fresh.status == "active"
    kinds = list(db.session.scalars(select(ConsentEvent.kind)))
    assert kinds == ["unsubscribe_topic"]


def test_leaving_the_last_topic_leaves_everything(provider, topics):
    reader = make_reader(topics=("ai-policy-and-safety",))
    url = path_of(links().unsubscribe(reader.id))
    provider.post(url, data={"topic": "ai-policy-and-safety"})
    assert state(reader.id) == ("unsubscribed", 1, 1)


def test_post_without_a_choice_is_refused(provider, reader):
    url = path_of(links().unsubscribe(reader.id))
    response = provider.post(url, data={})
    assert response.status_code == 400
    assert "Choose what to unsubscribe from." in response.get_data(as_text=True)
    assert state(reader.id) == ("active", 0, 0)


@pytest.mark.parametrize("token", ["eyJyIjoxfQ.bogus", "x" * 1500, "abc"])
def test_forged_unsubscribe_token_changes_nothing(provider, reader, token):
    for response in (provider.get(f"/u/{token}"),
                     provider.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})):
        assert response.status_code == 400
        assert "This link does not work" in response.get_data(as_text=True)
    assert state(reader.id) == ("active", 0, 0)


def test_unsubscribe_tokens_never_expire_and_survive_key_rotation(app_config, request):
    import time_machine

    from newsletter import create_app
    from newsletter.db import utcnow

    old_key = app_config["SECRET_KEY"]
    app = request.getfixturevalue("app")
    request.getfixturevalue("topics")
    reader = make_reader()
    with time_machine.travel(utcnow().replace(year=utcnow().year - 3)):
        url = path_of(links().unsubscribe(reader.id))
    rotated = create_app({**app_config, "SECRET_KEYS": ["a-brand-new-key", old_key]})
    response = rotated.test_client(use_cookies=False).post(
        url, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert state(reader.id) == ("unsubscribed", 1, 1)
    assert app is not rotated


def test_erased_reader_link_answers_calmly(provider, reader, app):
    from newsletter.subscribers import privacy, service
    from newsletter.wiring import reader_services

    url = path_of(links().unsubscribe(reader.id))
    privacy.erase_reader(reader_services(), reader, service.Actor(source="test"))
    response = provider.post(url, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "You are unsubscribed" in response.get_data(as_text=True)


@pytest.mark.parametrize("topic", ["chips-and-compute", "nope", "x" * 5000])
def test_leaving_a_topic_one_does_not_follow_is_refused(provider, reader, topic):
    url = path_of(links().unsubscribe(reader.id))
    response = provider.post(url, data={"topic": topic})
    assert response.status_code == 400
    assert "You do not follow that topic." in response.get_data(as_text=True)
    fresh = db.session.get(Reader, reader.id)
    db.session.refresh(fresh)
    assert len(fresh.followed) == 2 and fresh.status == "active"
