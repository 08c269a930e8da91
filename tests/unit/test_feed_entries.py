"""Turning one feed entry into synthesis fields: text, identity, date."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import feedparser
import pytest

from newsletter.content.feed_entries import (
    entry_guid,
    entry_payload,
    entry_published_at,
    entry_summary,
    external_id_for,
    html_to_text,
)
from newsletter.content.models import Feed

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def rss_entry(item: str):
    xml = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
           f"<link>https://t.example/</link><description>d</description>"
           f"<item>{item}</item></channel></rss>")
    parsed = feedparser.parse(io.BytesIO(xml.encode()))
    assert parsed.version == "rss20"
    return parsed.entries[0]


@pytest.mark.parametrize(("html", "text"), [
    ("<p>One.</p><p>Two.</p>", "One.\n\nTwo."),
    ("Line one<br>line two<br/>line three", "Line one\nline two\nline three"),
    ("<ul><li>a</li><li>b</li></ul>", "- a\n- b"),
    ("<p>  lots   of\n\n  space </p>", "lots of space"),
    ("Fish &amp; chips &lt;3 &#8212; caf&eacute;", "Fish & chips <3 — café"),
    ("<p>kept</p><script>alert('x')</script><style>p{}</style><p>too</p>", "kept\n\ntoo"),
    ("<p>a</p><noscript>enable js</noscript><iframe src=x>frame</iframe>", "a"),
    ("<div><div><p>deep</p></div></div>\n\n\n<p>next</p>", "deep\n\nnext"),
    ("<b>bold</b> and <a href='javascript:x()'>link</a>", "bold and link"),
    ("text with a\x00 control\x1b char", "text with a control char"),
    ("", ""),
])
def test_html_to_text(html, text):
    assert html_to_text(html) == text


def test_unclosed_script_hides_the_rest():
    assert html_to_text("<p>before</p><script>document.write('x')") == "before"


def test_plain_text_summary_is_not_parsed_as_html():
    atom = ('<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><title>x</title>'
            '<id>1</id><link href="https://a.example/"/><summary type="text">'
            "a &lt;b&gt; is not bold</summary></entry></feed>")
    entry = feedparser.parse(io.BytesIO(atom.encode())).entries[0]
    assert entry_summary(entry) == "a <b> is not bold"


def test_long_summary_is_cut_at_a_word_with_an_ellipsis():
    entry = rss_entry("<title>x</title><description>" + "word " * 2000 + "</description>")
    summary = entry_summary(entry)
    assert len(summary) <= 5000
    assert summary.endswith("word…")


def test_guid_is_the_id_else_the_link():
    assert entry_guid(rss_entry("<guid>abc-1</guid><link>https://a.example/1</link>")) == "abc-1"
    assert entry_guid(rss_entry("<link>https://a.example/1</link>")) == "https://a.example/1"
    assert entry_guid(rss_entry("<title>neither</title>")) is None
    long_link = "https://a.example/" + "x" * 600
    guid = entry_guid(rss_entry(f"<link>{long_link}</link>"))
    assert guid.startswith("sha256:") and len(guid) == 71


def test_external_id_is_stable_and_per_feed():
    assert external_id_for(3, "abc") == external_id_for(3, "abc")
    assert external_id_for(3, "abc") != external_id_for(4, "abc")
    assert external_id_for(3, "abc").startswith("feed-3-")
    assert len(external_id_for(3, "abc")) == len("feed-3-") + 16


@pytest.mark.parametrize(("item", "expected"), [
    ("<pubDate>Tue, 24 Nov 2026 09:30:00 +0100</pubDate>", datetime(2026, 11, 24, 8, 30,
                                                                    tzinfo=UTC)),
    ("<pubDate>not a date</pubDate>", NOW),
    ("", NOW),
    ("<pubDate>Mon, 01 Jan 2035 00:00:00 GMT</pubDate>", NOW),  # future: not hidden for years
])
def test_published_at(item, expected):
    assert entry_published_at(rss_entry(f"<title>x</title>{item}"), NOW) == expected


def test_atom_updated_stands_in_for_published():
    atom = ('<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><title>x</title>'
            "<id>1</id><updated>2026-11-20T10:00:00+02:00</updated></entry></feed>")
    entry = feedparser.parse(io.BytesIO(atom.encode())).entries[0]
    assert entry_published_at(entry, NOW) == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_payload_needs_title_and_link_and_follows_the_feed():
    feed = Feed(id=7, url="https://t.example/feed", title="T", topics=["ai"], publish=False)
    complete = rss_entry("<title>A &amp; B</title><link>https://www.t.example/a</link>"
                         "<guid>g</guid><description>&lt;p&gt;Body&lt;/p&gt;</description>")
    payload = entry_payload(complete, feed=feed, guid="g", source_name="", now=NOW)
    assert payload == {
        "external_id": external_id_for(7, "g"),
        "title": "A & B",
        "summary": "Body",
        "source_url": "https://www.t.example/a",
        "source_name": "t.example",
        "published_at": NOW.isoformat(),
        "topics": ["ai"],
        "status": "draft",
    }
    feed.publish = True
    titled_only = rss_entry("<title>Link post</title><link>https://t.example/b</link>")
    payload = entry_payload(titled_only, feed=feed, guid="b", source_name="T", now=NOW)
    assert payload["status"] == "published"
    assert payload["summary"] == "Link post"
    assert payload["source_name"] == "T"
    no_link = rss_entry("<title>x</title><guid>g</guid>")
    no_title = rss_entry("<link>https://t.example/c</link>")
    assert entry_payload(no_link, feed=feed, guid="g", source_name="T", now=NOW) is None
    assert entry_payload(no_title, feed=feed, guid="c", source_name="T", now=NOW) is None
