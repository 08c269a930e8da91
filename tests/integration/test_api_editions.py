"""POST /api/v1/editions and GET /api/v1/editions/<id>: a CMS makes a special edition
without a person, and reads what happened to it."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import current_app
from sqlalchemy import func, select

from newsletter.accounts import scopes
from newsletter.accounts.audit import AdminActor
from newsletter.accounts.models import AuditEntry
from newsletter.accounts.service import create_token
from newsletter.db import db, utcnow
from newsletter.delivery import service as sending
from newsletter.delivery.models import Delivery
from newsletter.editions.models import Edition
from newsletter.wiring import mail_setup
from tests.factories import make_synthesis
from tests.factories_readers import make_reader
from tests.support.digests import compose_at, utc
from tests.support.editions import audience, send
from tests.support.readers import outbox_messages, text_of
from tests.support.threads import at_once

MARKDOWN = """\
Good morning. The regulator published its rules overnight.

<script>alert('pwned')</script>

## What changed

The [rules](https://regulator.example/rules) set <b onclick="steal()">binding</b>
deadlines, and here is a [trap](javascript:alert(1)).
"""


def count() -> int:
    return db.session.scalar(select(func.count(Edition.id)))


def token_entries() -> list[AuditEntry]:
    """What the ``tests`` token did (its own creation, by the fixture, is not counted)."""
    return list(db.session.scalars(select(AuditEntry).where(
        AuditEntry.actor == "api token tests").order_by(AuditEntry.id)))


def post(client, payload, headers, **kwargs):
    return client.post("/api/v1/editions", data=json.dumps(payload),
                       content_type="application/json", headers=headers, **kwargs)


def breaking(**fields) -> dict:
    payload = {"subject": "Breaking: the rules are out", "markdown": MARKDOWN,
               "topics": ["ai-policy-and-safety"]}
    payload.update(fields)
    return payload


@pytest.fixture
def readers(topics):
    """Two readers of AI policy and one of research only."""
    return [*audience(2), make_reader(email="research@example.com",
                                      topics=("models-and-research",))]


# -- creating ----------------------------------------------------------------------------

def test_markdown_makes_a_draft_with_the_script_removed(client, readers, auth):
    response = post(client, breaking(), auth)
    assert response.status_code == 201, response.json
    body = response.json
    edition = db.session.get(Edition, body["id"])
    assert body == {
        "id": edition.id, "kind": "special", "status": "draft",
        "subject": "Breaking: the rules are out",
        "preheader": "Good morning. The regulator published its rules overnight.",
        "audience": {"topics": ["ai-policy-and-safety"], "tier": "all"},
        "send_at": None, "created_at": edition.created_at.isoformat(),
        "started_at": None, "finished_at": None,
        "url": f"https://news.example/admin/editions/{edition.id}",
        "recipients": 2,
    }
    assert response.headers["Location"] == f"/api/v1/editions/{edition.id}"
    assert (edition.kind, edition.status, edition.send_at) == ("special", "draft", None)
    assert edition.content["markdown"] == MARKDOWN, "the source is kept for the composer"
    html = edition.content["body_html"]
    assert ">What changed</h2>" in html
    assert 'href="https://regulator.example/rules"' in html
    for unsafe in ("<script", "alert", "onclick", "steal", "javascript"):
        assert unsafe not in html, unsafe
    assert count() == 1


def test_each_creation_is_in_the_audit_log_under_the_tokens_name(client, readers, auth):
    edition_id = post(client, breaking(), auth).json["id"]
    [entry] = token_entries()
    assert (entry.actor, entry.action, entry.target, entry.admin_id, entry.ip) == (
        "api token tests", "saved draft", f"edition {edition_id}", None, "127.0.0.1")
    assert entry.detail["recipients"] == 2
    assert entry.detail["subject"] == "Breaking: the rules are out"


def test_send_at_schedules_it_and_the_worker_starts_it_when_due(client, readers, auth):
    when = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    response = post(client, breaking(send_at=when.isoformat()), auth)
    assert response.status_code == 201, response.json
    assert (response.json["status"], response.json["send_at"]) == (
        "scheduled", when.isoformat())
    edition = db.session.get(Edition, response.json["id"])
    assert (edition.status, edition.send_at) == ("scheduled", when)

    assert sending.start_due_editions(mail_setup()) == [], "not yet"
    with time_machine.travel(when + timedelta(seconds=1)):
        assert sending.start_due_editions(mail_setup()) == [edition.id]
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Delivery.id))) == 2


def test_send_at_in_another_offset_is_kept_in_utc(client, readers, auth):
    when = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    local = when.astimezone(ZoneInfo("Asia/Tokyo"))
    response = post(client, breaking(send_at=local.isoformat()), auth)
    assert response.status_code == 201, response.json
    assert response.json["send_at"] == when.isoformat()


def test_send_at_a_few_seconds_ago_is_still_now(client, readers, auth):
    response = post(client, breaking(send_at=(utcnow() - timedelta(seconds=30)).isoformat()),
                    auth)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "scheduled"


def test_synthesis_ids_make_an_edition_of_cards(client, readers, auth, app):
    first, second = make_synthesis(title="Chips export rules"), make_synthesis(
        title="A new frontier model")
    response = post(client, {"subject": "Two stories", "topics": ["ai-policy-and-safety"],
                             "synthesis_ids": [second.id, first.id, second.id]}, auth)
    assert response.status_code == 201, response.json
    edition = db.session.get(Edition, response.json["id"])
    assert edition.content["sections"] == [
        {"title": "", "synthesis_ids": [second.id, first.id]}], "in order, once each"
    assert edition.content["markdown"] == ""

    send(app, edition.id)
    messages = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    assert sorted(m["To"] for m in messages) == ["reader0@example.com", "reader1@example.com"]
    text = text_of(messages[0])
    assert messages[0]["Subject"] == "Two stories"
    assert text.index("A new frontier model") < text.index("Chips export rules")


def test_markdown_and_syntheses_together(client, readers, auth):
    story = make_synthesis(title="Chips export rules")
    response = post(client, breaking(synthesis_ids=[story.id], preheader="Read this first",
                                     tier="all"), auth)
    assert response.status_code == 201, response.json
    edition = db.session.get(Edition, response.json["id"])
    assert edition.preheader == "Read this first"
    assert edition.content["sections"][0]["synthesis_ids"] == [story.id]
    assert ">What changed</h2>" in edition.content["body_html"]


def test_an_empty_topic_list_is_every_reader_who_takes_specials(client, readers, auth):
    response = post(client, breaking(topics=[]), auth)
    assert response.status_code == 201, response.json
    assert response.json["recipients"] == 3


def test_paid_tier_counts_paying_readers_only(client, readers, auth):
    make_reader(email="payer@example.com", plan="paid", topics=("ai-policy-and-safety",))
    response = post(client, breaking(tier="paid"), auth)
    assert response.status_code == 201, response.json
    assert response.json["audience"]["tier"] == "paid"
    assert response.json["recipients"] == 1


# -- refusing ----------------------------------------------------------------------------

BAD = [
    ({"subject": None}, "subject", "is required"),
    ({"subject": "   "}, "subject", "is required"),
    ({"subject": 42}, "subject", "must be text"),
    ({"subject": "Line one\r\nBcc: someone@example.com"}, "subject",
     "must be one line of at most 300 characters"),
    ({"subject": "x" * 301}, "subject", "must be one line of at most 300 characters"),
    ({"preheader": 5}, "preheader", "must be text"),
    ({"preheader": "a\nb"}, "preheader", "must be one line of at most 300 characters"),
    ({"topics": ["no-such-topic"]}, "topics", "unknown topic 'no-such-topic'"),
    ({"topics": "ai-policy-and-safety"}, "topics", "must be an array of topic slugs"),
    ({"topics": [1]}, "topics", "must be an array of topic slugs"),
    ({"topics": {"slug": "ai-policy-and-safety"}}, "topics", "must be an array of topic slugs"),
    ({"topics": None}, "topics", "is required: the topic slugs whose readers get the edition "
                                 "([] for every reader)"),
    ({"synthesis_ids": [987654]}, "synthesis_ids", "no synthesis with id 987654"),
    ({"synthesis_ids": 5}, "synthesis_ids", "must be an array of synthesis ids"),
    ({"synthesis_ids": "1,2"}, "synthesis_ids", "must be an array of synthesis ids"),
    ({"synthesis_ids": list(range(1, 52))}, "synthesis_ids", "has more than 50 ids"),
    ({"markdown": 42}, "markdown", "must be text"),
    ({"markdown": ["# hi"]}, "markdown", "must be text"),
    ({"markdown": "<script>alert(1)</script>"}, "markdown",
     "has no content once unsafe HTML is removed"),
    ({"markdown": "x" * (200 * 1024 + 1)}, "markdown", "is larger than 200 KB"),
    ({"markdown": None}, "markdown", "is required unless synthesis_ids are given"),
    ({"markdown": " \n\t "}, "markdown", "is required unless synthesis_ids are given"),
    ({"markdown": "", "synthesis_ids": []}, "markdown",
     "is required unless synthesis_ids are given"),
    ({"tier": "gold"}, "tier", "must be one of all, paid"),
    ({"tier": 1}, "tier", "must be one of all, paid"),
    ({"tier": ["paid"]}, "tier", "must be one of all, paid"),
    ({"send_at": "2030-01-01T09:00:00"}, "send_at",
     "needs a timezone offset, e.g. 2026-11-27T00:00:00Z"),
    ({"send_at": "2020-01-01T09:00:00Z"}, "send_at", "is in the past"),
    ({"send_at": "tomorrow"}, "send_at", "is not an ISO 8601 date-time"),
    ({"send_at": 1767225600}, "send_at", "is not an ISO 8601 date-time"),
    ({"send_at": "9999-12-31T23:59:59-01:00"}, "send_at", "is out of range"),
    ({"colour": "red"}, "colour", "is not a known field"),
]


@pytest.mark.parametrize("fields,field,message", BAD,
                         ids=[f"{field}-{i}" for i, (_, field, _) in enumerate(BAD)])
def test_bad_input_is_400_naming_the_field_and_creates_nothing(client, readers, auth,
                                                               fields, field, message):
    payload = {k: v for k, v in breaking(**fields).items() if v is not None}
    response = post(client, payload, auth)
    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid"
    assert {"field": field, "message": message} in response.json["problems"], \
        response.json["problems"]
    assert count() == 0
    assert token_entries() == []


@pytest.mark.parametrize("bad", [
    True, False, 1.5, 1.0, "1", "²", "١", None, 0, -3, 2**62, 2**62 + 1, 2**63, [1], {"id": 1},
])
def test_a_synthesis_id_must_be_a_json_integer_in_range(client, readers, auth, bad):
    story = make_synthesis()
    response = post(client, breaking(synthesis_ids=[story.id, bad]), auth)
    assert response.status_code == 400, response.json
    assert response.json["problems"] == [{
        "field": "synthesis_ids[1]",
        "message": "must be a whole number from 1 to 4611686018427387903"}]
    assert count() == 0


def test_every_problem_is_listed_at_once(client, readers, auth):
    response = post(client, {"subject": "", "topics": ["nope"], "synthesis_ids": [True],
                             "tier": "gold", "send_at": "2020-01-01T00:00:00Z",
                             "extra": 1}, auth)
    assert response.status_code == 400
    fields = [p["field"] for p in response.json["problems"]]
    assert set(fields) == {"extra", "synthesis_ids[0]", "tier", "send_at", "subject", "topics"}
    assert fields.count("subject") == 1
    assert count() == 0


def test_nobody_following_the_topics_is_refused_with_the_reason(client, topics, auth):
    make_reader(email="research@example.com", topics=("models-and-research",))
    make_reader(email="left@example.com", status="unsubscribed")
    response = post(client, breaking(), auth)
    assert response.status_code == 400
    assert response.json["problems"] == [{
        "field": "topics",
        "message": "nobody would receive this edition: no active reader who takes special "
                   "editions follows ai-policy-and-safety"}]
    assert count() == 0


def test_a_paid_edition_nobody_pays_for_is_refused(client, readers, auth):
    response = post(client, breaking(tier="paid", topics=[]), auth)
    assert response.status_code == 400
    assert response.json["problems"] == [{
        "field": "tier",
        "message": "nobody would receive this edition: no active reader who takes special "
                   "editions and has the paid plan"}]
    assert count() == 0


@pytest.mark.parametrize("body", ["[]", '"text"', "null", "3"])
def test_body_must_be_an_object(client, readers, auth, body):
    response = client.post("/api/v1/editions", data=body, headers=auth,
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json["problems"] == [{"field": "(body)", "message": "must be a JSON object"}]
    assert count() == 0


@pytest.mark.parametrize("body,status", [
    ("[" * 10_000 + "]" * 10_000, 400),
    ('{"subject": "x", "topics": [], "synthesis_ids": [' + "9" * 5000 + "]}", 400),
    ('{"subject": "\\ud800", "markdown": "hi", "topics": []}', 400),
    ('{"subject": "x",', 400),
    (json.dumps(breaking(markdown="x" * (1024 * 1024))), 413),
])
def test_deep_huge_broken_or_oversized_bodies_are_4xx(client, readers, auth, body, status):
    response = client.post("/api/v1/editions", data=body, headers=auth,
                           content_type="application/json")
    assert response.status_code == status, response.data[:300]
    assert response.is_json
    assert count() == 0


def test_a_body_that_is_not_json_is_415(client, readers, auth):
    response = client.post("/api/v1/editions", data="subject=x", headers=auth,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert count() == 0


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer ", "bearer"])
def test_missing_or_wrong_token_is_401_and_creates_nothing(client, readers, header):
    headers = {"Authorization": header} if header is not None else {}
    response = post(client, breaking(), headers)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized" and set(response.json) == {"error", "message"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert count() == 0


def test_revoked_token_is_refused(client, readers, api_token, runner):
    assert runner.invoke(args=["api-token", "revoke", "tests"]).exit_code == 0
    response = post(client, breaking(), {"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 401
    assert count() == 0


# -- the Idempotency-Key header ----------------------------------------------------------

def test_the_same_key_twice_makes_one_edition(client, readers, auth):
    headers = {**auth, "Idempotency-Key": "cms-article-8812"}
    first = post(client, breaking(), headers)
    again = post(client, breaking(), headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count() == 1
    assert len(token_entries()) == 1
    quoted = post(client, breaking(), {**auth, "Idempotency-Key": '"cms-article-8812"'})
    assert (quoted.status_code, quoted.json["id"]) == (200, first.json["id"]), \
        "the IETF draft's quoted form is the same key"


def test_a_retry_after_its_send_at_still_gets_its_edition(client, readers, auth):
    headers = {**auth, "Idempotency-Key": "cms-article-8813"}
    payload = breaking(send_at=(utcnow() + timedelta(seconds=30)).isoformat())
    first = post(client, payload, headers)
    assert first.status_code == 201, first.json
    with time_machine.travel(utcnow() + timedelta(minutes=10)):
        again = post(client, payload, headers)
        late = post(client, payload, auth)
    assert (again.status_code, again.json["id"]) == (200, first.json["id"])
    assert late.status_code == 400, "without the key it is a new request, and too late"
    assert count() == 1


def test_a_key_reused_for_another_request_is_409(client, readers, auth):
    headers = {**auth, "Idempotency-Key": "cms-article-8812"}
    first = post(client, breaking(), headers)
    other = post(client, breaking(subject="A correction"), headers)
    assert other.status_code == 409
    assert other.json["error"] == "conflict"
    assert str(first.json["id"]) in other.json["message"]
    assert count() == 1
    assert db.session.get(Edition, first.json["id"]).subject == "Breaking: the rules are out"


def test_without_a_key_each_request_is_a_new_edition(client, readers, auth):
    assert post(client, breaking(), auth).status_code == 201
    assert post(client, breaking(), auth).status_code == 201
    assert count() == 2


def test_keys_belong_to_their_token(client, readers, auth):
    other = {"Authorization": "Bearer " + create_token(
        "other-cms", scopes.ALL, actor=AdminActor(None, "tests")).secret}
    assert post(client, breaking(), {**auth, "Idempotency-Key": "k1"}).status_code == 201
    assert post(client, breaking(), {**other, "Idempotency-Key": "k1"}).status_code == 201
    assert count() == 2


@pytest.mark.parametrize("key", ["", "   ", "has space", "x" * 101, "clé", '""'])
def test_a_malformed_key_is_400(client, readers, auth, key):
    response = post(client, breaking(), {**auth, "Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json["problems"][0]["field"] == "Idempotency-Key"
    assert count() == 0


def test_a_key_sent_by_three_clients_at_once_makes_one_edition(app_config, app, readers,
                                                               api_token):
    def step():
        response = current_app.test_client().post(
            "/api/v1/editions", json=breaking(),
            headers={"Authorization": f"Bearer {api_token}", "Idempotency-Key": "race"})
        return response.status_code, response.get_json()["id"]

    results = at_once(app_config, step)
    assert sorted(status for status, _ in results) == [200, 200, 201]
    assert len({edition_id for _, edition_id in results}) == 1
    db.session.expire_all()
    assert count() == 1
    assert len(token_entries()) == 1


# -- reading -----------------------------------------------------------------------------

@pytest.fixture
def smtp_config(app_config, smtp_server):
    app_config.update(MAIL_TRANSPORT="smtp", SMTP_URL=smtp_server.url,
                      RETRY_BASE_SECONDS=3600)
    return app_config


def _arf_complaint(raw: bytes, rcpt: str) -> bytes:
    """An abuse report (RFC 5965) as a mailbox provider sends it, quoting the message."""
    head = (
        "From: Mail AntiSpam Feedback <feedback@arf.mail.example>\r\n"
        "To: fbl@news.example\r\nSubject: FW: complaint\r\n"
        "Date: Thu, 26 Nov 2026 07:41:22 +0000\r\n"
        "Message-ID: <arf-1@arf.mail.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b0"\r\n\r\n'
        "--b0\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
        "--b0\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nVersion: 1\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\r\n"
        "--b0\r\nContent-Type: message/rfc822\r\n\r\n")
    return head.encode() + raw + b"\r\n--b0--\r\n"


def test_get_counts_what_happened_to_a_sent_edition(smtp_config, app, client, topics, auth,
                                                    smtp_server, runner):
    people = audience(6)
    make_reader(email="research@example.com", topics=("models-and-research",))
    bounced, deferred, opener, clicker, leaver, complainer = (r.email for r in people)
    smtp_server.reply = lambda received: {bounced: "550 5.1.1 no such user",
                                          deferred: "451 4.3.0 try again later"}.get(
                                              received.rcpt_tos[0])
    created = post(client, breaking(), auth)
    assert created.json["recipients"] == 6
    edition_id = created.json["id"]
    send(app, edition_id)
    received = {m.rcpt_tos[0]: m.message for m in smtp_server.messages}
    assert sorted(received) == sorted([opener, clicker, leaver, complainer])

    def tracking_path(address: str, prefix: str) -> str:
        html = received[address].get_body(("html",)).get_content()
        return re.search(r"https://news\.example(/" + prefix + r"/[^\"\s]+)", html).group(1)

    person = {"User-Agent": "Mozilla/5.0 (Macintosh)"}
    with time_machine.travel(utcnow() + timedelta(minutes=5)):
        assert client.get(tracking_path(opener, "o"), headers=person).status_code == 200
        assert client.get(tracking_path(clicker, "o"), headers=person).status_code == 200
        assert client.get(tracking_path(clicker, "c"), headers=person).status_code == 302
        unsubscribe = received[leaver]["List-Unsubscribe"].split(",")[0].strip(" <>")
        assert app.test_client(use_cookies=False).post(
            unsubscribe.removeprefix("https://news.example"), data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded").status_code == 200
        raw = next(m.raw for m in smtp_server.messages if m.rcpt_tos[0] == complainer)
        result = runner.invoke(args=["bounces", "process", "-"],
                               input=_arf_complaint(raw, complainer))
        assert "1 complaint" in result.output, result.output

    response = client.get(f"/api/v1/editions/{edition_id}", headers=auth)
    assert response.status_code == 200
    body = response.json
    assert (body["id"], body["kind"], body["status"], body["subject"]) == (
        edition_id, "special", "sending", "Breaking: the rules are out")
    assert body["started_at"] is not None and body["finished_at"] is None
    assert body["counts"] == {
        "queued": 0, "claimed": 0, "sent": 4, "deferred": 1, "bounced": 1, "failed": 0,
        "cancelled": 0, "opened": 2, "clicked": 1, "unsubscribed": 2, "complained": 1}
    statuses = dict(db.session.execute(
        select(Delivery.status, func.count()).where(Delivery.edition_id == edition_id)
        .group_by(Delivery.status)).all())
    assert statuses == {"sent": 4, "deferred": 1, "bounced": 1}


def test_get_a_draft(client, readers, auth):
    draft = post(client, breaking(), auth).json
    got = client.get(f"/api/v1/editions/{draft['id']}", headers=auth)
    assert got.status_code == 200
    assert {k: v for k, v in got.json.items() if k != "counts"} == {
        k: v for k, v in draft.items() if k != "recipients"}
    assert set(got.json["counts"].values()) == {0}


def test_get_a_digest_the_worker_wrote(app, client, topics, auth):
    reader = make_reader("slot@example.com", topics=("ai-policy-and-safety",))
    reader.confirmed_at = utc(2026, 3, 1)
    db.session.commit()
    make_synthesis(title="Slot story", published_at="2026-03-02T05:00:00+00:00")
    compose_at(app, utc(2026, 3, 2, 7, 0))
    digest_id = db.session.scalar(select(Delivery.edition_id))
    got = client.get(f"/api/v1/editions/{digest_id}", headers=auth)
    assert got.status_code == 200
    assert (got.json["kind"], got.json["status"], got.json["counts"]["queued"]) == (
        "digest", "sending", 1)
    assert got.json["audience"] == {"topics": ["ai-policy-and-safety"], "tier": "all"}


@pytest.mark.parametrize("edition_id", ["999999", "0", str(2**62), str(2**63), "1" + "0" * 30])
def test_get_an_unknown_edition_is_a_json_404(client, readers, auth, edition_id):
    response = client.get(f"/api/v1/editions/{edition_id}", headers=auth)
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/editions/²", "/api/v1/editions/-1",
                                  "/api/v1/editions/abc"])
def test_get_an_id_that_is_no_number_is_404(client, readers, auth, path):
    response = client.get(path, headers=auth)
    assert response.status_code == 404
    assert response.is_json


def test_get_needs_a_token(client, readers, auth):
    edition_id = post(client, breaking(), auth).json["id"]
    response = client.get(f"/api/v1/editions/{edition_id}")
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized" and set(response.json) == {"error", "message"}


# -- other methods -----------------------------------------------------------------------

def test_head_and_options_create_nothing(client, readers, auth):
    edition_id = post(client, breaking(), auth).json["id"]
    body = {"data": json.dumps(breaking()), "content_type": "application/json",
            "headers": auth}
    assert client.head("/api/v1/editions", **body).status_code == 405, "POST only"
    head = client.head(f"/api/v1/editions/{edition_id}", **body)
    assert (head.status_code, head.data) == (200, b"")
    for path in ("/api/v1/editions", f"/api/v1/editions/{edition_id}"):
        options = client.options(path, **body)
        assert options.status_code == 200
        assert "DELETE" not in options.headers["Allow"]
    assert "POST" in client.options("/api/v1/editions").headers["Allow"]
    assert count() == 1
    assert len(token_entries()) == 1


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(client, readers, auth, method):
    edition_id = post(client, breaking(), auth).json["id"]
    for path in ("/api/v1/editions", f"/api/v1/editions/{edition_id}"):
        response = client.open(path, method=method, data=json.dumps(breaking()),
                               headers=auth, content_type="application/json")
        assert response.status_code == 405, (method, path)
        assert response.is_json
    assert client.get("/api/v1/editions", headers=auth).status_code == 405
    assert count() == 1
    assert db.session.get(Edition, edition_id).status == "draft"
