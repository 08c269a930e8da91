"""Markdown bodies of special editions: sanitised HTML with inline styles, text alternative."""

from __future__ import annotations

import re

import pytest

from newsletter.editions.markdown import (
    MAX_BYTES,
    first_paragraph_text,
    render_markdown,
    sanitise,
)
from newsletter.validation import InvalidInput


def html_of(source: str) -> str:
    return render_markdown(source)[0]


def text_of(source: str) -> str:
    return render_markdown(source)[1]


@pytest.mark.parametrize("source", [
    "Hello <script>alert('x')</script> there",
    "<script>\nalert('x')\n</script>\n\nHello there",
    "Hello <SCRIPT SRC=https://evil.example/x.js></SCRIPT> there",
])
def test_scripts_are_removed_with_their_content(source):
    html = html_of(source)
    assert "<script" not in html.lower()
    assert "alert" not in html and "evil.example" not in html
    assert "Hello" in html


def test_event_handlers_and_style_attributes_are_stripped():
    html = html_of('Look <img src="https://img.example/a.png" onerror="alert(1)" '
                   'style="position:fixed"> and <b onclick="steal()" style="color:red" '
                   'class="x" id="y">bold</b>')
    assert "onerror" not in html and "onclick" not in html
    assert "alert" not in html and "steal" not in html
    assert "position:fixed" not in html and "color:red" not in html
    assert 'class="x"' not in html and 'id="y"' not in html
    assert ('<img width="552" style="max-width:100%;height:auto;border:0;" '
            'src="https://img.example/a.png">') in html
    assert "<b>bold</b>" in html


@pytest.mark.parametrize("source", [
    "[click](javascript:alert(1))",
    "[click](JavaScript:alert(1))",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="java&#x09;script:alert(1)">click</a>',
    '<a href=" javascript:alert(1)">click</a>',
    "[click](data:text/html;base64,PHNjcmlwdD4=)",
    "[click](vbscript:msgbox)",
    "[click](/relative/path)",
])
def test_only_http_https_and_mailto_links_keep_their_url(source):
    html = html_of(source)
    assert "href" not in html and "<a" not in html  # the text stays, not the link
    assert "javascript" not in html.lower() and "data:" not in html
    assert html == '<p style="margin:0 0 12px 0;">click</p>'


def test_images_need_an_http_url():
    html = html_of("![ok](https://img.example/a.png) ![no](javascript:x) "
                   "![no2](data:image/png;base64,AAAA) ![no3](mailto:a@b.example)")
    assert html.count("<img") == 1
    assert 'src="https://img.example/a.png"' in html and 'alt="ok"' in html


def test_raw_html_is_sanitised_not_passed_through():
    html = html_of('<div style="x"><iframe src="https://evil.example"></iframe>'
                   '<form action="https://evil.example"><input name="q"></form>'
                   '<style>body{display:none}</style><object data="x"></object>'
                   "<p>kept text</p></div>\n\n<!-- a comment -->\n\nAfter")
    for banned in ("<div", "<iframe", "<form", "<input", "<style", "display:none",
                   "<object", "comment", "evil.example"):
        assert banned not in html, banned
    assert "kept text" in html and "After" in html


def test_attribute_values_cannot_smuggle_a_tag_into_the_styling():
    html = html_of('<a href="https://ok.example" title="<p onmouseover=alert(1) x">t</a> '
                   '![<h2 onload=x>](https://img.example/a.png)')
    # The only "<" left are tags, so no added style can open an attribute.
    assert "onmouseover=alert" not in re.sub(r'title="[^"]*"', "", html)
    assert re.findall(r"<(\w+)", html) == ["p", "a", "img"]
    assert html_of('<a title="x"><b>no link</b></a>') == \
        '<p style="margin:0 0 12px 0;"><b>no link</b></p>'
    assert 'title="p onmouseover=alert(1) x"' in html


def test_headings_lists_links_and_quotes_are_kept_with_inline_styles():
    html = html_of("## What happened\n\nA [link](https://example.com/a?b=1&c=2 \"Title\").\n\n"
                   "- one\n- two\n\n1. first\n\n> quoted\n\n### Detail\n\n`code` and **bold**"
                   " and *em*\n\n---\n")
    assert ('<h2 style="margin:8px 0 10px 0;font-size:22px;line-height:1.3;color:#1a1a1a;'
            "font-family:Georgia, 'Iowan Old Style', 'Times New Roman', serif;\">"
            "What happened</h2>") in html
    assert ('<a style="color:#a3271b;text-decoration:underline;" '
            'href="https://example.com/a?b=1&amp;c=2" title="Title" rel="noopener">link</a>'
            ) in html
    assert '<ul style="margin:0 0 12px 0;padding-left:24px;">' in html
    assert '<li style="margin:0 0 4px 0;">one</li>' in html
    assert '<ol style="' in html
    assert '<blockquote style="margin:0 0 12px 0;padding:2px 0 2px 14px;border-left:4px solid' \
        in html
    assert '<h3 style="' in html and "Detail</h3>" in html
    assert "<code style=" in html and "<strong>bold</strong>" in html and "<em>em</em>" in html
    assert "<hr style=" in html


def test_a_document_using_hash_headings_moves_every_heading_down_one_level():
    html = html_of("# Title\n\n## Part\n\n##### Deep\n")
    assert ">Title</h2>" in html and ">Part</h3>" in html and ">Deep</h4>" in html
    assert "<h1" not in html and "<h5" not in html
    assert ">Part</h2>" in html_of("## Part\n\n###### Deeper\n")
    assert ">Deeper</h4>" in html_of("## Part\n\n###### Deeper\n")


