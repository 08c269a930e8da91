"""The digest email: 30 compact cards grouped by topic, as a reader sees them in a mailbox.

``digest_context()`` and ``PERSONAL`` are shared with the spam and browser tests.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from newsletter.editions.render import track_links
from newsletter.mail import EmailRenderer
from newsletter.mail.render import _excerpt

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates" / "emails"
DEMO = ROOT / "newsletter" / "content" / "demo_content.json"
GMAIL_CLIP_BYTES = 102_400  # Gmail clips a message whose HTML passes 102 KB

PERSONAL = {
    "greeting": "Hello Ada,",
    "email": "ada@example.com",
    "preferences_url": "https://news.example/preferences?token=pref-abc&reader=1",
    "unsubscribe_url": "https://news.example/unsubscribe?token=unsub-abc&reader=1",
}


def demo_syntheses(count: int = 30) -> list[dict]:
    """``count`` synthesis dicts from the demo content (repeated), each title distinct.

    Every title ends with "(no. n)", so no title is a substring of another.
    """
    data = json.loads(DEMO.read_text(encoding="utf-8"))
    names = {topic["slug"]: topic["name"] for topic in data["topics"]}
    items = []
    for n in range(1, count + 1):
        demo = data["syntheses"][(n - 1) % len(data["syntheses"])]
        items.append({
            "id": n,
            "title": f"{demo['title']} (no. {n})",
            "summary": demo["summary"],
            "context": demo["context"],
            "analysis": demo["analysis"],
            "watch": demo["watch"],
            "mentions": demo["mentions"],
            "byline": demo["byline"],
            "source_name": demo["source_name"],
            "source_url": demo["source_url"],
            "url": f"https://news.example/syntheses/demo-{n}",
            "topic_names": [names[slug] for slug in demo["topics"]],
            "published_at": datetime(2026, 11, 27, 6, tzinfo=UTC) - timedelta(hours=n),
            "topic_slug": demo["topics"][0],
        })
    return items


def digest_context(count: int = 30, **overrides) -> dict:
    """The context the digest composer passes, with ``count`` demo syntheses by topic."""
    data = json.loads(DEMO.read_text(encoding="utf-8"))
    names = {topic["slug"]: topic["name"] for topic in data["topics"]}
    sections: dict[str, dict] = {}
    for item in demo_syntheses(count):
        slug = item.pop("topic_slug")
        sections.setdefault(slug, {
            "title": names[slug], "slug": slug, "url": f"https://news.example/topics/{slug}",
            "syntheses": [],
        })["syntheses"].append(item)
    context = {
        "publication": "Modelwire",
        "base_url": "https://news.example",
        "postal_address": "Modelwire, 1 Example Street, Springfield, USA",
        "subject": "Modelwire daily: EU drafts a 72-hour incident rule, and more",
        "preheader": "EU drafts a 72-hour incident rule; export rules reach rented compute.",
        "date_label": "Friday 27 November 2026",
        "frequency": "daily",
        "web_url": "https://news.example/editions/daily-2026-11-27",
        "sections": list(sections.values()),
        "count": count,
        "subscribed_to": "",
    }
    context.update(overrides)
    return context


def all_syntheses(context: dict) -> list[dict]:
    return [s for section in context["sections"] for s in section["syntheses"]]


def flat(text: str) -> str:
    """White space collapsed, so wrapped text can be searched for whole sentences."""
    return " ".join(text.split())


@pytest.fixture
def renderer() -> EmailRenderer:
    return EmailRenderer(TEMPLATES)


@pytest.fixture
def digest(renderer):
    context = digest_context()
    rendered = renderer.render("digest", context)
    html, text = rendered.personalise(**PERSONAL)
    return context, rendered, html, text


# -- size and content ----------------------------------------------------------------------

def test_thirty_syntheses_stay_under_gmail_clipping_even_with_tracked_links(digest):
    context, rendered, html, _ = digest
    size = len(html.encode())
    tracked = track_links(rendered.html, context["base_url"], {}).fill(
        {**PERSONAL, "tracking_token": "t" * 43})
    tracked_size = len(tracked.encode())
    print(f"\ndigest HTML, 30 syntheses: {size:,} bytes; with tracked links and pixel: "
          f"{tracked_size:,} bytes (Gmail clips above {GMAIL_CLIP_BYTES:,})")
    assert len(all_syntheses(context)) == 30
    assert rendered.html_bytes_len < GMAIL_CLIP_BYTES
    assert size < GMAIL_CLIP_BYTES
    assert tracked_size < GMAIL_CLIP_BYTES
    assert "<mj-" not in html, "an MJML tag was left uncompiled"


def test_every_title_appears_once_and_links_to_its_page(digest):
    context, _, html, text = digest
    for synthesis in all_syntheses(context):
        title = str(escape(synthesis["title"]))
        assert html.count(title) == 1, synthesis["title"]
        assert flat(text).count(synthesis["title"]) == 1, synthesis["title"]
        assert re.search(rf'<a href="{re.escape(synthesis["url"])}"[^>]*>{re.escape(title)}</a>',
                         html), f"title not linked to its page: {synthesis['title']}"
        assert f'href="{escape(synthesis["source_url"])}"' in html
        assert f"    {synthesis['url']}\n" in text  # on a line of its own
        assert f"    {synthesis['source_url']}\n" in text


def test_masthead_shows_publication_frequency_and_date(digest):
    _, _, html, text = digest
    # The site's masthead: the round mark, then the name in the serif.
    assert re.search(r'class="nl-mark"[^>]*>MW</span>&nbsp;&nbsp;<span style="font-family:'
                     r"Georgia[^\"]*\">Modelwire</span></a>", html)
    assert re.search(r">Your daily digest</h1>\s*<p[^>]*>Friday 27 November 2026</p>", html)
    assert "Your daily digest · Friday 27 November 2026" in text
    assert "Your weekly digest" not in html and "Your weekly digest" not in text
    assert "Hello Ada," in html and "Hello Ada," in text


def test_in_this_digest_lists_each_topic_with_its_count(digest):
    context, _, html, text = digest
    assert len(context["sections"]) > 1
    assert "<strong>In this digest</strong> · 30 syntheses" in html
    assert "In this digest: 30 syntheses" in text
    # Each entry links to its section, whose heading carries the anchor.
    listed = re.findall(r'<li><a href="#([^"]+)"[^>]*>([^<]*)</a> \((\d+)\)</li>', html)
    assert listed == [(s["slug"], s["title"], str(len(s["syntheses"])))
                      for s in context["sections"]]
    for section in context["sections"]:
        assert f'<h2 id="{section["slug"]}" class="nl-accent"' in html
    expected = [f"{s['title']} ({len(s['syntheses'])})" for s in context["sections"]]
    for line in expected:
        assert f"\n- {line}\n" in text
    # The sections follow in the same order, each under its topic heading.
    headings = [s["title"].upper() for s in context["sections"]]
    positions = [text.index(f"\n{heading}\n====") for heading in headings]
    assert positions == sorted(positions)


def test_one_synthesis_is_singular(renderer):
    html, text = renderer.render("digest", digest_context(count=1)).personalise(**PERSONAL)
    assert "1 synthesis" in flat(text) and "· 1 synthesis</p>" in html


def test_cards_are_compact_analysis_cut_no_context_no_mentions(digest):
    context, _, html, text = digest
    html_text, plain = flat(html), flat(text)
    for synthesis in all_syntheses(context):
        analysis = flat(synthesis["analysis"])
        assert len(analysis) > 300, "the demo analysis should be long enough to be cut"
        excerpt = _excerpt(analysis)
        assert excerpt.endswith((". …", "? …", "! …")) and len(excerpt) <= 2 * 280
        assert str(escape(excerpt)) in html_text and excerpt in plain
        assert str(escape(analysis)) not in html_text and analysis not in plain
        opening = flat(synthesis["context"])[:60]
        assert str(escape(opening)) not in html_text and opening not in plain
        assert str(escape(flat(synthesis["summary"]))) in html_text
        assert flat(synthesis["watch"]) in plain
    for absent in ("Context", "Mentioned", "By the Modelwire desk"):
        assert absent not in html and absent not in text
    assert html.count("Read the full synthesis") == 30
    assert text.count("Read the full synthesis:\n") == 30
    assert html.count("<strong>Analyst take:</strong>") == 30
    assert html.count("<strong>What to watch:</strong>") == 30


def test_text_items_are_numbered_and_clearly_separated(digest):
    context, _, _, text = digest
    for n, synthesis in enumerate(all_syntheses(context), start=1):
        first_words = synthesis["title"].split()[0]
        assert re.search(rf"\n\n{n}\.\s+{re.escape(first_words)}", text), n


def test_view_in_browser_link_only_when_there_is_a_web_url(renderer):
    url = "https://news.example/editions/daily-2026-11-27"
    html, text = renderer.render("digest", digest_context(count=3)).personalise(**PERSONAL)
    assert re.search(rf'<a href="{re.escape(url)}"[^>]*>View this digest in your browser</a>',
                     html)
    assert f"View it in your browser:\n{url}\n" in text

    html, text = renderer.render("digest", digest_context(count=3, web_url="")).personalise(
        **PERSONAL)
    assert "in your browser" not in html and "in your browser" not in text
    assert 'href=""' not in html


def test_weekly_digest_says_weekly(renderer):
    html, text = renderer.render("digest", digest_context(count=3, frequency="weekly")
                                 ).personalise(**PERSONAL)
    assert "Your weekly digest</h1>" in html
    assert "Your weekly digest · Friday 27 November 2026" in text
    assert "You receive this weekly digest because you subscribed to Modelwire with " \
           "ada@example.com." in html
    assert "You receive this weekly digest because" in text
    assert "Your daily digest" not in html and "daily digest" not in text


def test_footer_has_reason_preferences_unsubscribe_and_postal_address(digest):
    _, rendered, html, text = digest
    for fields in (rendered.html.fields, rendered.text.fields):
        assert {"email", "preferences_url", "unsubscribe_url"} <= set(fields)
    footer = html[html.index("You receive this daily digest because"):]
    assert "You receive this daily digest because you subscribed to Modelwire with " \
           "ada@example.com." in footer
    assert re.search(r'<a href="https://news.example/preferences\?token=pref-abc&amp;reader=1"'
                     r"[^>]*>Manage preferences</a>", footer)
    assert re.search(r'<a href="https://news.example/unsubscribe\?token=unsub-abc&amp;reader=1"'
                     r"[^>]*>Unsubscribe</a>", footer)
    assert "Modelwire, 1 Example Street, Springfield, USA" in footer
    text_footer = text[text.index("\n--\n"):]
    assert "You receive this daily digest because" in text_footer
    assert "Manage preferences: " + PERSONAL["preferences_url"] in text_footer
    assert "Unsubscribe: " + PERSONAL["unsubscribe_url"] in text_footer
    assert "Modelwire, 1 Example Street, Springfield, USA" in text_footer


def test_footer_names_what_was_subscribed_to(renderer):
    html, text = renderer.render("digest", digest_context(
        count=2, subscribed_to="Chips and compute")).personalise(**PERSONAL)
    reason = "You receive this daily digest because you subscribed to Chips and compute at " \
             "Modelwire with ada@example.com."
    assert reason in html and reason in flat(text)


def test_user_content_is_escaped_and_template_syntax_stays_literal(renderer):
    context = digest_context(count=2)
    first = context["sections"][0]
    first["title"] = "R&D <i>labs</i>"
    first["syntheses"][0].update(
        title="<script>alert(1)</script> Why {{ 7*7 }} matters",
        summary="Some {% if true %}tricks{% endif %} and <b>bold</b> claims.",
        watch="{{ config }}", source_name="<img src=x onerror=alert(1)>")
    html, text = renderer.render("digest", context).personalise(**PERSONAL)

    assert "<script>" not in html and "<b>bold</b>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Why {{ 7*7 }} matters" in html
    assert ">R&amp;D &lt;i&gt;labs&lt;/i&gt;</a> (" in html
    assert "Some {% if true %}tricks{% endif %} and &lt;b&gt;bold&lt;/b&gt; claims." in html
    assert "{{ config }}" in html and "{{ config }}" in text
    assert "<script>alert(1)</script> Why {{ 7*7 }} matters" in flat(text)
    assert "49" not in html and "49" not in text


# -- what a mailbox and a spam filter look at ---------------------------------------------

def test_preheader_is_present_and_hidden_by_layout_not_colour(digest):
    context, _, html, _ = digest
    hidden = re.findall(r'<div style="([^"]*display:none[^"]*)"[^>]*>([^<]*)<', html)
    assert len(hidden) == 1
    style, preview = hidden[0]
    assert "color" not in style and "font-size" not in style
    # The preheader, then filler so the inbox preview stops there (not at the first lines).
    assert preview.startswith(context["preheader"])
    filler = preview[len(context["preheader"]):]
    assert filler == "&#847;&zwnj;&nbsp;" * 90
    # The preheader comes before any visible text.
    assert html.index(preview) < html.index(">Modelwire</span></a>")


def _hex_to_rgb(value: str) -> tuple[float, float, float]:
    value = value.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    return tuple(int(value[i:i + 2], 16) / 255 for i in (0, 2, 4))


def _luminance(value: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _hex_to_rgb(value))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two #rgb/#rrggbb colours."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


class VisibleText(HTMLParser):
    """Collects each visible text run with its inherited colour, background and font size.

    Follows inline styles (and bgcolor) the way a mail client without a style sheet would;
    text under ``display:none`` is skipped (the preheader), as is <head>.
    """

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = [("root", {
            "color": "#000000", "background": "#ffffff", "font-size": "16px", "hidden": False,
            "head": False})]
        self.runs: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        state = dict(self.stack[-1][1])
        attributes = dict(attrs)
        if tag == "head":
            state["head"] = True
        if attributes.get("bgcolor"):
            state["background"] = attributes["bgcolor"]
        for declaration in (attributes.get("style") or "").split(";"):
            name, _, value = declaration.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "color":
                state["color"] = value
            elif name in ("background", "background-color") and value.startswith("#"):
                state["background"] = value.split()[0]
            elif name == "font-size":
                state["font-size"] = value
            elif name == "display" and value == "none":
                state["hidden"] = True
        if tag not in self.VOID:
            self.stack.append((tag, state))

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data):
        state = self.stack[-1][1]
        if data.strip() and not state["hidden"] and not state["head"] \
                and self.stack[-1][0] not in ("style", "title"):
            self.runs.append((data.strip(), state))


def test_all_visible_text_is_readable_no_hidden_text_tricks(digest):
    _, _, html, _ = digest
    assert not re.search(r"(?<![-\w])color:\s*#fff(fff)?\b", html, re.IGNORECASE), \
        "white text"
    parser = VisibleText()
    parser.feed(html)
    assert len(parser.runs) > 200
    for text, state in parser.runs:
        size = state["font-size"]
        assert size.endswith("px"), (text, size)
        assert float(size[:-2]) >= 13, f"{text[:40]!r} is set in {size}"
        ratio = contrast(state["color"], state["background"])
        assert ratio >= 4.5, f"{text[:40]!r}: {state['color']} on {state['background']} " \
                             f"has contrast {ratio:.2f}"
    # Body copy (summaries, analyst take) is at least 15px.
    summary = next(state for text, state in parser.runs if text.startswith("The European"))
    assert float(summary["font-size"][:-2]) >= 15


def test_contrast_check_can_fail():
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast("#f3f4f6", "#ffffff") < 4.5
    parser = VisibleText()
    parser.feed('<div style="background-color:#ffffff"><p style="color:#fff;font-size:1px">x'
                '<span style="display:none">hidden</span></p></div>')
    assert parser.runs == [("x", parser.runs[0][1])]
    assert parser.runs[0][1]["font-size"] == "1px"
    assert contrast(parser.runs[0][1]["color"], parser.runs[0][1]["background"]) < 4.5


def test_text_alternative_is_written_for_humans(digest):
    context, _, _, text = digest
    assert not re.search(r"</?[a-z][^>]*>|&(amp|lt|gt|#\d+);", text), "HTML in the text part"
    for line in text.splitlines():
        if len(line) > 78:
            assert re.fullmatch(r"\s*https?://\S+", line), f"long line that is not a URL: {line!r}"
    assert text.startswith("Modelwire\nhttps://news.example\n")
    for section in context["sections"]:
        heading = section["title"].upper()
        assert f"\n\n{heading}\n{'=' * len(heading)}\n" in text


# -- the excerpt filter -------------------------------------------------------------------

LONG = ("The 72-hour clock is the headline. But the consequential choice is counting "
        "safeguard bypasses found in the wild as incidents, as the U.S. Senate did not. "
        "That turns routine jailbreak discovery into a regulatory event with a paper trail.")


def test_excerpt_cuts_after_the_last_whole_sentence_that_fits():
    result = _excerpt(LONG, 200)
    assert result == ("The 72-hour clock is the headline. But the consequential choice is "
                      "counting safeguard bypasses found in the wild as incidents, as the U.S. "
                      "Senate did not. …")
    assert len(result) <= 200


def test_excerpt_keeps_a_short_first_sentence_rather_than_cutting_a_word():
    assert _excerpt(LONG, 80) == "The 72-hour clock is the headline. …"


def test_excerpt_finishes_a_first_sentence_longer_than_the_length():
    # The sample synthesis's analyst take opens with one 290-character sentence.
    first = ("The more pointed detail buried in this framing is that the concern isn't just "
             "about what the other side might build, but about how the competition itself "
             "is warping internal development culture on both sides, compressing timelines "
             "and deprioritizing caution not through explicit policy but through ambient "
             "pressure.")
    assert _excerpt(first + " Modelwire has no prior coverage to anchor this to.") == \
        first + " …"


def test_excerpt_cuts_at_a_word_only_when_the_first_sentence_is_very_long():
    endless = " ".join(["word"] * 200) + "."
    result = _excerpt(endless, 80)
    assert result.endswith("word…") and len(result) <= 80
    assert _excerpt("one two, three four", 9) == "one two…"


def test_excerpt_leaves_short_text_whole_and_collapses_white_space():
    assert _excerpt("Short and sweet.") == "Short and sweet."
    assert _excerpt("  Two\n\nlines  here ") == "Two lines here"
    assert _excerpt(LONG, len(LONG)) == LONG


def test_excerpt_of_nothing_is_empty():
    assert _excerpt("") == ""
    assert _excerpt(None) == ""
    assert _excerpt("   \n ") == ""


def test_excerpt_default_length_is_about_280_characters():
    analysis = json.loads(DEMO.read_text())["syntheses"][0]["analysis"]
    result = _excerpt(analysis)
    assert 140 <= len(result) <= 280 and result.endswith("…")
    assert analysis.startswith(result.rstrip(" …"))


def test_excerpt_hard_cuts_a_single_overlong_word():
    assert _excerpt("x" * 50, 10) == "x" * 9 + "…"
