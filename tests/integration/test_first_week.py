"""A new reader's first week: the welcome email and "next digest" in their own time, the
same moment the digest job then picks; the preference centre's order, clock, timezones and
pauses, its saved message, and leaving a topic with an undo."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from newsletter.db import db
from newsletter.delivery.models import Delivery
from newsletter.subscribers.models import ConsentEvent, Reader
from tests.factories import make_synthesis
from tests.factories_readers import links, make_reader
from tests.support.digests import compose_at, utc
from tests.support.readers import csrf_from, link_in, outbox_messages, text_of

pytestmark = pytest.mark.usefixtures("topics")


@pytest.fixture
def outbox(app) -> Path:
    return Path(app.config["OUTBOX_DIR"])


def path_of(url: str) -> str:
    return url.split("news.example", 1)[1]


def subscribe_and_confirm(client, outbox, email: str, timezone: str, when: datetime) -> Reader:
    """Subscribe from a browser in ``timezone`` and confirm, with the clock at ``when``."""
    with time_machine.travel(when, tick=False):
        client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": email,
                                        "topic": ["ai-policy-and-safety"],
                                        "timezone": timezone})
        path = link_in(outbox_messages(outbox)[-1], "/confirm/")
        answer = client.post(path, data={"csrf_token": csrf_from(client, path)})
        assert answer.status_code == 303
        outbox_messages(outbox)  # the worker sends the welcome, at ``when``
    return db.session.scalar(select(Reader).where(Reader.email == email))


# Each reader confirms the evening before a DST change in their zone; their first digest is
# at 07:00 local on the day of the change, when the offset to UTC is no longer the one they
# confirmed under.
DST_CASES = [
    ("Europe/Paris", utc(2027, 3, 27, 20), "Sunday 28 March at 07:00, Paris time",
     utc(2027, 3, 28, 5)),           # 07:00 CEST (UTC+2); it was UTC+1 the evening before
    ("America/New_York", utc(2026, 11, 1, 2), "Sunday 1 November at 07:00, New York time",
     utc(2026, 11, 1, 12)),          # 07:00 EST (UTC−5); it was UTC−4 when they confirmed
    ("Australia/Sydney", utc(2027, 10, 2, 9), "Sunday 3 October at 07:00, Sydney time",
     utc(2027, 10, 2, 20)),          # 07:00 AEDT (UTC+11); it was UTC+10 the evening before
]


@pytest.mark.parametrize("timezone,confirmed,words,due", DST_CASES)
def test_the_welcome_says_when_the_first_digest_comes_across_dst(
        app, client, outbox, timezone, confirmed, words, due):
    reader = subscribe_and_confirm(client, outbox, "new@example.com", timezone, confirmed)
    assert reader.timezone == timezone and reader.delivery_time == "07:00"
    [welcome] = [m for m in outbox_messages(outbox) if m["Subject"] == "Welcome to Modelwire"]
    text = " ".join(text_of(welcome).split())
    assert f"Your first digest comes {words}" in text
    assert "You are subscribed to AI policy and safety." in text
    assert "/manage/" in text
    html = welcome.get_body(("html",)).get_content()
    assert words in html and "AI policy and safety" in html
    # The sentence is the digest job's own schedule: nothing before that instant, the
    # digest at it (something new was published in between).
    assert due.astimezone(ZoneInfo(timezone)).strftime("%H:%M") == "07:00"
    make_synthesis(topics=["ai-policy-and-safety"],
                   published_at=confirmed.replace(minute=30).isoformat())
    compose_at(app, due - timedelta(minutes=1))
    assert db.session.scalar(select(Delivery.id).where(Delivery.reader_id == reader.id)) is None
    compose_at(app, due)
    assert db.session.scalar(select(Delivery.id).where(Delivery.reader_id == reader.id))


def test_the_page_after_confirming_and_the_preference_centre_say_it_too(app, client, outbox):
    when = utc(2027, 3, 27, 20)
    subscribe_and_confirm(client, outbox, "new@example.com", "Europe/Paris", when)
    with time_machine.travel(when, tick=False):
        html = client.get("/preferences?welcome=1").get_data(as_text=True)
        assert "Your first digest comes <strong>Sunday 28 March at 07:00, Paris time" in html
        html = client.get("/preferences").get_data(as_text=True)
        assert "Your next digest: <strong>Sunday 28 March at 07:00, Paris time" in html


def test_a_weekly_or_paused_reader_hears_the_right_day(app, client):
    from datetime import date

    reader = make_reader(frequency="weekly", weekly_day=2, timezone="Asia/Tokyo",
                         delivery_minute=18 * 60 + 30)
    with time_machine.travel(utc(2026, 12, 7, 12), tick=False):  # a Monday
        client.get(path_of(links().manage(reader.id)))
        html = client.get("/preferences", headers={"Accept-Language": "en-US"}).get_data(
            as_text=True)
    assert "Wednesday 9 December at 6:30 PM, Tokyo time" in html  # 12-hour: en-US
    reader = db.session.get(Reader, reader.id)
    reader.frequency, reader.paused_until = "paused", date(2026, 12, 20)
    db.session.commit()
    with time_machine.travel(utc(2026, 12, 7, 12), tick=False):
        html = client.get("/preferences", headers={"Accept-Language": "fr-FR"}).get_data(
            as_text=True)
    assert "Sunday 20 December at 18:30, Tokyo time" in html  # 24-hour: fr-FR


def test_the_clock_follows_the_browsers_language(app, client):
    reader = make_reader()
    client.get(path_of(links().manage(reader.id)))
    us = client.get("/preferences", headers={"Accept-Language": "en-US,en;q=0.8"})
    assert '<option value="07:00" selected>7:00 AM</option>' in us.get_data(as_text=True)
    assert '<option value="13:15">1:15 PM</option>' in us.get_data(as_text=True)
    gb = client.get("/preferences", headers={"Accept-Language": "en-GB"})
    assert '<option value="07:00" selected>07:00</option>' in gb.get_data(as_text=True)
    assert '<option value="13:15">13:15</option>' in gb.get_data(as_text=True)


def test_timezones_are_grouped_by_region_with_their_offsets(app, client):
    reader = make_reader(timezone="Europe/Paris")
    with time_machine.travel(utc(2026, 12, 7, 12), tick=False):
        client.get(path_of(links().manage(reader.id)))
        html = client.get("/preferences").get_data(as_text=True)
    assert '<optgroup label="Europe">' in html and '<optgroup label="America">' in html
    assert '<option value="Europe/Paris" selected>Paris (UTC+01:00)</option>' in html
    assert '<option value="America/New_York">New York (UTC−05:00)</option>' in html
    assert '<option value="America/Argentina/Buenos_Aires">Argentina – Buenos Aires' in html
    assert 'data-zone-search hidden' in html  # the search box appears with JavaScript


def test_pauses_are_lengths_with_the_day_they_end(app, client):
    reader = make_reader()
    with time_machine.travel(utc(2026, 12, 7, 12), tick=False):
        client.get(path_of(links().manage(reader.id)))
        html = client.get("/preferences").get_data(as_text=True)
        assert '<option value="2026-12-21">2 weeks — back on Monday 21 December</option>' in html
        answer = client.post("/preferences", data=_form(client, frequency="paused",
                                                        paused_until="2026-12-21"))
    assert answer.status_code == 303
    assert db.session.get(Reader, reader.id).paused_until.isoformat() == "2026-12-21"


def _form(client, **overrides):
    data = {"csrf_token": csrf_from(client, "/preferences"),
            "topic": ["ai-policy-and-safety", "models-and-research"],
            "order": ["ai-policy-and-safety", "models-and-research", "chips"],
            "frequency": "daily", "weekly_day": "0", "delivery_time": "07:00",
            "timezone": "UTC", "format": "html"}
    data.update(overrides)
    return data


def test_topics_move_up_and_down_without_javascript(app, client):
    reader = make_reader(topics=("ai-policy-and-safety", "models-and-research"))
    client.get(path_of(links().manage(reader.id)))
    html = client.get("/preferences").get_data(as_text=True)
    assert 'aria-label="Move Models and research up"' in html
    assert 'type="number"' not in html  # no more number boxes
    answer = client.post("/preferences", data=_form(client, move="models-and-research:up"))
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("#topic-models-and-research")
    assert [t.slug for t in db.session.get(Reader, reader.id).topics] == [
        "models-and-research", "ai-policy-and-safety"]
    html = client.get("/preferences").get_data(as_text=True)
    assert "Moved <strong>Models and research</strong>." in html
    # The first row moves up no further; odd moves change nothing and break nothing.
    for move in ("models-and-research:up", "nothing:up", "ai-policy-and-safety:sideways",
                 ":", "x" * 500):
        order = ["models-and-research", "ai-policy-and-safety"]
        answer = client.post("/preferences", data=_form(client, move=move, order=order))
        assert answer.status_code == 303, move
        assert [t.slug for t in db.session.get(Reader, reader.id).topics] == order


def test_leaving_a_topic_in_the_preference_centre_names_it_and_undoes(app, client):
    reader = make_reader(topics=("ai-policy-and-safety", "models-and-research"))
    client.get(path_of(links().manage(reader.id)))
    client.post("/preferences", data=_form(client, topic=["ai-policy-and-safety"]))
    html = client.get("/preferences").get_data(as_text=True)
    assert "You left <strong>Models and research</strong>." in html and ">Undo</button>" in html
    answer = client.post("/preferences/rejoin", data={
        "topic": "models-and-research", "csrf_token": csrf_from(client, "/preferences")})
    assert answer.status_code == 303
    assert [t.slug for t in db.session.get(Reader, reader.id).topics] == [
        "ai-policy-and-safety", "models-and-research"]
    assert "You follow <strong>Models and research</strong> again." in client.get(
        "/preferences").get_data(as_text=True)
    kinds = list(db.session.scalars(select(ConsentEvent.kind).order_by(ConsentEvent.id)))
    assert kinds[-1] == "rejoin_topic"


@pytest.mark.parametrize("topic", ["analyst-briefings", "nope", "", "\x00"])
def test_rejoining_what_is_not_offered_changes_nothing(app, client, topic):
    reader = make_reader(topics=("ai-policy-and-safety",))
    client.get(path_of(links().manage(reader.id)))
    answer = client.post("/preferences/rejoin", data={
        "topic": topic, "csrf_token": csrf_from(client, "/preferences")})
    assert answer.status_code == 400
    assert [t.slug for t in db.session.get(Reader, reader.id).topics] == ["ai-policy-and-safety"]


def test_rejoin_needs_the_reader_signed_in_and_a_post(app, client):
    assert client.post("/preferences/rejoin", data={"topic": "x"}).status_code in (400, 401)
    assert client.get("/preferences/rejoin").status_code == 405
    assert client.head("/preferences/rejoin").status_code == 405


def test_the_unsubscribe_page_undoes_leaving_a_topic(app, client):
    reader = make_reader(topics=("ai-policy-and-safety", "models-and-research"))
    url = path_of(links().unsubscribe(reader.id))
    left = client.post(url, data={"topic": "models-and-research"}).get_data(as_text=True)
    assert "You left Models and research" in left
    back = client.post(url, data={"rejoin": "models-and-research"})
    assert back.status_code == 200 and "Models and research is back" in back.get_data(
        as_text=True)
    assert [t.slug for t in db.session.get(Reader, reader.id).topics] == [
        "ai-policy-and-safety", "models-and-research"]
    assert client.post(url, data={"rejoin": "analyst-briefings"}).status_code == 400


# -- a name for the greeting ---------------------------------------------------------------

def test_a_first_name_given_at_subscribing_greets_the_reader(app, client, outbox):
    from tests.support.editions import send, special_edition

    with time_machine.travel(utc(2026, 12, 7, 12), tick=False):
        client.post("/subscribe", data={"csrf_token": csrf_from(client),
                                        "email": "ada@example.com", "first_name": "  Ada  ",
                                        "topic": ["ai-policy-and-safety"], "timezone": "UTC"})
        path = link_in(outbox_messages(outbox)[-1], "/confirm/")
        client.post(path, data={"csrf_token": csrf_from(client, path)})
        [welcome] = [m for m in outbox_messages(outbox) if "Welcome" in m["Subject"]]
    reader = db.session.scalar(select(Reader).where(Reader.email == "ada@example.com"))
    assert reader.first_name == "Ada"
    assert "Welcome to Modelwire, Ada" in welcome.get_body(("html",)).get_content()
    make_reader("bob@example.com", topics=("ai-policy-and-safety",))  # no name
    send(app, special_edition().id)
    greetings = {m["To"]: text_of(m) for m in outbox_messages(outbox)
                 if m["List-Unsubscribe"]}
    assert "Hello Ada," in greetings["ada@example.com"]
    assert "Hello," in greetings["bob@example.com"] and "Hello Bob" not in greetings[
        "bob@example.com"]


def test_nobody_renames_an_active_reader_through_the_subscribe_form(app, client, outbox):
    reader = make_reader(first_name="Ada")
    client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": reader.email,
                                    "first_name": "Mallory", "topic": ["ai-policy-and-safety"]})
    assert db.session.get(Reader, reader.id).first_name == "Ada"


def test_the_name_is_changed_in_the_preference_centre_and_never_kept_in_consent(app, client):
    reader = make_reader(first_name="Ada")
    client.get(path_of(links().manage(reader.id)))
    answer = client.post("/preferences", data=_form(client, first_name="Augusta",
                                                    order=["ai-policy-and-safety",
                                                           "models-and-research"]))
    assert answer.status_code == 303
    assert db.session.get(Reader, reader.id).first_name == "Augusta"
    assert "Saved: your name." in client.get("/preferences").get_data(as_text=True)
    [event] = db.session.scalars(select(ConsentEvent).where(ConsentEvent.kind == "preferences"))
    assert event.detail["changes"] == {"first_name": ["(a name)", "(a name)"]}
    assert "Augusta" not in str(event.detail) and "Ada" not in str(event.detail)


@pytest.mark.parametrize("name,problem", [
    ("A" * 61, "longer than 60"), ("Ada\nBob", "single line"), ("Ada\x00", "single line"),
    ("Ada\x07", "printable"),
])
def test_odd_names_are_refused_with_the_reason(app, client, name, problem):
    answer = client.post("/subscribe", data={"csrf_token": csrf_from(client),
                                             "email": "x@example.com", "first_name": name,
                                             "topic": ["ai-policy-and-safety"]})
    assert answer.status_code == 400 and problem in answer.get_data(as_text=True)
    assert db.session.scalar(select(Reader.id)) is None


def test_a_name_is_escaped_in_html_exported_and_erased(app, client, outbox):
    from tests.support.editions import send, special_edition

    reader = make_reader(first_name="<b>Ada</b>", topics=("ai-policy-and-safety",))
    send(app, special_edition().id)
    [message] = [m for m in outbox_messages(outbox) if m["List-Unsubscribe"]]
    html = message.get_body(("html",)).get_content()
    assert "Hello &lt;b&gt;Ada&lt;/b&gt;," in html and "<b>Ada</b>" not in html
    client.get(path_of(links().manage(reader.id)))
    assert client.get("/preferences/export").json["profile"]["first_name"] == "<b>Ada</b>"
    client.post("/preferences/delete", data={"confirm": "erase",
                                             "csrf_token": csrf_from(client, "/preferences")})
    assert db.session.get(Reader, reader.id).first_name is None


def test_a_move_skips_unticked_rows_and_enter_saves(app, client):
    from tests.factories import make_topic

    make_topic("chips-and-compute", "Chips and compute", position=4)
    reader = make_reader(topics=("ai-policy-and-safety", "models-and-research"))
    client.get(path_of(links().manage(reader.id)))
    html = client.get("/preferences").get_data(as_text=True)
    form = html[html.index('id="preferences-form"'):]
    # The form's first submit button (what Enter presses) is Save, not an arrow.
    first_button = form[form.index("<button"):form.index("</button>")]
    assert 'type="submit"' in first_button and ">Save" in first_button + ">"
    assert "Move Chips and compute up" in html  # an unticked row: its arrows are off
    assert re.search(r'aria-label="Move Chips and compute up" disabled', html)
    # Rows as shown: ticked A, an unticked one, ticked B; A down goes past the unticked.
    order = ["ai-policy-and-safety", "chips-and-compute", "models-and-research"]
    answer = client.post("/preferences", data=_form(client, order=order,
                                                    move="ai-policy-and-safety:down"))
    assert answer.headers["Location"].endswith("#topic-ai-policy-and-safety")
    assert [t.slug for t in db.session.get(Reader, reader.id).topics] == [
        "models-and-research", "ai-policy-and-safety"]
    # An unticked topic does not move; nothing is said to have moved.
    answer = client.post("/preferences", data=_form(client, move="chips-and-compute:up",
                                                    order=order))
    assert "Moved" not in client.get("/preferences").get_data(as_text=True)


def test_an_ended_pause_is_not_started_again_by_saving(app, client):
    from datetime import date

    reader = make_reader(frequency="paused", paused_until=date(2026, 12, 1))
    with time_machine.travel(utc(2026, 12, 7, 12), tick=False):
        client.get(path_of(links().manage(reader.id)))
        html = client.get("/preferences").get_data(as_text=True)
        assert re.search(r'value="daily" checked', html)
        assert not re.search(r'value="paused" checked', html)
    reader = db.session.get(Reader, reader.id)
    reader.paused_until = None  # paused with no end: the form asks when to come back
    db.session.commit()
    with time_machine.travel(utc(2026, 12, 7, 12), tick=False):
        html = client.get("/preferences").get_data(as_text=True)
    assert re.search(r'value="paused" checked', html)
    assert '<option value="" selected>choose when to come back</option>' in html


def test_undo_says_only_that_the_topic_is_back(app, client):
    reader = make_reader(topics=("ai-policy-and-safety", "models-and-research"))
    client.get(path_of(links().manage(reader.id)))
    client.post("/preferences", data=_form(client, topic=["ai-policy-and-safety"]))
    client.post("/preferences/rejoin", data={"topic": "models-and-research",
                                             "csrf_token": csrf_from(client, "/preferences")})
    html = client.get("/preferences").get_data(as_text=True)
    assert "You follow <strong>Models and research</strong> again." in html
    assert "Nothing changed." not in html


def test_errors_name_the_field_as_the_form_does(app, client):
    reader = make_reader()
    client.get(path_of(links().manage(reader.id)))
    answer = client.post("/preferences", data=_form(client, first_name="Ada\x07"))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "First name: must be printable text" in html
    assert 'aria-invalid="true" aria-describedby="first_name-error"' in html


def test_an_etc_zone_is_said_as_its_offset():
    from newsletter.editions import schedule

    due = schedule.Due(utc(2026, 12, 8, 12).date(), utc(2026, 12, 8, 12))
    assert schedule.describe(due, "Etc/GMT+5") == "Tuesday 8 December at 07:00, UTC−05:00"
    assert schedule.describe(due, "UTC") == "Tuesday 8 December at 12:00, UTC"
