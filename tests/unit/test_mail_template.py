"""Pre-encoded messages as a relay and a mail client see them, one recipient at a time."""

from __future__ import annotations

import email
import email.policy
import random
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from newsletter.config import PROJECT_ROOT
from newsletter.mail import EmailRenderer, HeaderValueError, PersonalTemplate, RenderedEmail
from newsletter.mail.template import MessageTemplate

DOMAIN = "news.example"
DATE = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
LONG_VALUE = (("." + "word " * 7 + "=x \u00e9 \u4e2d\u6587 ") * 70)[:3000]
TRICKY_VALUES = [
    "Hello Ada,",
    ".leading dot",
    "..two dots, then text",
    ".",
    "trailing spaces   ",
    "trailing tab\t",
    "blanks before breaks  \nand\t\nend ",
    "a=b==c=",
    "caf\u00e9 \u4e2d\u6587 \U0001f600",
    "<script>alert('x')</script> & \"quotes\"",
    "two\nlines\n.dotted line after a break\n",
    "",
    LONG_VALUE,
]

def synthesis_context() -> dict:
    return {
        "publication": "Modelwire", "base_url": "https://news.example",
        "postal_address": "Modelwire, 1 Example Street, Springfield, USA",
        "subject": "Open-weight models close the gap",
        "synthesis": {
            "title": "Open-weight models close the gap",
            "summary": "Three labs released open-weight models this week. " * 8,
            "context": "Open releases have trailed closed ones by about a year. " * 6,
            "analysis": "Expect pricing pressure on mid-tier API offerings. " * 6,
            "watch": "Whether licences allow commercial fine-tuning.",
            "mentions": ["Mistral", "Meta", "Alibaba"], "byline": "By the Modelwire desk",
            "source_name": "The Example Times",
            "source_url": "https://example-times.test/2025/11/open-weights?ref=a&utm=b",
            "url": "https://news.example/syntheses/open-weights",
            "topic_names": ["Models and research"],
            "published_at": datetime(2025, 11, 27, 9, 30, tzinfo=UTC),
        },
    }


@pytest.fixture(scope="module")
def rendered() -> RenderedEmail:
    renderer = EmailRenderer(PROJECT_ROOT / "templates" / "emails")
    return renderer.render("synthesis", synthesis_context())


def synthetic() -> RenderedEmail:
    """A ~70 KB HTML body on one line, with placeholders at both ends and side by side."""
    paragraph = '<p style="margin:0">Paragraph {i}: caf\u00e9 &amp; na\u00efve text, tail.</p>'
    body = "".join(paragraph.format(i=i) for i in range(1250))
    html = PersonalTemplate(
        literals=("", "<html><body>" + body[: len(body) // 2], "", body[len(body) // 2:]
                  + '<a href="', '">Unsubscribe</a></body></html>', ""),
        fields=("greeting", "email", "greeting", "unsubscribe_url", "email"),
    )
    text = PersonalTemplate(literals=("", "\n\nThe text part.\n\nUnsubscribe: ", ""),
                            fields=("greeting", "unsubscribe_url"))
    return RenderedEmail(name="synthetic", subject="Synthetic", html=html, text=text,
                         html_bytes_len=len(html.fill({"greeting": "", "email": "",
                                                       "unsubscribe_url": ""}).encode()))


def build(rendered: RenderedEmail, **overrides) -> MessageTemplate:
    args = {
        "from_addr": "Modelwire <newsletter@news.example>",
        "subject": "Open-weight models close the gap",
        "text": rendered.text,
        "html": rendered.html,
        "message_id_domain": DOMAIN,
        "list_id": "Modelwire <daily.news.example>",
        "extra_headers": {"Feedback-ID": "synthesis:daily:modelwire"},
        "date": DATE,
    }
    args.update(overrides)
    return MessageTemplate.build(**args)


def values(n: int = 1, **overrides) -> dict[str, str]:
    data = {
        "to": f"reader{n}@example.com",
        "message_id": f"d{n:08d}.3f9a",
        "list_unsubscribe": f"<https://news.example/u/{n:032d}>",
        "greeting": f"Hello reader {n},",
        "email": f"reader{n}@example.com",
        "preferences_url": f"https://news.example/p/{n:032d}?a=1&b=2",
        "unsubscribe_url": f"https://news.example/u/{n:032d}?a=1&b=2",
    }
    data.update(overrides)
    return data


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def lines_of(text: str) -> str:
    """Line breaks as one character: CRLF on the wire, LF in Python."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def assert_same_as_personalise(raw: bytes, rendered: RenderedEmail, vals: dict) -> None:
    html, text = rendered.personalise(**vals)
    msg = parse(raw)
    assert lines_of(msg.get_body(("plain",)).get_content()) == lines_of(text)
    assert lines_of(msg.get_body(("html",)).get_content()) == lines_of(html)


def assert_wire_rules(raw: bytes) -> None:
    """CRLF only, 7-bit, short lines, and nothing an SMTP client would have to dot-stuff."""
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n"), "bare LF"
    assert raw.count(b"\r") == raw.count(b"\r\n"), "bare CR"
    assert raw.isascii()
    head, body = raw.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    body_lines = body.split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76
    assert not any(line.endswith((b" ", b"\t")) for line in body_lines), "trailing blank"
    assert not any(line.startswith(b".") for line in raw.split(b"\r\n"))


def header_block(raw: bytes) -> str:
    """The top-level headers, unfolded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return re.sub(r"\r\n[ \t]+", " ", head)


def test_real_synthesis_email_reads_back_like_personalise(rendered):
    template = build(rendered)
    raw = template.render(values())
    assert_same_as_personalise(raw, rendered, values())
    assert_wire_rules(raw)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.get_payload()] == ["text/plain", "text/html"]
    for part in msg.get_payload():
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
    assert '; boundary="=_' in header_block(raw)


