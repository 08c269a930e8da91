"""Readers in the admin area: search, a reader's page and its actions, the CSV export and
the suppression list — for each role, with CSRF and HEAD checked on every action."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from newsletter.accounts.models import AuditEntry
from newsletter.db import db, utcnow
from newsletter.subscribers.addresses import email_hash
from newsletter.subscribers.models import ConsentEvent, Reader, ReaderTopic, Suppression
from tests.factories_readers import make_reader
from tests.support.admins import csrf, make_admin, sign_in

ROLES = ("viewer", "editor", "owner")


def signed_in(app, role: str):
    client = app.test_client()
    make_admin(f"{role}@news.example", role)
    assert sign_in(client, f"{role}@news.example").status_code == 302
    return client


def fingerprint() -> tuple:
    """Everything a reader action could change."""
    db.session.expire_all()
    readers = tuple(db.session.execute(select(Reader.id, Reader.email, Reader.status)
                                       .order_by(Reader.id)).all())
    links = tuple(db.session.execute(select(ReaderTopic.reader_id, ReaderTopic.topic_id)
                                     .order_by(ReaderTopic.reader_id, ReaderTopic.topic_id)))
    events = db.session.scalar(select(func.count(ConsentEvent.id)))
    suppressed = tuple(db.session.scalars(select(Suppression.email_hash)
                                          .order_by(Suppression.id)))
    audit = db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action != "signed in"))
    return readers, links, events, suppressed, audit


def _hash(email: str) -> str:
    from newsletter.wiring import reader_services

    return email_hash(email, reader_services().hash_key)


def _suppress(email: str, reason: str) -> Suppression:
    row = Suppression(email_hash=_hash(email), reason=reason)
    db.session.add(row)
    db.session.commit()
    return row


def post_routes(reader_id: int, suppression_id: int) -> list[tuple[str, dict]]:
    """Every state-changing reader route, with a form that would work."""
    return [
        (f"/admin/readers/{reader_id}/topics", {"topic": "models-and-research"}),
        (f"/admin/readers/{reader_id}/unsubscribe", {}),
        (f"/admin/readers/{reader_id}/suppress", {"note": "asked by phone"}),
        (f"/admin/readers/{reader_id}/lift", {}),
        (f"/admin/readers/{reader_id}/erase", {"confirm_email": "ada@example.com"}),
        ("/admin/readers/suppressions/add", {"email": "new@example.com"}),
        (f"/admin/readers/suppressions/{suppression_id}/lift", {}),
    ]


# -- pages -------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_every_readers_page_for_each_role(app, topics, role):
    reader = make_reader("ada@example.com")
    _suppress("gone@example.com", "hard_bounce")
    client = signed_in(app, role)
    pages = {"/admin/readers": 200, "/admin/readers?q=ADA&status=active&topic="
             "ai-policy-and-safety": 200, f"/admin/readers/{reader.id}": 200,
             "/admin/readers/suppressions": 200, "/admin/readers/suppressions?reason=manual": 200,
             "/admin/readers/import": 403 if role == "viewer" else 200,
             "/admin/readers/export.csv": 403 if role == "viewer" else 200}
    for path, expected in pages.items():
        response = client.get(path)
        assert response.status_code == expected, (path, response.status_code)
        assert response.headers["Cache-Control"] == "no-store"
    listing = client.get("/admin/readers").get_data(as_text=True)
    assert "ada@example.com" in listing and 'aria-current="page">Readers</a>' in listing
    page = client.get(f"/admin/readers/{reader.id}").get_data(as_text=True)
    assert "ada@example.com" in page and "AI policy and safety" in page
    assert ("Save topics" in page) is (role != "viewer")
    assert ("Erase this reader" in page) is (role == "owner")
    suppressions = client.get("/admin/readers/suppressions").get_data(as_text=True)
    assert "hard bounce" in suppressions and "kept only as a hash" in suppressions
    assert ("Suppress an address" in suppressions) is (role != "viewer")


def test_the_nav_link_shows_for_every_role(app, topics):
    client = signed_in(app, "viewer")
    html = client.get("/admin/").get_data(as_text=True)
    assert '<a href="/admin/readers">Readers</a>' in html


def test_search_filters_pages_newest_first_and_counts(app, topics):
    for i in range(27):
        make_reader(f"user{i:02d}@example.com", topics=("ai-policy-and-safety",))
    make_reader("left@example.com", status="unsubscribed")
    make_reader("researcher@example.com", topics=("models-and-research",))
    client = signed_in(app, "viewer")
    first = client.get("/admin/readers").get_data(as_text=True)
    assert "29 readers" in first
    assert first.index("researcher@example.com") < first.index("user26@example.com")
    assert "Page 1 of 2" in first
    assert "<strong>28</strong> active" in first and "<strong>1</strong> unsubscribed" in first
    second = client.get("/admin/readers?page=2").get_data(as_text=True)
    assert second.count('href="/admin/readers/') - second.count("/admin/readers/suppr") \
        - second.count("/admin/readers/import") - second.count("/admin/readers/export") == 4
    assert client.get("/admin/readers?page=3").status_code == 404
    by_topic = client.get("/admin/readers?topic=models-and-research").get_data(as_text=True)
    assert "researcher@example.com" in by_topic and "user01@" not in by_topic
    assert "left@example.com" in by_topic  # the factory gives both topics by default
    by_status = client.get("/admin/readers?status=unsubscribed").get_data(as_text=True)
    assert "1 reader match" in by_status and "left@example.com" in by_status
    # "_" and "%" are letters in a search, not wildcards.
    assert "Nobody matches" in client.get("/admin/readers?q=user_").get_data(as_text=True)
    assert "user05@example.com" in client.get("/admin/readers?q=R05@").get_data(as_text=True)
    assert client.get("/admin/readers?status=deleted").status_code == 400
    assert client.get("/admin/readers?topic=nope").status_code == 400
    assert client.get("/admin/readers?page=%C2%B2").status_code == 404


def test_a_readers_page_shows_deliveries_opens_clicks_and_consent(app, topics):
    from newsletter.delivery.models import Delivery
    from newsletter.delivery.tracking import click_target, record_open
    from newsletter.editions.models import EditionLink
    from newsletter.wiring import services
    from tests.support.editions import send, special_edition

    reader = make_reader("ada@example.com", topics=("ai-policy-and-safety",))
    db.session.add(ConsentEvent(reader_id=reader.id, kind="subscribe", source="form",
                                ip="192.0.2.7", detail={"topics": ["ai-policy-and-safety"]}))
    db.session.commit()
    edition = special_edition("Breaking: the reader page")
    send(app, edition.id)
    delivery = db.session.scalar(select(Delivery).where(Delivery.reader_id == reader.id))
    assert delivery.status == "sent"
    db.session.add(EditionLink(edition_id=edition.id, n=99, url="https://example.org/story"))
    db.session.commit()
    tokens = services().delivery_tokens
    later = utcnow().replace(year=utcnow().year + 1)  # well after the send: a person
    record_open(tokens.make(delivery.id), "Mozilla/5.0", tokens=tokens, now=later)
    click_target(tokens.make(delivery.id), 99, "Mozilla/5.0", tokens=tokens, now=later)

    client = signed_in(app, "viewer")
    page = client.get(f"/admin/readers/{reader.id}").get_data(as_text=True)
    assert "Breaking: the reader page" in page
    assert "1 in all · sent 1 · opened 1 · clicked 1" in page
    assert "https://example.org/story" in page
    assert "<td>open</td>" in page and "<td>click</td>" in page
    assert "192.0.2.7" in page and "subscribe" in page
    assert delivery.relay_reply is None or delivery.relay_reply[:20] in page


# -- actions -----------------------------------------------------------------------------

def test_an_editor_changes_topics_unsubscribes_suppresses_and_lifts(app, topics):
    reader = make_reader("ada@example.com")
    client = signed_in(app, "editor")
    token = csrf(client, f"/admin/readers/{reader.id}")
    response = client.post(f"/admin/readers/{reader.id}/topics",
                           data={"topic": ["models-and-research"], "csrf_token": token})
    assert response.status_code == 303
    db.session.expire_all()
    assert [t.slug for t in db.session.get(Reader, reader.id).topics] == ["models-and-research"]
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.kind == "preferences"))
    assert event.source == "admin" and event.detail["changes"]["topics"][1] == [
        "models-and-research"]
    # No topic at all, or an unknown one: 400 and nothing changed.
    before = fingerprint()
    assert client.post(f"/admin/readers/{reader.id}/topics",
                       data={"csrf_token": token}).status_code == 400
    refused = client.post(f"/admin/readers/{reader.id}/topics",
                          data={"topic": "nope", "csrf_token": token})
    assert refused.status_code == 400 and "unknown topic" in refused.get_data(as_text=True)
    assert fingerprint() == before

    assert client.post(f"/admin/readers/{reader.id}/suppress",
                       data={"note": "asked by phone", "csrf_token": token}).status_code == 303
    assert db.session.scalar(select(Suppression.reason)) == "manual"
    assert "suppressed: manual" in client.get(f"/admin/readers/{reader.id}").get_data(
        as_text=True)
    assert client.post(f"/admin/readers/{reader.id}/lift",
                       data={"csrf_token": token}).status_code == 303
    assert db.session.scalar(select(func.count(Suppression.id))) == 0

    assert client.post(f"/admin/readers/{reader.id}/unsubscribe",
                       data={"csrf_token": token}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Reader, reader.id).status == "unsubscribed"
    assert db.session.scalar(select(Suppression.reason)) == "unsubscribed"
    # An unsubscribe was the person's word: an editor cannot lift it.
    before = fingerprint()
    refused = client.post(f"/admin/readers/{reader.id}/lift", data={"csrf_token": token})
    assert refused.status_code == 409 and "own choice" in refused.get_data(as_text=True)
    assert fingerprint() == before

    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-4:] == ["changed reader topics", "suppressed reader", "lifted suppression",
                            "unsubscribed reader"]
    assert all("ada@" not in (e.target or "") for e in db.session.scalars(select(AuditEntry)))


def test_an_owner_erases_a_reader_after_typing_the_address(app, topics):
    reader = make_reader("ada@example.com")
    editor = signed_in(app, "editor")
    token = csrf(editor, f"/admin/readers/{reader.id}")
    before = fingerprint()
    assert editor.post(f"/admin/readers/{reader.id}/erase",
                       data={"confirm_email": "ada@example.com",
                             "csrf_token": token}).status_code == 403
    owner = signed_in(app, "owner")
    token = csrf(owner, f"/admin/readers/{reader.id}")
    wrong = owner.post(f"/admin/readers/{reader.id}/erase",
                       data={"confirm_email": "ada@example.org", "csrf_token": token})
    assert wrong.status_code == 400 and "nothing was erased" in wrong.get_data(as_text=True)
    assert fingerprint() == before

    done = owner.post(f"/admin/readers/{reader.id}/erase",
                      data={"confirm_email": " Ada@Example.com ", "csrf_token": token})
    assert done.status_code == 303
    db.session.expire_all()
    erased = db.session.get(Reader, reader.id)
    assert erased.status == "erased" and erased.email is None and erased.followed == []
    assert db.session.scalar(select(Suppression.reason).where(
        Suppression.email_hash == _hash("ada@example.com"))) == "erased"
    assert "ada@example.com" not in owner.get("/admin/readers").get_data(as_text=True)
    page = owner.get(f"/admin/readers/{reader.id}")
    assert page.status_code == 200 and "ada@example.com" not in page.get_data(as_text=True)
    # Nothing of an erased reader changes any more.
    assert owner.post(f"/admin/readers/{reader.id}/unsubscribe",
                      data={"csrf_token": token}).status_code == 409
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "erased reader"))
    assert entry.target == f"reader {reader.id}"


def test_a_viewer_changes_nothing(app, topics):
    reader = make_reader("ada@example.com")
    entry = _suppress("bounced@example.com", "hard_bounce")
    client = signed_in(app, "viewer")
    token = csrf(client, f"/admin/readers/{reader.id}")
    before = fingerprint()
    for path, form in post_routes(reader.id, entry.id):
        response = client.post(path, data={**form, "csrf_token": token})
        assert response.status_code == 403, path
    assert fingerprint() == before


def test_a_missing_or_stale_csrf_token_changes_nothing(app, topics):
    reader = make_reader("ada@example.com")
    entry = _suppress("bounced@example.com", "hard_bounce")
    other = signed_in(app, "owner")
    stale = csrf(other, "/admin/readers")  # another session's token
    client = app.test_client()
    assert sign_in(client, "owner@news.example").status_code == 302
    before = fingerprint()
    for path, form in post_routes(reader.id, entry.id):
        assert client.post(path, data=form).status_code == 400, path
        assert client.post(path, data={**form, "csrf_token": stale}).status_code == 400, path
    assert fingerprint() == before


def test_head_on_every_action_changes_nothing(app, topics):
    reader = make_reader("ada@example.com")
    entry = _suppress("bounced@example.com", "hard_bounce")
    client = signed_in(app, "owner")
    token = csrf(client, f"/admin/readers/{reader.id}")
    before = fingerprint()
    for path, form in post_routes(reader.id, entry.id):
        response = client.head(path, data={**form, "csrf_token": token})
        assert response.status_code == 405, path
    assert client.head("/admin/readers/export.csv").status_code == 200
    assert fingerprint() == before


# -- export ------------------------------------------------------------------------------

def test_export_follows_the_search_and_neutralises_formulas(app, topics):
    # Addresses that a spreadsheet would run as formulas (written straight to the table:
    # the form would refuse most of them).
    make_reader("=cmd|' /C calc'!A0@example.com")
    make_reader("+SUM(1;2)@example.com", topics=("models-and-research",))
    make_reader("-2+3@example.com")
    make_reader("@evil@example.com")
    make_reader("plain@example.com", status="unsubscribed")
    client = signed_in(app, "editor")
    response = client.get("/admin/readers/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["email", "status", "topics", "timezone", "joined"]
    emails = [row[0] for row in rows[1:]]
    assert emails == ["plain@example.com", "'@evil@example.com", "'-2+3@example.com",
                      "'+SUM(1;2)@example.com", "'=cmd|' /C calc'!A0@example.com"]
    assert rows[1][1:4] == ["unsubscribed", "ai-policy-and-safety models-and-research", "UTC"]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
               for row in rows for cell in row)
    only = client.get("/admin/readers/export.csv?status=active&topic=models-and-research")
    assert [r[0] for r in csv.reader(io.StringIO(only.get_data(as_text=True)))][1:] == \
        emails[1:]
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "exported readers")) == 2


def test_the_export_neutraliser_itself():
    from newsletter.subscribers.csv_export import csv_lines, neutralise

    assert neutralise("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert neutralise("+SUM()") == "'+SUM()"
    assert neutralise("\tx") == "'\tx" and neutralise("\rx") == "'\rx"
    assert neutralise("ada@example.com") == "ada@example.com" and neutralise(None) == ""
    assert list(csv_lines([["=1", 'say "hi"']])) == ['\'=1,"say ""hi"""\r\n']


