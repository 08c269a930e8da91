"""Odd input gets a clear 4xx and changes nothing — never a 500: Unicode digits, JSON
nested deep or with huge numbers, lone surrogates, dates at the ends of time, ids past
64 bits, a certificate that cannot be fetched; and one bad record never stops an import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.content.models import Synthesis
from newsletter.db import db
from tests.factories_readers import links, make_reader

DEEP = "[" * 5000 + "]" * 5000
HUGE = "9" * 5000


def _synthesis(**fields) -> dict:
    base = json.loads(Path("tests/data/sample_synthesis.json").read_text(encoding="utf-8"))
    base.update(fields)
    return base


@pytest.mark.parametrize("path", ["/?page=²", "/topics/ai-policy-and-safety?page=²",
                                  "/editions?page=²", "/?page=" + HUGE])
def test_unicode_or_huge_page_numbers_are_404(client, topics, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("query", ["limit=²", "offset=²", "limit=" + HUGE, "offset=-1",
                                   "since=0001-01-01T00:00:00%2B01:00",
                                   "since=9999-12-31T23:59:59-01:00", "since=yesterday"])
def test_api_listing_refuses_odd_queries_with_400(client, topics, api_token, query):
    response = client.get(f"/api/v1/syntheses?{query}",
                          headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 400, response.data
    assert response.json["problems"]


@pytest.mark.parametrize("body", [
    DEEP,
    json.dumps({"external_id": "x", "title": "t"})[:-1] + ', "n": ' + HUGE + "}",
    '{"external_id": "x", "title": "\\ud800"}',
])
@pytest.mark.parametrize("path", ["/api/v1/syntheses", "/api/v1/subscribers"])
def test_api_bodies_deep_huge_or_with_lone_surrogates_are_400(client, topics, api_token,
                                                              body, path):
    response = client.post(path, data=body, content_type="application/json",
                           headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 400, response.data
    assert response.json["problems"][0]["field"] == "(body)"
    assert db.session.scalar(select(func.count(Synthesis.id))) == 0


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_publication_dates_at_the_ends_of_time_are_refused(client, topics, api_token, when):
    response = client.post("/api/v1/syntheses", json=_synthesis(published_at=when),
                           headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 400, response.data
    assert any(p["field"] == "published_at" and "out of range" in p["message"]
               for p in response.json["problems"])


@pytest.mark.parametrize("provider,settings", [
    ("mailgun", {"MAILGUN_SIGNING_KEY": "k"}),
    ("postmark", {"POSTMARK_WEBHOOK_USER": "u", "POSTMARK_WEBHOOK_PASSWORD": "p"}),
    ("ses", {"SES_TOPIC_ARNS": ["arn:aws:sns:eu-west-1:1:bounces"]}),
])
@pytest.mark.parametrize("body", [DEEP, '{"n": ' + HUGE + "}"])
def test_hooks_refuse_deep_or_huge_json_before_authentication(app, client, provider,
                                                              settings, body):
    from newsletter.delivery.providers import build_providers
    from newsletter.wiring import services

    app.config.update(settings)
    services(app).providers = build_providers(app.config,
                                              sns_fetcher=services(app).sns_fetcher)
    response = client.post(f"/hooks/{provider}", data=body, content_type="application/json")
    assert response.status_code in (400, 401), response.data


def test_an_ses_notification_whose_certificate_cannot_be_fetched_is_a_503(app, client):
    from newsletter.delivery.providers import build_providers
    from newsletter.wiring import services

    class Down:
        def fetch(self, url: str) -> bytes:
            raise OSError("connection refused")

    topic = "arn:aws:sns:eu-west-1:123456789012:bounces"
    app.config["SES_TOPIC_ARNS"] = [topic]
    services(app).providers = build_providers(app.config, sns_fetcher=Down())
    body = {"Type": "Notification", "MessageId": "m-1", "TopicArn": topic,
            "Message": "{}", "Timestamp": "2026-12-01T00:00:00.000Z",
            "SignatureVersion": "1", "Signature": "c2ln",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/cert.pem"}
    response = client.post("/hooks/ses", data=json.dumps(body), content_type="text/plain")
    assert response.status_code == 503
    assert response.json["error"] == "unavailable"


def test_unicode_digits_in_preferences_are_400(app, topics):
    reader = make_reader()
    client = app.test_client()
    client.get(links().manage(reader.id).split("news.example", 1)[1])
    for field, value in (("weekly_day", "²"), ("order-ai-policy-and-safety", "²"),
                         ("weekly_day", HUGE)):
        from tests.support.readers import csrf_from

        response = client.post("/preferences", data={
            "csrf_token": csrf_from(client, "/preferences"), "topic": ["ai-policy-and-safety"],
            "frequency": "weekly", "delivery_time": "07:00", "timezone": "UTC",
            "format": "html", field: value})
        assert response.status_code == 400, (field, response.status_code)


@pytest.mark.parametrize("path", ["/c/{token}/" + "1" + "0" * 30, "/c/{token}/99999999999"])
def test_click_ids_past_64_bits_are_404(client, topics, path):
    assert client.get(path.format(token="abc-0123456789")).status_code == 404


def test_subscriber_ids_past_64_bits_are_404(client, api_token):
    headers = {"Authorization": f"Bearer {api_token}"}
    big = "1" + "0" * 30
    assert client.get(f"/api/v1/subscribers/{big}", headers=headers).status_code == 404
    assert client.delete(f"/api/v1/subscribers/{big}", headers=headers).status_code == 404


def test_one_bad_record_never_stops_an_import(runner, topics, tmp_path):
    good = [_synthesis(external_id=f"good-{i}", slug=None) for i in range(2)]
    lines = [json.dumps(good[0]),
             json.dumps(_synthesis(external_id="old", published_at="0001-01-01T00:00:00+01:00")),
             '{"external_id": "bad", "title": "\\ud800"}',
             DEEP,
             '{"external_id": "big", "n": ' + HUGE + "}",
             json.dumps(good[1])]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = runner.invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert "2 created, 0 updated, 0 unchanged, 4 rejected" in result.output, result.output
    for line in (2, 3, 4, 5):
        assert f"line {line}: rejected" in result.output
    assert db.session.scalar(select(func.count(Synthesis.id))) == 2
