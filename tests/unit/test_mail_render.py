"""The synthesis email: what a reader sees, compiled once per content, personalised per reader."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.mail import EmailRenderer, TemplateError

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "emails"

PERSONAL = {
    "greeting": "Hello <b>Ada</b>,",
    "email": "ada@example.com",
    "preferences_url": "https://news.example/preferences?token=abc&reader=1",
    "unsubscribe_url": "https://news.example/unsubscribe?token=abc&reader=1",
}


def synthesis(**overrides) -> dict:
    data = {
        "title": "Open-weight models close the gap",
        "summary": "Three labs released open-weight models this week that match last year's "
                   "frontier systems on most public benchmarks, at a fraction of the cost.",
        "context": "Open releases have trailed closed ones by about a year.",
        "analysis": "Expect pricing pressure on mid-tier API offerings.",
        "watch": "Whether licences allow commercial fine-tuning.",
        "mentions": ["Mistral", "Meta", "Alibaba"],
        "byline": "By the Modelwire desk",
        "source_name": "The Example Times",
        "source_url": "https://example-times.test/2025/11/open-weights?ref=a&utm=b",
        "url": "https://news.example/syntheses/open-weights",
        "topic_names": ["Models and research"],
        "published_at": datetime(2025, 11, 27, 9, 30, tzinfo=UTC),
    }
    data.update(overrides)
    return data


def context(**overrides) -> dict:
    return {
        "publication": "Modelwire",
        "base_url": "https://news.example",
        "postal_address": "Modelwire, 1 Example Street, Springfield, USA",
        "subject": "Open-weight models close the gap",
        "synthesis": synthesis(**overrides),
    }


@pytest.fixture
def renderer() -> EmailRenderer:
    return EmailRenderer(TEMPLATES)


def test_synthesis_email_shows_the_synthesis_and_the_footer(renderer):
    rendered = renderer.render("synthesis", context())
    html, text = rendered.personalise(**PERSONAL)

    assert html.startswith("<!doctype html>") and '<html lang="en"' in html
    assert "Open-weight models close the gap" in html
    assert 'href="https://news.example/syntheses/open-weights"' in html
    assert "Three labs released open-weight models" in html
    for heading in ("Context", "Analyst take", "What to watch"):
        assert heading in html
    assert "Mistral, Meta, Alibaba" in html
    assert "By the Modelwire desk" in html
    assert "The full content lives on" in html
    assert 'href="https://example-times.test/2025/11/open-weights?ref=a&amp;utm=b"' in html
    assert "You receive this because you subscribed to Models and research at Modelwire" in html
    assert "Modelwire, 1 Example Street, Springfield, USA" in html
    assert "<mj-" not in html, "an MJML tag was left uncompiled"
    assert rendered.subject == "Open-weight models close the gap"


def test_empty_sections_are_left_out(renderer):
    html, text = renderer.render("synthesis", context(watch="", mentions=[])).personalise(
        **PERSONAL)
    assert "What to watch" not in html and "What to watch" not in text
    assert "Mentioned" not in html


def test_same_content_compiles_once_and_new_content_compiles_again(renderer):
    first = renderer.render("synthesis", context())
    second = renderer.render("synthesis", context())
    assert renderer.compile_count == 1
    assert first.personalise(**PERSONAL) == second.personalise(**PERSONAL)

    renderer.render("synthesis", context(title="A different story"))
    assert renderer.compile_count == 2


def test_personal_values_are_escaped_in_html_and_raw_in_text(renderer):
    html, text = renderer.render("synthesis", context()).personalise(**PERSONAL)

    assert 'href="https://news.example/unsubscribe?token=abc&amp;reader=1"' in html
    assert 'href="https://news.example/preferences?token=abc&amp;reader=1"' in html
    assert "Hello &lt;b&gt;Ada&lt;/b&gt;," in html
    assert "<b>Ada</b>" not in html
    assert "Unsubscribe: https://news.example/unsubscribe?token=abc&reader=1" in text
    assert "Manage preferences: https://news.example/preferences?token=abc&reader=1" in text
    assert "Hello <b>Ada</b>," in text
    assert "ada@example.com" in html and "ada@example.com" in text


def test_each_reader_gets_their_own_values(renderer):
    rendered = renderer.render("synthesis", context())
    other = dict(PERSONAL, email="bob@example.com", unsubscribe_url="https://news.example/u/bob")
    html_ada, _ = rendered.personalise(**PERSONAL)
    html_bob, text_bob = rendered.personalise(**other)
    assert "https://news.example/u/bob" in html_bob and "https://news.example/u/bob" in text_bob
    assert "bob@example.com" not in html_ada
    assert renderer.compile_count == 1


def test_template_syntax_in_content_stays_literal(renderer):
    rendered = renderer.render("synthesis", context(
        title="Why {{ 7*7 }} matters", summary="Some {% if true %}tricks{% endif %} here."))
    html, text = rendered.personalise(**PERSONAL)

    assert "Why {{ 7*7 }} matters" in html and "Why {{ 7*7 }} matters" in text
    assert "Some {% if true %}tricks{% endif %} here." in html
    assert "49" not in html and "49" not in text


def test_personal_value_that_looks_like_template_syntax_stays_literal(renderer):
    values = dict(PERSONAL, greeting="Hi {{ 7*7 }},")
    html, text = renderer.render("synthesis", context()).personalise(**values)
    assert "Hi {{ 7*7 }}," in html and "Hi {{ 7*7 }}," in text


def test_markup_in_content_is_escaped(renderer):
    html, _ = renderer.render("synthesis", context(title="<script>alert(1)</script>")).personalise(
        **PERSONAL)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_missing_personal_value_raises_key_error_naming_it(renderer):
    rendered = renderer.render("synthesis", context())
    values = {k: v for k, v in PERSONAL.items() if k != "unsubscribe_url"}
    with pytest.raises(KeyError, match="unsubscribe_url"):
        rendered.personalise(**values)
    assert rendered.fields == set(PERSONAL)


def test_compiled_html_stays_under_gmail_clipping_limit(renderer):
    rendered = renderer.render("synthesis", context())
    html, _ = rendered.personalise(**PERSONAL)
    assert rendered.html_bytes_len < 102 * 1024
    assert len(html.encode()) < 102 * 1024


def test_text_alternative_is_written_for_humans(renderer):
    _, text = renderer.render("synthesis", context()).personalise(**PERSONAL)

    assert "<" not in text.replace("<b>Ada</b>", ""), "HTML leaked into the text part"
    assert "Three labs released open-weight models this week" in text
    assert "The full content lives on The Example Times:\n" \
           "https://example-times.test/2025/11/open-weights?ref=a&utm=b" in text
    assert "https://news.example/syntheses/open-weights" in text
    assert "Analyst take\n------------\nExpect pricing pressure" in text
    assert "- Mistral" in text
    assert "Modelwire, 1 Example Street, Springfield, USA" in text
    assert max(len(line) for line in text.splitlines() if "http" not in line) <= 72


def test_preheader_is_hidden_by_layout_not_by_colour(renderer):
    html, _ = renderer.render("synthesis", context()).personalise(**PERSONAL)
    hidden = re.findall(r'<div style="([^"]*display:none[^"]*)"[^>]*>([^<]*)<', html)
    assert len(hidden) == 1
    style, preview = hidden[0]
    assert "color" not in style
    assert preview.startswith("Three labs released open-weight models")


def test_undefined_context_value_is_a_template_error(renderer):
    ctx = context()
    del ctx["postal_address"]
    with pytest.raises(TemplateError, match="synthesis"):
        renderer.render("synthesis", ctx)


def test_filter_on_a_personal_field_is_reported(tmp_path):
    (tmp_path / "bad.mjml").write_text(
        '<mjml lang="en"><mj-body><mj-section><mj-column>'
        "<mj-text>{{ personal.greeting | upper }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>")
    (tmp_path / "bad.txt").write_text("{{ personal.greeting }}")
    with pytest.raises(TemplateError, match="personal"):
        EmailRenderer(tmp_path).render("bad", {})


def test_invalid_mjml_is_a_template_error_naming_the_template(tmp_path):
    (tmp_path / "broken.mjml").write_text("<mjml><mj-body><mj-section>")
    (tmp_path / "broken.txt").write_text("text")
    with pytest.raises(TemplateError, match="broken"):
        EmailRenderer(tmp_path).render("broken", {})


def test_cache_is_bounded(tmp_path):
    (tmp_path / "note.mjml").write_text(
        '<mjml lang="en"><mj-body><mj-section><mj-column><mj-text>{{ n }}</mj-text>'
        "</mj-column></mj-section></mj-body></mjml>")
    (tmp_path / "note.txt").write_text("{{ n }}")
    renderer = EmailRenderer(tmp_path, cache_size=2)
    for n in (1, 2, 3, 1):
        renderer.render("note", {"n": n})
    assert renderer.compile_count == 4  # 1 was evicted by 3
    renderer.render("note", {"n": 1})
    assert renderer.compile_count == 4


def test_link_tracking_rewrites_links_not_text_that_looks_like_one():
    from newsletter.editions.render import track_links
    from newsletter.mail.render import PersonalTemplate

    html = ('<p>write href="https://evil.example/x" in text</p>'
            '<a style="color:red" href="https://news.example/a">a</a>')
    links: dict[str, int] = {}
    tracked = track_links(PersonalTemplate((html + "</body>",), ()), "https://news.example",
                          links)
    document = tracked.fill({"tracking_token": "TOKEN"})
    assert 'write href="https://evil.example/x" in text' in document
    assert '<a style="color:red" href="https://news.example/c/TOKEN/1">' in document
    assert links == {"https://news.example/a": 1}