def test_tables_and_fenced_code_render_and_escape():
    html = html_of("| a | b |\n|---|--:|\n| 1 | <b>2</b> |\n\n```\n<script>x</script>\n```\n")
    assert "<table style=" in html and "<th style=" in html and "<td style=" in html
    assert "text-align: right" not in html  # the converter's style is dropped, ours stays
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script" not in html


def test_text_alternative_is_the_normalised_source():
    source = (
        "# Big news\n\n"
        "A paragraph with a [link](https://example.com/story \"t\") and <b>raw</b> HTML "
        "that goes on long enough to need wrapping at seventy-two columns, surely.\n\n"
        "<script>alert(1)</script>\n\n"
        "- first item\n- second item\n\n"
        "> A quoted line\n\n"
        "```\ncode  stays   as is\n```\n\n"
        "[bad](javascript:alert(1)) <https://auto.example/x>\n"
    )
    text = text_of(source)
    assert text.startswith("Big news\n========\n\nA paragraph with a link (https://example.com/story)")
    assert "<b>" not in text and "raw HTML" in text
    assert "alert" not in text and "javascript" not in text
    assert "- first item\n- second item" in text
    assert "> A quoted line" in text
    assert "```\ncode  stays   as is\n```" in text
    assert "bad https://auto.example/x" in text
    assert all(len(line) <= 72 for line in text.splitlines())


def test_code_keeps_what_looks_like_html():
    text = text_of("Use `<script>` carefully.\n\n```html\n<style>p{}</style>\n```\n")
    assert "Use `<script>` carefully." in text
    assert "<style>p{}</style>" in text


def test_long_urls_are_not_broken():
    url = "https://example.com/" + "a" * 100
    text = text_of(f"See [this]({url}) now.")
    assert url in text.splitlines()[1] or url in text


@pytest.mark.parametrize(("source", "message"), [
    ("", "is empty"),
    ("   \n\n\t ", "is empty"),
    (b"", "is empty"),
    ("<script>alert(1)</script>", "no content once unsafe HTML is removed"),
    (b"caf\xe9 latin-1", "is not UTF-8"),
    (b"caf\xe9".decode("utf-8", "surrogateescape"), "is not UTF-8"),
    ("x" * (MAX_BYTES + 1), "larger than 200 KB"),
    (b"x" * (MAX_BYTES + 1), "larger than 200 KB"),
    ("é" * (MAX_BYTES // 2 + 1), "larger than 200 KB"),  # the limit is in bytes
])
def test_bad_input_is_rejected_on_the_markdown_field(source, message):
    with pytest.raises(InvalidInput) as caught:
        render_markdown(source)
    assert caught.value.errors[0].field == "markdown"
    assert message in caught.value.errors[0].message


def test_utf8_bytes_and_a_bom_are_accepted():
    html, text = render_markdown("\ufeff## Café\n\nNaïve ü".encode())
    assert ">Café</h2>" in html and "Naïve ü" in text and "\ufeff" not in html + text


def test_first_paragraph_text_makes_a_preheader():
    html = html_of("## Heading\n\nFirst *paragraph* with &amp; an [x](https://x.example).\n\n"
                   "Second.")
    assert first_paragraph_text(html) == "First paragraph with & an x."
    long_html = html_of("word " * 80)
    preheader = first_paragraph_text(long_html)
    assert len(preheader) <= 140 and preheader.endswith("…")
    assert first_paragraph_text(html_of("## Only a heading")) == "Only a heading"


def test_sanitise_alone_drops_inline_styles():
    assert sanitise('<p style="margin:0">x</p><h2 style="a">y</h2>') == "<p>x</p><h2>y</h2>"


@pytest.mark.parametrize("source", ["> ## Quoted heading\n\ntext", "- ## Listed heading",
                                    "<table><tr><td><h2>In a cell</h2></td></tr></table>"])
def test_only_top_level_headings_start_an_email_section(source):
    html, _ = render_markdown("## Top\n\nIntro.\n\n" + source)
    assert html.count("<h2") == 1  # the top-level one; the nested one is an h3
    nested = html.split("</h2>", 1)[1]
    assert "<h2" not in nested


def test_deep_nesting_and_oversized_html_get_a_clear_message():
    with pytest.raises(InvalidInput, match="nests quotes or lists too deeply"):
        render_markdown("> " * 400 + "x")
    with pytest.raises(InvalidInput, match="KB of HTML; at most 80 KB"):
        render_markdown("## h\n\n" * 20_000)


def test_the_text_part_says_the_words_without_emphasis_markers():
    text = text_of("Hello **bold**, __strong__, *em* and _it_, ***both***; snake_case_name, "
                   "2*3*4 and `**code**` stay.")
    assert " ".join(text.split()) == ("Hello bold, strong, em and it, both; snake_case_name, "
                                      "2*3*4 and `**code**` stay.")


def test_images_get_a_width_no_larger_than_the_email():
    html = html_of('![chart](https://img.example/c.png)\n\n'
                   '<img src="https://img.example/big.png" width="1200" height="800" alt="big">'
                   '\n\n<img src="https://img.example/small.png" width="300" alt="small">\n\n'
                   '<img src="https://img.example/odd.png" width="wide" alt="odd">')
    widths = {name: width for width, name in re.findall(
        r'<img width="(\d+)"[^>]*src="https://img\.example/(\w+)\.png"', html)}
    assert widths == {"c": "552", "big": "552", "small": "300", "odd": "552"}
    assert "height=" not in html  # a fixed height would distort the narrowed image
