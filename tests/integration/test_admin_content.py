"""Content in the admin area: syntheses (search, edit, publish, unpublish) and topics
(create, rename, describe, reorder, mark premium), each action checked against the role."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from newsletter.accounts.models import AuditEntry
from newsletter.content.models import Synthesis, Topic
from newsletter.db import db
from tests.factories import make_synthesis
from tests.factories_readers import make_reader
from tests.support.admins import csrf, make_admin, sign_in


def _signed_in(client, role="editor"):
    make_admin(f"{role}@news.example", role)
    sign_in(client, f"{role}@news.example")


def _edit_form(client, synthesis_id: int, **changes) -> dict:
    page = client.get(f"/admin/content/{synthesis_id}").get_data(as_text=True)
    version = re.search(r'name="version" value="([^"]*)"', page)[1]
    data = {"csrf_token": csrf(client, f"/admin/content/{synthesis_id}"), "version": version,
            "title": "A new title", "summary": "A new summary.", "context": "", "analysis": "",
            "watch": "", "byline": "Ada", "source_name": "Example News",
            "source_url": "https://news.example/a", "mentions": "OpenAI\nAnthropic",
            "topics": ["ai-policy-and-safety"]}
    data.update(changes)
    return data


def test_search_finds_by_title_and_summary_status_and_topic(client, topics):
    _signed_in(client, "viewer")
    make_synthesis(title="Chips export rules tighten", summary="Policy news.")
    make_synthesis(title="A new open model", summary="About 100% of chips_used.",
                   topics=["models-and-research"], status="draft")
    page = client.get("/admin/content?q=chips").get_data(as_text=True)
    assert "Chips export rules tighten" in page and "A new open model" in page
    assert "2 syntheses match" in page
    # LIKE's wildcards are searched for as themselves.
    page = client.get("/admin/content?q=100%25").get_data(as_text=True)
    assert "A new open model" in page and "Chips export" not in page
    page = client.get("/admin/content?q=s_u").get_data(as_text=True)
    assert "A new open model" in page and "Chips export" not in page
    page = client.get("/admin/content?status=draft").get_data(as_text=True)
    assert "A new open model" in page and "Chips export" not in page
    page = client.get("/admin/content?topic=ai-policy-and-safety").get_data(as_text=True)
    assert "Chips export" in page and "A new open model" not in page
    assert client.get("/admin/content?status=deleted").status_code == 400
    assert client.get("/admin/content?page=²").status_code == 404
    assert "Nothing matches" in client.get("/admin/content?q=zzzz").get_data(as_text=True)


def test_an_editor_edits_a_synthesis_and_its_address_stays(client, topics):
    _signed_in(client)
    synthesis = make_synthesis(title="Old title")
    slug, external_id = synthesis.slug, synthesis.external_id
    response = client.post(f"/admin/content/{synthesis.id}",
                           data=_edit_form(client, synthesis.id))
    assert response.status_code == 303
    db.session.expire_all()
    saved = db.session.get(Synthesis, synthesis.id)
    assert (saved.title, saved.summary, saved.mentions) == (
        "A new title", "A new summary.", ["OpenAI", "Anthropic"])
    assert (saved.slug, saved.external_id) == (slug, external_id)
    assert client.get(f"/syntheses/{slug}").status_code == 200
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "edited synthesis"))
    assert entry.actor == "editor@news.example" and entry.target == f"synthesis {saved.id}"


def test_an_edit_with_problems_names_each_and_saves_nothing(client, topics):
    _signed_in(client)
    synthesis = make_synthesis(title="Old title")
    data = _edit_form(client, synthesis.id, title="", source_url="javascript:alert(1)",
                      topics=["no-such-topic"])
    response = client.post(f"/admin/content/{synthesis.id}", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Not saved" in page and "Title:" in page and "Source url:" in page
    data = _edit_form(client, synthesis.id, topics=["no-such-topic"])
    page = client.post(f"/admin/content/{synthesis.id}", data=data).get_data(as_text=True)
    assert "unknown topic" in page
    db.session.expire_all()
    assert db.session.get(Synthesis, synthesis.id).title == "Old title"


def test_the_second_of_two_editors_is_told_and_overwrites_nothing(app, client, topics):
    _signed_in(client)
    other = app.test_client()
    sign_in(other, "editor@news.example")
    synthesis = make_synthesis(title="Old title")
    first = _edit_form(client, synthesis.id, title="First editor's title")
    second = _edit_form(other, synthesis.id, title="Second editor's title")
    assert client.post(f"/admin/content/{synthesis.id}", data=first).status_code == 303
    late = other.post(f"/admin/content/{synthesis.id}", data=second)
    assert late.status_code == 409
    assert "Someone else saved" in late.get_data(as_text=True)
    assert "Second editor&#39;s title" in late.get_data(as_text=True)  # their text is kept
    db.session.expire_all()
    assert db.session.get(Synthesis, synthesis.id).title == "First editor's title"


def test_unpublish_hides_and_publish_shows_again(client, topics):
    _signed_in(client)
    synthesis = make_synthesis()
    listed = synthesis.listed_at
    token = csrf(client, "/admin/content")
    url = f"/admin/content/{synthesis.id}/status"
    assert client.post(url, data={"status": "draft", "csrf_token": token}).status_code == 303
    assert client.get(f"/syntheses/{synthesis.slug}").status_code == 404
    assert client.post(url, data={"status": "published", "csrf_token": token}
                       ).status_code == 303
    assert client.get(f"/syntheses/{synthesis.slug}").status_code == 200
    db.session.expire_all()
    assert db.session.get(Synthesis, synthesis.id).listed_at == listed  # not listed twice
    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-2:] == ["unpublished synthesis", "published synthesis"]
    assert client.post(url, data={"status": "gone", "csrf_token": token}).status_code == 400


def test_a_draft_published_for_the_first_time_is_listed(client, topics):
    _signed_in(client)
    synthesis = make_synthesis(status="draft")
    assert synthesis.listed_at is None
    client.post(f"/admin/content/{synthesis.id}/status",
                data={"status": "published", "csrf_token": csrf(client, "/admin/content")})
    db.session.expire_all()
    assert db.session.get(Synthesis, synthesis.id).listed_at is not None


def test_a_viewer_reads_content_but_changes_nothing(client, topics):
    _signed_in(client, "viewer")
    synthesis = make_synthesis(title="Old title")
    page = client.get(f"/admin/content/{synthesis.id}").get_data(as_text=True)
    assert "readonly" in page and "Your role reads content" in page
    token = csrf(client, "/admin/content")
    assert client.post(f"/admin/content/{synthesis.id}", data=_edit_form(
        client, synthesis.id)).status_code == 403
    assert client.post(f"/admin/content/{synthesis.id}/status",
                       data={"status": "draft", "csrf_token": token}).status_code == 403
    for data in ({"name": "New topic", "csrf_token": token},):
        assert client.post("/admin/topics", data=data).status_code == 403
    topic = topics[0]
    assert client.post(f"/admin/topics/{topic.id}", data={
        "name": "Renamed", "csrf_token": token}).status_code == 403
    assert client.post(f"/admin/topics/{topic.id}", data={
        "move": "down", "csrf_token": token}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Synthesis, synthesis.id).status == "published"
    assert db.session.get(Topic, topic.id).name == "AI policy and safety"
    assert db.session.scalar(select(func.count(Topic.id))) == 3


def test_topics_are_an_owners_matter(client, topics):
    _signed_in(client, "editor")
    assert client.get("/admin/topics").status_code == 200
    assert client.post("/admin/topics", data={
        "name": "New topic", "csrf_token": csrf(client, "/admin/topics")}).status_code == 403
    assert db.session.scalar(select(func.count(Topic.id))) == 3


def test_an_owner_creates_a_topic_with_a_slug_that_stays(client, topics):
    _signed_in(client, "owner")
    token = csrf(client, "/admin/topics")
    response = client.post("/admin/topics", data={
        "name": "  Chips &   compute ", "description": "Hardware.", "csrf_token": token})
    assert response.status_code == 303
    topic = db.session.scalar(select(Topic).where(Topic.name == "Chips & compute"))
    assert topic.slug == "chips-compute" and topic.position == 4 and not topic.premium
    client.post(f"/admin/topics/{topic.id}", data={
        "name": "Compute", "description": "Chips and clouds.", "premium": "on",
        "csrf_token": token})
    db.session.expire_all()
    topic = db.session.get(Topic, topic.id)
    assert (topic.name, topic.slug, topic.premium) == ("Compute", "chips-compute", True)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "changed topic"))
    assert set(entry.detail["fields"]) == {"name", "description", "premium"}
    # A name with no ASCII in it still gets a usable address.
    client.post("/admin/topics", data={"name": "人工智能", "csrf_token": token})
    assert db.session.scalar(select(Topic.slug).where(Topic.name == "人工智能")) == "topic"


def test_bad_topic_names_are_refused_with_the_reason(client, topics):
    _signed_in(client, "owner")
    token = csrf(client, "/admin/topics")
    for name, reason in (("", "needs a name"), ("x" * 121, "At most 120"),
                         ("ai POLICY and safety", "already"), ("a\x00b", "Control")):
        response = client.post("/admin/topics", data={"name": name, "csrf_token": token})
        assert response.status_code == 422, name
        assert reason in response.get_data(as_text=True), name
    response = client.post("/admin/topics", data={"name": "Fine", "description": "d" * 1001,
                                                  "csrf_token": token})
    assert response.status_code == 422 and "At most 1000" in response.get_data(as_text=True)
    renamed = client.post(f"/admin/topics/{topics[0].id}", data={
        "name": "Models and research", "csrf_token": token})
    assert renamed.status_code == 422
    assert db.session.scalar(select(func.count(Topic.id))) == 3
    assert client.post("/admin/topics/99999999999999999999", data={
        "name": "x", "csrf_token": token}).status_code == 404


def test_reordering_moves_one_place_and_keeps_positions_distinct(client, topics):
    _signed_in(client, "owner")
    token = csrf(client, "/admin/topics")
    last = topics[2]
    client.post(f"/admin/topics/{last.id}", data={"move": "up", "csrf_token": token})
    db.session.expire_all()
    order = list(db.session.scalars(select(Topic.slug).order_by(Topic.position)))
    assert order == ["ai-policy-and-safety", "analyst-briefings", "models-and-research"]
    client.post(f"/admin/topics/{topics[0].id}", data={"move": "up", "csrf_token": token})
    positions = list(db.session.scalars(select(Topic.position).order_by(Topic.position)))
    assert positions == [1, 2, 3]
    page = client.get("/subscribe").get_data(as_text=True)
    assert page.index("AI policy") < page.index("Models and research")
    assert client.post(f"/admin/topics/{last.id}", data={
        "move": "sideways", "csrf_token": token}).status_code == 400


def test_marking_a_topic_premium_says_how_many_free_readers_follow_it(client, topics):
    _signed_in(client, "owner")
    make_reader("ada@example.com", topics=("models-and-research",))
    token = csrf(client, "/admin/topics")
    page = client.post(f"/admin/topics/{topics[1].id}", data={
        "name": "Models and research", "premium": "on", "csrf_token": token},
        follow_redirects=True).get_data(as_text=True)
    assert "its 1 free reader(s) keep it" in page


def test_content_forms_need_their_csrf_token_and_head_changes_nothing(client, topics):
    _signed_in(client, "owner")
    synthesis = make_synthesis()
    assert client.post(f"/admin/content/{synthesis.id}/status",
                       data={"status": "draft"}).status_code == 400
    assert client.post("/admin/topics", data={"name": "X"}).status_code == 400
    assert client.head(f"/admin/content/{synthesis.id}").status_code == 200
    assert client.head("/admin/topics").status_code == 200
    db.session.expire_all()
    assert db.session.get(Synthesis, synthesis.id).status == "published"
    assert db.session.scalar(select(func.count(Topic.id))) == 3