def test_export_of_many_readers_comes_in_batches(app, topics):
    from newsletter.subscribers import csv_export
    from newsletter.subscribers.search import ReaderFilter

    for i in range(5):
        make_reader(f"r{i}@example.com")
    original = csv_export.BATCH
    csv_export.BATCH = 2
    try:
        lines = list(csv_export.export_readers(ReaderFilter()))
    finally:
        csv_export.BATCH = original
    assert len(lines) == 6 and lines[1].startswith("r4@example.com,active,")


# -- the suppression list ----------------------------------------------------------------

def test_the_suppression_list_adds_shows_and_lifts(app, topics):
    reader = make_reader("ada@example.com")
    complaint = _suppress("angry@example.com", "complaint")
    client = signed_in(app, "editor")
    token = csrf(client, "/admin/readers/suppressions")
    before = fingerprint()
    bad = client.post("/admin/readers/suppressions/add",
                      data={"email": "not an address", "csrf_token": token})
    assert bad.status_code == 400 and "not an address" in bad.get_data(as_text=True)
    assert fingerprint() == before

    assert client.post("/admin/readers/suppressions/add",
                       data={"email": "ADA@example.com", "note": "asked",
                             "csrf_token": token}).status_code == 303
    again = client.post("/admin/readers/suppressions/add",
                        data={"email": "ada@example.com", "csrf_token": token},
                        follow_redirects=True)
    assert "already" in again.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Suppression.id))) == 2
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.kind == "suppressed"))
    assert event.reader_id == reader.id
    page = client.get("/admin/readers/suppressions").get_data(as_text=True)
    assert f'href="/admin/readers/{reader.id}">ada@example.com</a>' in page
    assert "complaint" in page and "the person's choice" in page

    refused = client.post(f"/admin/readers/suppressions/{complaint.id}/lift",
                          data={"csrf_token": token})
    assert refused.status_code == 409
    assert client.post("/admin/readers/suppressions/99999/lift",
                       data={"csrf_token": token}).status_code == 404
    manual = db.session.scalar(select(Suppression).where(Suppression.reason == "manual"))
    assert client.post(f"/admin/readers/suppressions/{manual.id}/lift",
                       data={"csrf_token": token}).status_code == 303
    assert list(db.session.scalars(select(Suppression.reason))) == ["complaint"]
    assert client.get("/admin/readers/suppressions?reason=nope").status_code == 400
    assert client.get("/admin/readers/suppressions?page=9").status_code == 404


def test_a_readers_page_shows_their_first_name_escaped(app, topics):
    reader = make_reader(first_name="<i>Ada</i>")
    html = signed_in(app, "viewer").get(f"/admin/readers/{reader.id}").get_data(as_text=True)
    assert "<dt>First name</dt><dd>&lt;i&gt;Ada&lt;/i&gt;</dd>" in html
