"""POST/GET /api/v1/syntheses: auth, validation, upsert, limits."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from newsletter.content.models import Synthesis
from newsletter.db import db
from tests.factories import sample_payload, synthesis_payload


def count() -> int:
    return db.session.scalar(select(func.count(Synthesis.id)))


def post(client, payload, headers, **kwargs):
    return client.post("/api/v1/syntheses", data=json.dumps(payload),
                       content_type="application/json", headers=headers, **kwargs)


def test_sample_synthesis_is_created_then_unchanged_then_updated(client, topics, auth):
    payload = sample_payload()
    first = post(client, payload, auth)
    assert first.status_code == 201, first.json
    assert first.json["outcome"] == "created"
    body = first.json["synthesis"]
    assert body["title"] == payload["title"]
    assert body["topics"] == ["ai-policy-and-safety"]
    assert body["url"] == f"https://news.example/syntheses/{body['slug']}"

    again = post(client, payload, auth)
    assert again.status_code == 200
    assert again.json["outcome"] == "unchanged"
    assert count() == 1

    changed = dict(payload, watch="Watch whether a hotline is set up.")
    updated = post(client, changed, auth)
    assert updated.status_code == 200
    assert updated.json["outcome"] == "updated"
    assert updated.json["synthesis"]["slug"] == body["slug"], "a slug never changes"
    assert count() == 1
    assert db.session.scalar(select(Synthesis.watch)) == "Watch whether a hotline is set up."


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer ", "bearer"])
def test_missing_or_wrong_token_gets_a_bare_401_and_changes_nothing(client, topics, header):
    headers = {"Authorization": header} if header is not None else {}
    response = post(client, synthesis_payload(), headers)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized" and set(response.json) == {"error", "message"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert count() == 0


def test_revoked_token_is_refused(client, topics, api_token, runner):
    result = runner.invoke(args=["api-token", "revoke", "tests"])
    assert result.exit_code == 0, result.output
    response = post(client, synthesis_payload(), {"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 401


def test_every_problem_is_listed_in_one_400(client, topics, auth):
    payload = {
        "external_id": 42,
        "title": "",
        "summary": "x" * 5001,
        "source_name": "Example",
        "source_url": "javascript:alert(1)",
        "topics": ["ai-policy-and-safety", "no-such-topic"],
        "mentions": "China",
        "published_at": "yesterday",
        "status": "live",
        "colour": "red",
    }
    response = post(client, payload, auth)
    assert response.status_code == 400
    problems = {(p["field"], p["message"]) for p in response.json["problems"]}
    fields = {field for field, _ in problems}
    assert {"external_id", "title", "summary", "source_url", "mentions", "published_at",
            "status", "colour"} <= fields
    assert ("title", "is required") in problems
    assert ("source_url", "must be an http:// or https:// URL") in problems
    assert ("summary", "is 5001 characters long; the limit is 5000") in problems
    assert count() == 0


def test_unknown_topic_is_rejected_by_name(client, topics, auth):
    response = post(client, synthesis_payload(topics=["AI policy and safety", "Crypto"]), auth)
    assert response.status_code == 400
    assert response.json["problems"] == [
        {"field": "topics[1]", "message": "unknown topic 'Crypto'"}
    ]
    assert count() == 0


@pytest.mark.parametrize("url", [
    "javascript:alert(document.cookie)", "JavaScript:alert(1)", "data:text/html,hi",
    "ftp://example.com/a", "//example.com/a", "https://", "https://user:pw@example.com/",
    "https://exa mple.com/", "vbscript:msgbox",
])
def test_unsafe_source_urls_are_rejected(client, topics, auth, url):
    response = post(client, synthesis_payload(source_url=url), auth)
    assert response.status_code == 400
    assert [p["field"] for p in response.json["problems"]] == ["source_url"]
    assert count() == 0


@pytest.mark.parametrize("field", ["title", "external_id", "source_name", "byline"])
@pytest.mark.parametrize("value", ["line\r\nBcc: victim@example.com", "a\nb", "a\rb"])
def test_line_breaks_in_single_line_fields_are_rejected(client, topics, auth, field, value):
    response = post(client, synthesis_payload(**{field: value}), auth)
    assert response.status_code == 400
    assert {"field": field, "message": "must be a single line (no CR or LF)"} in \
        response.json["problems"]
    assert count() == 0


def test_malformed_json_gets_400_with_position(client, topics, auth):
    response = client.post("/api/v1/syntheses", data='{"title": "x",', headers=auth,
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json["problems"][0]["field"] == "(body)"
    assert "not valid JSON" in response.json["problems"][0]["message"]
    assert count() == 0


@pytest.mark.parametrize("body", ["[]", '"text"', "null", "3"])
def test_body_must_be_an_object(client, topics, auth, body):
    response = client.post("/api/v1/syntheses", data=body, headers=auth,
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json["problems"][0]["message"].startswith("must be a JSON object")


def test_non_json_content_type_gets_415(client, topics, auth):
    response = client.post("/api/v1/syntheses", data="title=x", headers=auth,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert count() == 0


def test_body_over_one_megabyte_gets_413(client, topics, auth):
    payload = synthesis_payload(summary="x" * (1024 * 1024))
    response = post(client, payload, auth)
    assert response.status_code == 413
    assert response.json["error"] == "request_entity_too_large"
    assert count() == 0


def test_naive_published_at_is_rejected(client, topics, auth):
    response = post(client, synthesis_payload(published_at="2026-11-26T09:30:00"), auth)
    assert response.status_code == 400
    assert response.json["problems"][0]["field"] == "published_at"
    assert "timezone" in response.json["problems"][0]["message"]


def test_slug_of_another_synthesis_is_refused(client, topics, auth):
    assert post(client, synthesis_payload(slug="taken"), auth).status_code == 201
    response = post(client, synthesis_payload(slug="taken"), auth)
    assert response.status_code == 400
    assert response.json["problems"] == [
        {"field": "slug", "message": "'taken' belongs to another synthesis"}]
    assert count() == 1


def test_same_title_gets_distinct_slugs(client, topics, auth):
    a = post(client, synthesis_payload(title="Chips & Policy: Zürich"), auth).json
    b = post(client, synthesis_payload(title="Chips & Policy: Zürich"), auth).json
    assert a["synthesis"]["slug"] == "chips-policy-zurich"
    assert b["synthesis"]["slug"] == "chips-policy-zurich-2"


def test_list_filters_by_topic_and_since(client, topics, auth):
    post(client, synthesis_payload(external_id="old", published_at="2026-11-01T00:00:00Z"), auth)
    post(client, synthesis_payload(external_id="new", published_at="2026-11-20T00:00:00Z"), auth)
    post(client, synthesis_payload(external_id="research", topics=["models-and-research"],
                                   published_at="2026-11-21T00:00:00Z"), auth)
    post(client, synthesis_payload(external_id="draft", status="draft",
                                   published_at="2026-11-22T00:00:00Z"), auth)

    response = client.get("/api/v1/syntheses?topic=ai-policy-and-safety"
                          "&since=2026-11-10T00:00:00Z", headers=auth)
    assert response.status_code == 200
    assert [item["external_id"] for item in response.json["items"]] == ["new"]

    everything = client.get("/api/v1/syntheses?status=all", headers=auth).json["items"]
    assert [item["external_id"] for item in everything] == ["old", "new", "research", "draft"]

    page = client.get("/api/v1/syntheses?limit=2", headers=auth).json
    assert [item["external_id"] for item in page["items"]] == ["old", "new"]
    assert page["next_offset"] == 2


@pytest.mark.parametrize("query,field", [
    ("topic=nope", "topic"), ("since=yesterday", "since"), ("since=2026-11-10T00:00:00", "since"),
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"), ("offset=-1", "offset"),
    ("status=deleted", "status"),
])
def test_list_rejects_bad_query_parameters(client, topics, auth, query, field):
    response = client.get(f"/api/v1/syntheses?{query}", headers=auth)
    assert response.status_code == 400
    assert [p["field"] for p in response.json["problems"]] == [field]


def test_list_needs_a_token(client, topics):
    assert client.get("/api/v1/syntheses").status_code == 401


def test_the_api_blueprint_has_every_route_under_api_v1(app):
    """The routes are registered by the blueprint's package, not by importing a module."""
    rules = {(rule.endpoint, rule.rule, method) for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("api.")
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert rules == {
        ("api.create_synthesis", "/api/v1/syntheses", "POST"),
        ("api.list_syntheses", "/api/v1/syntheses", "GET"),
        ("api.create_subscriber", "/api/v1/subscribers", "POST"),
        ("api.get_subscriber", "/api/v1/subscribers/<int:reader_id>", "GET"),
        ("api.delete_subscriber", "/api/v1/subscribers/<int:reader_id>", "DELETE"),
        ("api.create_edition", "/api/v1/editions", "POST"),
        ("api.get_edition", "/api/v1/editions/<int:edition_id>", "GET"),
    }
