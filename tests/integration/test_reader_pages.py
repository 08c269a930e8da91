"""The public site as a reader meets it: the last page of a list, the favicon, feeds for
people, one brand for site and emails, the header of a signed-in reader, sharing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from newsletter.db import utcnow
from newsletter.mail.brand import BRAND
from tests.factories import make_synthesis
from tests.factories_readers import links, make_reader

pytestmark = pytest.mark.usefixtures("topics")


def test_past_the_last_page_says_so_not_nothing_published(client):
    for i in range(20):
        make_synthesis(title=f"Story {i}", published_at=(utcnow() - timedelta(hours=i + 1))
                       .isoformat())
    first = client.get("/").get_data(as_text=True)
    assert "Story 0" in first and 'rel="next"' not in first  # exactly one page
    past = client.get("/?page=2")
    assert past.status_code == 404
    html = past.get_data(as_text=True)
    assert "There is no page 2" in html and "Nothing has been published yet" not in html
    assert client.get("/topics/ai-policy-and-safety?page=3").status_code == 404
    make_synthesis(title="One more", published_at=(utcnow() - timedelta(hours=30)).isoformat())
    assert "One more" in client.get("/?page=2").get_data(as_text=True)


def test_an_empty_site_says_nothing_is_published_yet(client):
    assert "Nothing has been published yet." in client.get("/").get_data(as_text=True)


def test_the_favicon_is_the_brands_mark(client):
    answer = client.get("/favicon.ico")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/favicon.svg")
    icon = client.get("/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert f'fill="{BRAND["ink"]}"'.encode() in icon.data
    assert f'>{BRAND["mark"]}</text>'.encode() in icon.data
    assert '<link rel="icon" href="/favicon.svg" type="image/svg+xml">' in client.get(
        "/").get_data(as_text=True)


def test_feeds_have_a_page_for_people(client):
    html = client.get("/feeds").get_data(as_text=True)
    assert "Follow Modelwire in a feed reader" in html
    assert "<code>https://news.example/feed.atom</code>" in html
    assert "<code>https://news.example/topics/models-and-research/feed.atom</code>" in html
    home = client.get("/").get_data(as_text=True)
    assert '<a href="/feeds">Feeds</a>' in home
    assert 'type="application/atom+xml"' in home  # feed readers still find the feed


def test_site_and_emails_take_their_colours_from_one_place(client):
    css = client.get("/brand.css")
    assert css.mimetype == "text/css"
    text = css.get_data(as_text=True)
    assert f"--accent: {BRAND['accent']};" in text and f"--serif: {BRAND['serif']};" in text
    site = client.get("/static/site.css").get_data(as_text=True)
    assert ":root {" not in site  # no second copy of the palette
    assert '<link rel="stylesheet" href="/brand.css">' in client.get("/").get_data(as_text=True)


def test_a_signed_in_reader_sees_their_preferences_not_subscribe(client):
    assert ">Subscribe</a>" in client.get("/").get_data(as_text=True)
    reader = make_reader()
    client.get(links().manage(reader.id).split("news.example", 1)[1])
    header = re.search(r'<header class="masthead".*?</header>',
                       client.get("/").get_data(as_text=True), re.S).group(0)
    assert ">Your preferences</a>" in header and ">Subscribe</a>" not in header


def test_a_synthesis_page_can_be_shared(client):
    story = make_synthesis(title="Chips & rules: what changed", summary="A short summary.")
    html = client.get(f"/syntheses/{story.slug}").get_data(as_text=True)
    url = f"https://news.example/syntheses/{story.slug}"
    assert f'<link rel="canonical" href="{url}">' in html
    assert f'<meta property="og:url" content="{url}">' in html
    assert '<meta property="og:title" content="Chips &amp; rules: what changed">' in html
    assert '<meta property="og:description" content="A short summary.">' in html
    assert '<meta property="og:type" content="article">' in html
    assert '<meta name="twitter:card" content="summary">' in html
    assert 'content="https://news.example/static/share-card.png"' in html
    encoded = "https%3A//news.example/syntheses/" + story.slug
    assert f"https://www.linkedin.com/sharing/share-offsite/?url={encoded}" in html
    assert "mailto:?subject=Chips%20%26%20rules%3A%20what%20changed" in html
    assert client.get("/static/share-card.png").mimetype == "image/png"


def test_list_mail_invites_whoever_it_was_forwarded_to_and_account_mail_does_not(app, client):
    from pathlib import Path

    from tests.support.editions import send, special_edition
    from tests.support.readers import csrf_from, outbox_messages, text_of

    make_reader("reader@example.com", topics=("ai-policy-and-safety",))
    send(app, special_edition().id)
    client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": "new@example.com",
                                    "topic": ["ai-policy-and-safety"]})
    messages = {m["To"]: m for m in outbox_messages(Path(app.config["OUTBOX_DIR"]))}
    edition, confirmation = messages["reader@example.com"], messages["new@example.com"]
    html = edition.get_body(("html",)).get_content()
    # (Its link is tracked like the others: /c/… leads to /subscribe.)
    assert re.search(r'Forwarded this email\? <a href="https://news\.example/c/[^"]+"[^>]*>'
                     r"Subscribe to Modelwire</a>", html)
    assert "Forwarded this email? Subscribe to get your own:\nhttps://news.example/subscribe" \
        in text_of(edition).replace("\r\n", "\n")
    assert "Forwarded this email?" not in confirmation.get_body(("html",)).get_content()
    assert "Forwarded this email?" not in text_of(confirmation)
