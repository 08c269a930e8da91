"""The public archive: /editions/<slug>, /editions and /topics/<slug>/editions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from newsletter.db import db
from newsletter.editions import service as editions
from newsletter.editions.models import Edition
from newsletter.editions.specials import create_special
from tests.factories import make_synthesis
from tests.support.editions import audience, send, special_edition
from tests.support.readers import outbox_messages

T0 = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)


def went_out(edition: Edition, *, status: str = "sent", at: datetime = T0) -> Edition:
    """Mark an edition as sent (or any status) without sending it."""
    db.session.execute(update(Edition).where(Edition.id == edition.id)
                       .values(status=status, started_at=at))
    db.session.commit()
    db.session.refresh(edition)
    return edition


def plain(subject: str, **kwargs) -> Edition:
    return editions.create_edition(subject=subject, body_text="x", body_html="<p>x</p>",
                                   **kwargs)


def page(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.get_data(as_text=True)


def test_web_version_of_a_sent_edition_has_its_syntheses_and_no_personal_link(
        app, client, topics):
    readers = audience(3)
    synthesis = make_synthesis(title="Regulator publishes rules", summary="The summary.",
                               analysis="The analyst's take.", watch="Watch the courts.",
                               source_name="Example Wire",
                               source_url="https://wire.example/rules")
    edition = editions.create_edition(
        subject="Rules day", preheader="What the rules say",
        sections=[{"title": "Policy", "synthesis_ids": [synthesis.id]}])
    assert send(app, edition.id).sent == 3
    db.session.refresh(edition)
    assert edition.status == "sent"

    html = page(client, f"/editions/{edition.slug}")
    assert "<h1 id=\"title\">Rules day</h1>" in html and "What the rules say" in html
    assert f'<a href="/syntheses/{synthesis.slug}">Regulator publishes rules</a>' in html
    for part in ("The summary.", "Analyst take", "The analyst&#39;s take.", "What to watch",
                 "Watch the courts.",
                 '<a href="https://wire.example/rules" rel="noopener noreferrer">Example Wire'):
        assert part in html, part

    messages = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    assert len(messages) == len(readers)
    personal: set[str] = set()
    for message in messages:
        personal.add(message["X-Newsletter-Token"])
        personal.add(message["List-Unsubscribe"].strip("<> "))
        for part in (message.get_body(("html",)), message.get_body(("plain",))):
            personal.update(re.findall(r"https://news\.example/(?:u|c|o|manage)/[^\s\"<>]+",
                                       part.get_content()))
    assert len(personal) > 3 * len(readers)
    for value in personal:
        assert value not in html, value
    for path in ("/u/", "/c/", "/o/", "/manage/", "/preferences?", "token"):
        assert path not in html, path
    for reader in readers:
        assert reader.email not in html


def test_web_version_of_a_markdown_edition_shows_the_sanitised_body_without_inline_styles(
        app, client, topics):
    edition = went_out(create_special(
        "Special report", "Intro.\n\n## First part\n\nText <script>alert(1)</script> with a "
        "[link](https://example.com/a).\n\n## Second part\n\n- one"))
    html = page(client, f"/editions/{edition.slug}")
    assert '<div class="edition__body">' in html
    assert "<h2>First part</h2>" in html and "<h2>Second part</h2>" in html
    assert '<a href="https://example.com/a" rel="noopener">link</a>' in html
    body = html.split('<div class="edition__body">', 1)[1].split("</div>", 1)[0]
    assert "style=" not in body and "<script" not in body and "alert" not in body


def test_sending_editions_are_public_too(client, topics):
    edition = went_out(plain("Going out now"), status="sending")
    assert "Going out now" in page(client, f"/editions/{edition.slug}")


@pytest.mark.parametrize("status", ["draft", "scheduled", "cancelled", "failed", "paused"])
def test_editions_that_did_not_go_out_are_not_found(client, topics, status):
    edition = plain("Not public")
    if status != "draft":
        went_out(edition, status=status)
    html = page(client, f"/editions/{edition.slug}", 404)
    assert "Not public" not in html
    assert "Not public" not in page(client, "/editions")


def test_unknown_edition_is_not_found(client, topics):
    page(client, "/editions/2026-01-01-nothing-here", 404)


@pytest.mark.parametrize("kwargs", [
    {"tier": "paid"},
    {"topics": ["analyst-briefings"]},
    {"sections_topic": "analyst-briefings"},
])
def test_premium_editions_show_only_their_subject_to_visitors(client, topics, kwargs):
    synthesis = make_synthesis(title="Secret briefing story", summary="Premium summary.")
    section = {"title": "Briefing", "synthesis_ids": [synthesis.id]}
    if "sections_topic" in kwargs:
        section["topic"] = kwargs.pop("sections_topic")
    edition = went_out(editions.create_edition(
        subject="Briefing for members", sections=[section],
        body_html="<p>Premium body text</p>", body_text="Premium body text", **kwargs))
    html = page(client, f"/editions/{edition.slug}", 200)
    assert "Briefing for members" in html and "This edition is for paying readers" in html
    for secret in ("Premium body text", "Secret briefing story", "Premium summary."):
        assert secret not in html
    archive = page(client, "/editions")
    assert "Briefing for members" in archive and "Premium" in archive


def test_premium_topic_next_to_a_free_one_is_not_premium(client, topics):
    edition = went_out(plain("For both", topics=["analyst-briefings", "ai-policy-and-safety"]))
    page(client, f"/editions/{edition.slug}", 200)


def test_archive_lists_newest_first_and_paginates(client, topics):
    for i in range(21):
        went_out(plain(f"Edition number {i:02d}"), at=T0 + timedelta(days=i))
    plain("A draft, never listed")
    first = page(client, "/editions")
    assert first.count('class="card edition-entry"') == 20
    assert first.index("Edition number 20") < first.index("Edition number 19")
    assert "Edition number 00" not in first and "A draft" not in first
    assert '<a href="?page=2" rel="next">Older</a>' in first
    second = page(client, "/editions?page=2")
    assert second.count('class="card edition-entry"') == 1 and "Edition number 00" in second
    assert '<a href="?page=1" rel="prev">Newer</a>' in second and 'rel="next"' not in second
    for bad in ("3", "0", "-1", "abc", "1.5", "99999"):
        page(client, f"/editions?page={bad}", 404)


def test_empty_archive_says_so(client, topics):
    assert "No edition has been sent yet." in page(client, "/editions")


def test_topic_archive_has_the_topics_editions_and_those_for_everyone(client, topics):
    story = make_synthesis(title="Research story", topics=["models-and-research"])
    went_out(plain("Policy only", topics=["ai-policy-and-safety"]), at=T0)
    went_out(plain("Research only", topics=["models-and-research"]), at=T0 + timedelta(hours=1))
    went_out(plain("For everyone"), at=T0 + timedelta(hours=2))
    went_out(editions.create_edition(
        subject="Digest with a research section", topics=["ai-policy-and-safety"],
        sections=[{"title": "Research", "topic": "models-and-research",
                   "synthesis_ids": [story.id]}]), at=T0 + timedelta(hours=3))
    plain("Research draft", topics=["models-and-research"])

    research = page(client, "/topics/models-and-research/editions")
    assert "Editions in Models and research" in research
    for subject in ("Research only", "For everyone", "Digest with a research section"):
        assert subject in research, subject
    assert "Policy only" not in research and "Research draft" not in research
    assert research.index("Digest with a research section") < research.index("Research only")

    policy = page(client, "/topics/ai-policy-and-safety/editions")
    for subject in ("Policy only", "For everyone", "Digest with a research section"):
        assert subject in policy, subject
    assert "Research only" not in policy

    page(client, "/topics/no-such-topic/editions", 404)
    page(client, "/topics/models-and-research/editions?page=2", 404)
    topic_page = page(client, "/topics/models-and-research")
    assert 'href="/topics/models-and-research/editions"' in topic_page


def test_topic_archive_paginates(client, topics):
    for i in range(22):
        went_out(plain(f"Policy edition {i:02d}", topics=["ai-policy-and-safety"]),
                 at=T0 + timedelta(days=i))
    went_out(plain("Elsewhere", topics=["models-and-research"]))
    first = page(client, "/topics/ai-policy-and-safety/editions")
    assert first.count('class="card edition-entry"') == 20 and 'rel="next"' in first
    second = page(client, "/topics/ai-policy-and-safety/editions?page=2")
    assert second.count('class="card edition-entry"') == 2
    assert "Policy edition 00" in second and "Elsewhere" not in second


def test_archive_entries_link_to_the_web_version(client, topics):
    edition = went_out(special_edition("Linked edition"))
    archive = page(client, "/editions")
    assert f'<a href="/editions/{edition.slug}">Linked edition</a>' in archive


def test_archive_lists_never_show_a_premium_editions_text(client, topics):
    went_out(create_special("Paid briefing", "The secret first paragraph.\n\n## More",
                            tier="paid"))
    for url in ("/editions", "/topics/analyst-briefings/editions"):
        listing = page(client, url)
        assert "Paid briefing" in listing and "secret first paragraph" not in listing


@pytest.mark.parametrize("bad", ["²", "0", "-1", "x", "99999"])
def test_a_bad_page_number_is_not_found(client, topics, bad):
    page(client, f"/editions?page={bad}", status=404)


@pytest.mark.parametrize("status", ["draft", "scheduled", "cancelled", "failed", "paused"])
def test_the_domain_archive_lists_only_editions_that_went_out(app, topics, status):
    from newsletter.editions import archive

    sent = went_out(plain("Sent one"), at=T0)
    sending = went_out(plain("Sending one"), status="sending", at=T0 + timedelta(hours=1))
    hidden = plain("Hidden one")
    if status != "draft":
        went_out(hidden, status=status, at=T0 + timedelta(hours=2))
    listed = archive.public_editions()
    assert [e.edition.id for e in listed.entries] == [sending.id, sent.id]
    assert not listed.has_next
    assert archive.public_edition(hidden.slug) is None
    assert archive.public_edition(sent.slug).edition.id == sent.id
    topic = next(t for t in topics if t.slug == "models-and-research")
    assert hidden.id not in {e.edition.id for e in archive.topic_editions(topic).entries}


def test_the_domain_archive_pages_and_marks_premium_entries(app, topics):
    from newsletter.editions import archive

    for i in range(3):
        went_out(plain(f"Edition {i}"), at=T0 + timedelta(days=i))
    paid = went_out(plain("Paid", tier="paid"), at=T0 + timedelta(days=9))
    first = archive.public_editions(1, page_size=2)
    assert [e.edition.subject for e in first.entries] == ["Paid", "Edition 2"]
    assert first.has_next and [e.premium for e in first.entries] == [True, False]
    assert first.entries[0].date == paid.started_at
    last = archive.public_editions(2, page_size=2)
    assert [e.edition.subject for e in last.entries] == ["Edition 1", "Edition 0"]
    assert not last.has_next
    assert archive.public_editions(3, page_size=2).entries == []