@pytest.mark.parametrize("value", TRICKY_VALUES, ids=range(len(TRICKY_VALUES)))
def test_tricky_values_read_back_exactly(rendered, value):
    template = build(rendered)
    vals = values(greeting=value, email=value, preferences_url=value)
    raw = template.render(vals)
    assert_same_as_personalise(raw, rendered, vals)
    assert_wire_rules(raw)


def test_markup_is_escaped_in_html_and_raw_in_text(rendered):
    raw = build(rendered).render(values(greeting="<script>alert(1)</script>"))
    msg = parse(raw)
    assert "<script>alert(1)</script>" in msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html


def test_synthetic_70_kb_body_reads_back_and_keeps_short_lines():
    big = synthetic()
    assert big.html_bytes_len > 70_000
    template = build(big)
    assert template.fields == {"to", "message_id", "list_unsubscribe", "greeting", "email",
                               "unsubscribe_url"}
    for value in TRICKY_VALUES:
        vals = values(greeting=value, email=value)
        raw = template.render(vals)
        assert_same_as_personalise(raw, big, vals)
        assert_wire_rules(raw)


def test_random_values_read_back_exactly():
    big = synthetic()
    template = build(big)
    alphabet = [".", ".", " ", " ", "\t", "=", "=", "a", "b", "\u00e9", "\u4e2d", "\U0001f600",
                "<", "&", "\n", "\r\n", "-", "_"]
    rng = random.Random(20261127)
    for _ in range(300):
        vals = values(**{
            key: "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 2, 40, 80, 300])))
            for key in ("greeting", "email", "unsubscribe_url")
        })
        raw = template.render(vals)
        assert_same_as_personalise(raw, big, vals)
        assert_wire_rules(raw)


def test_headers_are_present_once_and_personal(rendered):
    template = build(rendered)
    raw = template.render(values(7))
    head = header_block(raw)
    for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id",
                 "List-Unsubscribe", "List-Unsubscribe-Post", "Content-Type", "Feedback-ID"):
        found = re.findall(rf"^{re.escape(name)}:", head, flags=re.MULTILINE | re.IGNORECASE)
        assert len(found) == 1, name
    msg = parse(raw)
    assert msg["From"] == "Modelwire <newsletter@news.example>"
    assert msg["To"] == "reader7@example.com"
    assert msg["Subject"] == "Open-weight models close the gap"
    assert msg["Date"].datetime == DATE
    assert msg["Message-ID"] == "<d00000007.3f9a@news.example>"
    assert msg["List-Id"] == "Modelwire <daily.news.example>"
    assert msg["List-Unsubscribe"] == f"<https://news.example/u/{7:032d}>"
    assert msg["Feedback-ID"] == "synthesis:daily:modelwire"
    assert msg["MIME-Version"] == "1.0"
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw


def test_each_render_is_its_own_message(rendered):
    template = build(rendered)
    first, second = parse(template.render(values(1))), parse(template.render(values(2)))
    assert first["Message-ID"] != second["Message-ID"]
    assert first["To"] == "reader1@example.com" and second["To"] == "reader2@example.com"
    assert f"/u/{2:032d}" in second["List-Unsubscribe"]
    assert f"/u/{2:032d}" in second.get_body(("plain",)).get_content()
    assert f"/u/{1:032d}" not in second.as_string()


def test_long_list_unsubscribe_folds_between_targets_never_inside_a_url(rendered):
    url = "https://news.example/unsubscribe/one-click?token=" + "A" * 150
    value = f"<{url}>, <mailto:unsubscribe@news.example?subject=unsubscribe-{'b' * 40}>"
    raw = build(rendered).render(values(list_unsubscribe=value))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert f"List-Unsubscribe: <{url}>,\r\n <mailto:".encode() in head
    assert parse(raw)["List-Unsubscribe"] == value
    assert not any(line.startswith(b".") for line in raw.split(b"\r\n"))


def test_long_to_folds_at_78_columns(rendered):
    to = '"Ada Augusta King, Countess of Lovelace, Analyst of the Engine" <ada@example.com>'
    raw = build(rendered).render(values(to=to))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert b"\r\nTo: " in head and to.encode() not in head
    assert parse(raw)["To"].addresses[0].addr_spec == "ada@example.com"
    assert parse(raw)["To"].addresses[0].display_name.startswith("Ada Augusta King")


