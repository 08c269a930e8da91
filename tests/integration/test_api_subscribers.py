"""POST/GET/DELETE /api/v1/subscribers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.db import db
from newsletter.subscribers.models import ConsentEvent, Reader
from tests.factories_readers import make_reader
from tests.support.readers import outbox_messages

CONSENT = {"obtained_at": "2026-11-01T10:00:00Z", "wording_version": "cms-2026-10",
           "source_detail": "signup form on partner.example", "ip": "203.0.113.9"}


def count() -> int:
    return db.session.scalar(select(func.count(Reader.id)))


def test_without_consent_record_it_is_double_opt_in(client, topics, auth, app):
    response = client.post("/api/v1/subscribers", headers=auth, json={
        "email": "Grace@Example.com", "topics": ["ai-policy-and-safety"],
        "timezone": "Asia/Shanghai"})
    assert response.status_code == 202
    assert response.json == {"outcome": "confirmation_sent"}
    reader = db.session.scalar(select(Reader))
    assert (reader.email, reader.status, reader.source, reader.timezone) == (
        "grace@example.com", "pending", "api", "Asia/Shanghai")
    [message] = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    assert message["Subject"] == "Confirm your subscription to Modelwire"


def test_with_consent_record_the_reader_is_active_and_the_record_kept(client, topics, auth):
    response = client.post("/api/v1/subscribers", headers=auth, json={
        "email": "grace@example.com", "topics": ["models-and-research"],
        "delivery_time": "08:15", "consent": CONSENT})
    assert response.status_code == 201, response.json
    body = response.json["subscriber"]
    assert body["status"] == "active"
    assert body["preferences"]["delivery_time"] == "08:15"
    events = list(db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)))
    assert [(e.kind, e.source) for e in events] == [("subscribe", "api"), ("confirm", "api")]
    assert events[0].detail["consent_record"]["wording_version"] == "cms-2026-10"

    again = client.post("/api/v1/subscribers", headers=auth, json={
        "email": "grace@example.com", "topics": ["models-and-research"], "consent": CONSENT})
    assert again.status_code == 200 and again.json["outcome"] == "exists"
    assert count() == 1


def test_suppressed_address_with_consent_record_is_refused(client, topics, auth):
    reader = make_reader(email="gone@example.com")
    assert client.delete(f"/api/v1/subscribers/{reader.id}", headers=auth).status_code == 204
    response = client.post("/api/v1/subscribers", headers=auth, json={
        "email": "gone@example.com", "topics": ["ai-policy-and-safety"], "consent": CONSENT})
    assert response.status_code == 409
    assert response.json["error"] == "conflict"
    assert db.session.scalar(select(func.count(Reader.id)).where(
        Reader.email == "gone@example.com")) == 0


def test_get_and_delete(client, topics, auth):
    reader = make_reader(email="lin@example.com", timezone="Europe/Berlin")
    got = client.get(f"/api/v1/subscribers/{reader.id}", headers=auth)
    assert got.status_code == 200
    assert got.json["email"] == "lin@example.com"
    assert got.json["preferences"]["timezone"] == "Europe/Berlin"
    assert client.delete(f"/api/v1/subscribers/{reader.id}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/subscribers/{reader.id}", headers=auth).status_code == 404
    assert client.delete(f"/api/v1/subscribers/{reader.id}", headers=auth).status_code == 404
    assert client.get("/api/v1/subscribers/999999", headers=auth).status_code == 404


@pytest.mark.parametrize("payload,field", [
    ({"email": "nope", "topics": ["ai-policy-and-safety"]}, "email"),
    ({"email": "a@example.com\r\nBcc: b@example.com", "topics": ["ai-policy-and-safety"]},
     "email"),
    ({"email": "a@example.com", "topics": "ai-policy-and-safety"}, "topics"),
    ({"email": "a@example.com", "topics": ["crypto"]}, "topic"),
    ({"email": "a@example.com", "topics": ["ai-policy-and-safety"], "timezone": "Nowhere/X"},
     "timezone"),
    ({"email": "a@example.com", "topics": ["ai-policy-and-safety"], "colour": "red"}, "colour"),
    ({"email": "a@example.com", "topics": ["ai-policy-and-safety"], "consent": "yes"},
     "consent"),
    ({"email": "a@example.com", "topics": ["ai-policy-and-safety"],
      "consent": {"wording_version": "v1"}}, "consent.obtained_at"),
    ({"email": "a@example.com", "topics": ["ai-policy-and-safety"],
      "consent": {**CONSENT, "obtained_at": "2999-01-01T00:00:00Z"}}, "consent.obtained_at"),
    ({"email": "a@example.com", "topics": ["ai-policy-and-safety"],
      "consent": {**CONSENT, "wording_version": "x" * 41}}, "consent.wording_version"),
])
def test_bad_payloads_get_400_naming_the_field(client, topics, auth, app, payload, field):
    response = client.post("/api/v1/subscribers", headers=auth, json=payload)
    assert response.status_code == 400
    assert field in [p["field"] for p in response.json["problems"]]
    assert count() == 0
    assert outbox_messages(Path(app.config["OUTBOX_DIR"])) == []


def test_subscriber_api_needs_a_token(client, topics):
    reader = make_reader()
    assert client.post("/api/v1/subscribers", json={}).status_code == 401
    assert client.get(f"/api/v1/subscribers/{reader.id}").status_code == 401
    assert client.delete(f"/api/v1/subscribers/{reader.id}").status_code == 401
    assert db.session.get(Reader, reader.id).email == "ada@example.com"


def test_a_first_name_comes_in_through_the_api_too(client, topics, auth):
    response = client.post("/api/v1/subscribers", headers=auth, json={
        "email": "grace@example.com", "first_name": "Grace", "topics": ["models-and-research"],
        "consent": CONSENT})
    assert response.status_code == 201, response.json
    assert db.session.scalar(select(Reader.first_name)) == "Grace"
    for odd in (5, ["Grace"], "G" * 61, "Gr\nace"):
        bad = client.post("/api/v1/subscribers", headers=auth, json={
            "email": "other@example.com", "first_name": odd, "topics": ["models-and-research"]})
        assert bad.status_code == 400, odd
        assert any(p["field"] == "first_name" for p in bad.json["problems"])
    assert count() == 1
