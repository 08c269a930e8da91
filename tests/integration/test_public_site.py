"""The public site as a reader sees it: pages, escaping, feeds, health."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

from newsletter.db import utcnow
from tests.factories import make_synthesis, sample_payload

ATOM = "{http://www.w3.org/2005/Atom}"


def test_sample_synthesis_posted_through_the_api_renders_every_part(client, topics, auth):
    payload = sample_payload()
    slug = client.post("/api/v1/syntheses", json=payload, headers=auth).json["synthesis"]["slug"]
    page = client.get(f"/syntheses/{slug}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<h1 id=\"title\">I Met With China&#39;s Top AI Experts. They&#39;re Freaking Out, " \
           "Too</h1>" in html
    assert "mounting anxiety about an accelerating US-China competition" in html
    assert "Analyst take" in html
    assert "ambient pressure" in html                      # analyst take
    assert "Modelwire has no prior coverage" in html       # context
    assert "What to watch" in html
    assert "formal bilateral communication channel" in html
    for mention in ("China", "United States", "WIRED"):
        assert f"<li>{mention}</li>" in html
    assert "Modelwire Editorial" in html
    assert ('The full content lives on <a href="https://www.wired.com/story/'
            'china-ai-experts-freaking-out/" rel="noopener noreferrer">wired.com</a>') in html
    assert 'href="/subscribe' in html
    assert '<time datetime="2026-11-26T09:30:00+00:00">November 26, 2026</time>' in html


def test_user_text_is_escaped_everywhere(client, topics):
    synthesis = make_synthesis(title="<script>alert('t')</script>",
                               summary="Models with < 10B parameters & <b>bold</b>",
                               mentions=["<img src=x onerror=alert(1)>"])
    html = client.get(f"/syntheses/{synthesis.slug}").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in html
    assert "Models with &lt; 10B parameters &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<img src=x" not in html
    home = client.get("/").get_data(as_text=True)
    assert "<script>alert" not in home


def test_home_lists_latest_first_with_a_subscribe_button(client, topics):
    make_synthesis(title="Older story", published_at=(utcnow() - timedelta(days=2)).isoformat())
    make_synthesis(title="Newer story", published_at=(utcnow() - timedelta(hours=1)).isoformat())
    make_synthesis(title="Draft story", status="draft")
    make_synthesis(title="Future story",
                   published_at=(utcnow() + timedelta(days=1)).isoformat())
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.index("Newer story") < html.index("Older story")
    assert "Draft story" not in html and "Future story" not in html
    assert 'class="button button--primary button--large" href="/subscribe"' in html
    assert '<main id="main"' in html and 'role="banner"' in html and 'role="contentinfo"' in html
    assert 'aria-label="Topics"' in html


def test_drafts_and_scheduled_syntheses_are_not_public(client, topics):
    draft = make_synthesis(status="draft")
    future = make_synthesis(published_at=(utcnow() + timedelta(days=1)).isoformat())
    assert client.get(f"/syntheses/{draft.slug}").status_code == 404
    assert client.get(f"/syntheses/{future.slug}").status_code == 404


def test_topic_page_shows_only_its_syntheses(client, topics):
    make_synthesis(title="Policy piece", topics=["ai-policy-and-safety"])
    make_synthesis(title="Research piece", topics=["models-and-research"])
    html = client.get("/topics/models-and-research").get_data(as_text=True)
    assert "Research piece" in html and "Policy piece" not in html
    assert 'aria-current="page"' in html
    assert client.get("/topics/none").status_code == 404
    listing = client.get("/topics/").get_data(as_text=True)
    assert "AI policy and safety" in listing and "1 synthesis" in listing


def test_pagination_and_bad_page_numbers(client, topics):
    for n in range(21):
        make_synthesis(title=f"Item {n:02d}")
    first = client.get("/").get_data(as_text=True)
    assert 'rel="next"' in first
    second = client.get("/?page=2").get_data(as_text=True)
    assert second.count('class="card"') == 1
    for bad in ("0", "-1", "x", "99999999"):
        response = client.get(f"/?page={bad}")
        assert response.status_code == 404  # was 400; one rule with the archive: no such page
        assert "page must be a whole number" in response.get_data(as_text=True)


def test_unknown_page_gets_a_readable_404(client, topics):
    response = client.get("/syntheses/nothing-here")
    assert response.status_code == 404
    assert "no published synthesis" in response.get_data(as_text=True)


def _entries(xml: bytes):
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    return root, root.findall(f"{ATOM}entry")


def test_site_and_topic_atom_feeds(client, topics):
    make_synthesis(title="Policy & <safety>", topics=["ai-policy-and-safety"],
                   published_at=(utcnow() - timedelta(hours=3)).isoformat())
    make_synthesis(title="Research piece", topics=["models-and-research"],
                   published_at=(utcnow() - timedelta(hours=1)).isoformat())
    response = client.get("/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    root, entries = _entries(response.data)
    assert root.find(f"{ATOM}title").text == "Modelwire"
    assert [e.find(f"{ATOM}title").text for e in entries] == ["Research piece",
                                                              "Policy & <safety>"]
    link = entries[1].find(f"{ATOM}link").get("href")
    assert link.startswith("https://news.example/syntheses/policy-safety")

    _, topic_entries = _entries(client.get("/topics/models-and-research/feed.atom").data)
    assert [e.find(f"{ATOM}title").text for e in topic_entries] == ["Research piece"]
    assert client.get("/topics/nope/feed.atom").status_code == 404


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


def test_healthz_says_when_the_database_does_not_answer(app_config, tmp_path):
    """A load balancer takes a process out when its database is gone (503), and the body
    says why without leaking the URL."""
    from newsletter import create_app

    broken = create_app({**app_config,
                         "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x",
                         "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"connect_timeout": 2}}})
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "error"
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_security_headers(client):
    response = client.get("/healthz")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_a_page_number_that_is_not_one_is_not_found_on_home_and_topic_pages(client, topics):
    for url in ("/", "/topics/models-and-research"):
        for bad in ("²", "1.5", "10001", "9" * 5000):
            response = client.get(f"{url}?page={bad}")
            assert response.status_code == 404, (url, bad)
            assert "no such page" in response.get_data(as_text=True)


def test_latest_syntheses_page_says_whether_there_is_a_next_page(app, topics):
    from newsletter.content import service as content

    for n in range(3):
        make_synthesis(title=f"Item {n}",
                       published_at=(utcnow() - timedelta(hours=10 - n)).isoformat())
    first = content.latest_syntheses_page(1, page_size=2)
    assert [s.title for s in first.syntheses] == ["Item 2", "Item 1"] and first.has_next
    second = content.latest_syntheses_page(2, page_size=2)
    assert [s.title for s in second.syntheses] == ["Item 0"] and not second.has_next
    assert content.latest_syntheses_page(3, page_size=2).syntheses == []