def test_a_url_longer_than_998_is_refused(rendered):
    with pytest.raises(HeaderValueError, match="List-Unsubscribe"):
        build(rendered).render(values(list_unsubscribe=f"<https://news.example/{'x' * 1000}>"))


@pytest.mark.parametrize("char", ["\r", "\n", "\0", "\r\n"])
@pytest.mark.parametrize(("key", "header", "value"), [
    ("to", "To", "ada@example.com{c}Bcc: victim@example.com"),
    ("message_id", "Message-ID", "abc{c}X-Evil: 1"),
    ("list_unsubscribe", "List-Unsubscribe", "<https://news.example/u/1>{c}X-Evil: 1"),
])
def test_line_breaks_in_header_values_are_refused(rendered, key, header, value, char):
    with pytest.raises(ValueError, match=header):
        build(rendered).render(values(**{key: value.format(c=char)}))


@pytest.mark.parametrize(("key", "value"), [
    ("to", "ad\u00e9@exampl\u00e9.com"),
    ("to", "not an address"),
    ("message_id", "a@b"),
    ("message_id", "<abc>"),
    ("message_id", ""),
    ("list_unsubscribe", "https://news.example/u/1"),
    ("list_unsubscribe", "<mailto:u@news.example>"),
])
def test_bad_header_values_are_refused(rendered, key, value):
    with pytest.raises(ValueError):  # noqa: PT011 - HeaderValueError names the header
        build(rendered).render(values(**{key: value}))


def test_a_missing_value_is_named(rendered):
    template = build(rendered)
    for key in ("unsubscribe_url", "to", "message_id", "list_unsubscribe"):
        vals = values()
        del vals[key]
        with pytest.raises(KeyError, match=key):
            template.render(vals)


def test_unused_values_are_ignored(rendered):
    raw = build(rendered).render(values(unused="whatever"))
    assert b"whatever" not in raw


def test_text_only_message_is_a_single_part():
    text = PersonalTemplate(literals=("Hi ", ",\nCaf\u00e9 news.\n.\nBye: ", ""),
                            fields=("greeting", "unsubscribe_url"))
    template = MessageTemplate.build(
        from_addr="Modelwire <newsletter@news.example>", subject="Just text", text=text,
        html=None, message_id_domain=DOMAIN, list_id=None)
    vals = values()
    raw = template.render(vals)
    msg = parse(raw)
    assert not msg.is_multipart()
    assert msg.get_content_type() == "text/plain"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg["List-Id"] is None
    assert lines_of(msg.get_content()) == text.fill(vals)
    assert_wire_rules(raw)


def test_text_only_body_without_final_line_break_reads_back_exactly():
    text = PersonalTemplate(literals=("Hi. ",), fields=())
    template = MessageTemplate.build(
        from_addr="newsletter@news.example", subject="S", text=text, html=None,
        message_id_domain=DOMAIN, list_id=None)
    raw = template.render(values())
    assert parse(raw).get_content() == "Hi. "
    assert_wire_rules(raw)


def test_non_ascii_subject_and_display_name_are_encoded_once(rendered):
    subject = "Les mod\u00e8les ouverts rattrapent l'\u00e9cart \u2014 \u6a21\u578b " * 3
    template = build(rendered, subject=subject.strip(),
                     from_addr="Zo\u00eb du Mod\u00e8le <news@news.example>")
    raw = template.render(values())
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head
    msg = parse(raw)
    assert msg["Subject"] == subject.strip()
    assert msg["From"].addresses[0].display_name == "Zo\u00eb du Mod\u00e8le"
    assert_wire_rules(raw)


def test_an_extra_personal_header_takes_its_own_value(rendered):
    template = build(rendered, personal_headers=("To", "Message-ID", "List-Unsubscribe",
                                                 "X-Delivery-ID"))
    assert "x_delivery_id" in template.fields
    msg = parse(template.render(values(x_delivery_id="42")))
    assert msg["X-Delivery-ID"] == "42"


@pytest.mark.parametrize("overrides", [
    {"extra_headers": {"Subject": "again"}},
    {"extra_headers": {"X-Bad Name": "1"}},
    {"extra_headers": {".X-Dot": "1"}},
    {"extra_headers": {"X-Campaign": "a\r\nBcc: victim@example.com"}},
    {"subject": "Hello\nBcc: victim@example.com"},
    {"from_addr": "not an address"},
    {"personal_headers": ("To", "Message-ID")},
    {"personal_headers": ("To", "Message-ID", "List-Unsubscribe", "Subject")},
    {"personal_headers": ("To", "Message-ID", "List-Unsubscribe", "Feedback-ID")},
    {"date": datetime(2026, 11, 27, 9, 30)},  # noqa: DTZ001 - the point of the test
])
def test_bad_build_arguments_are_refused(rendered, overrides):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        build(rendered, **overrides)


def test_one_template_serves_many_threads(rendered):
    template = build(rendered)
    expected = [template.render(values(n)) for n in range(200)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda n: template.render(values(n)), range(200)))
    assert got == expected
