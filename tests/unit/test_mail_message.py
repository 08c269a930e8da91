"""Messages as a relay and a mail client see them: headers, line ends, bodies that round-trip."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from newsletter.mail import HeaderValueError, build_message

UNSUBSCRIBE_URL = "https://news.example/unsubscribe/one-click?t=Zm9vYmFy"
# Compiled MJML is one very long line: the body must still go out in short lines.
LONG_HTML = "<html><body>" + "".join(
    f'<p style="margin:0">Paragraph {i}: caf\u00e9 &amp; na\u00efve text, tail.</p>'
    for i in range(1100)
) + "</body></html>"
TEXT = "Hello Ada,\n\nThe week in models.\nA line with trailing spaces   \n.\n.leading dot\n"


def build(**overrides) -> bytes:
    args = {
        "from_addr": "Modelwire <newsletter@news.example>",
        "to": "Ada Lovelace <ada@example.com>",
        "subject": "Open-weight models close the gap",
        "text": TEXT,
        "html": LONG_HTML,
        "message_id_domain": "news.example",
        "list_id": "Modelwire <daily.news.example>",
        "list_unsubscribe_url": UNSUBSCRIBE_URL,
        "list_unsubscribe_mailto": "unsubscribe@news.example?subject=unsubscribe",
        "date": datetime(2025, 11, 27, 9, 30, tzinfo=UTC),
    }
    args.update(overrides)
    return build_message(**args)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def content(part) -> str:
    """A part's decoded text; line breaks are CRLF on the wire, LF in Python."""
    return part.get_content().replace("\r\n", "\n")


def header_block(raw: bytes) -> str:
    """The top-level headers, unfolded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return re.sub(r"\r\n[ \t]+", " ", head)


def test_long_html_line_fixture_is_realistic():
    assert len(LONG_HTML) > 57_000 and "\n" not in LONG_HTML


def test_required_headers_are_present_once():
    raw = build()
    head = header_block(raw)
    for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id",
                 "List-Unsubscribe", "List-Unsubscribe-Post", "Content-Type"):
        found = re.findall(rf"^{re.escape(name)}:", head, flags=re.MULTILINE | re.IGNORECASE)
        assert len(found) == 1, name
    msg = parse(raw)
    assert msg["From"] == "Modelwire <newsletter@news.example>"
    assert msg["To"] == "Ada Lovelace <ada@example.com>"
    assert msg["List-Id"] == "Modelwire <daily.news.example>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime == datetime(2025, 11, 27, 9, 30, tzinfo=UTC)
    assert re.fullmatch(r"<[0-9a-f]{32}@news\.example>", msg["Message-ID"])


def test_list_unsubscribe_holds_the_https_url_first_then_mailto():
    head = header_block(build())
    assert (f"\nList-Unsubscribe: <{UNSUBSCRIBE_URL}>, "
            "<mailto:unsubscribe@news.example?subject=unsubscribe>\n") in head.replace(
                "\r\n", "\n")
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in build()


def test_list_headers_only_when_asked():
    msg = parse(build(list_id=None, list_unsubscribe_url=None, list_unsubscribe_mailto=None))
    for name in ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert msg[name] is None


def test_mailto_alone_gets_no_one_click_header():
    msg = parse(build(list_unsubscribe_url=None, list_unsubscribe_mailto="mailto:u@news.example"))
    assert msg["List-Unsubscribe"] == "<mailto:u@news.example>"
    assert msg["List-Unsubscribe-Post"] is None


def test_every_line_ends_in_crlf_and_none_is_long():
    raw = build()
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n"), "bare LF"
    assert raw.count(b"\r") == raw.count(b"\r\n"), "bare CR"
    assert raw.isascii(), "8bit data in the message"
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    head, body = raw.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in body.split(b"\r\n")) <= 76


def test_multipart_alternative_text_first_then_html_both_quoted_printable():
    msg = parse(build())
    assert msg.get_content_type() == "multipart/alternative"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"


def test_bodies_round_trip_exactly():
    msg = parse(build())
    assert content(msg.get_body(("plain",))) == TEXT
    assert content(msg.get_body(("html",))) == LONG_HTML


def test_text_only_message_is_a_single_part():
    raw = build(html=None, text="Just text, caf\u00e9.\n")
    msg = parse(raw)
    assert not msg.is_multipart()
    assert msg.get_content_type() == "text/plain"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(msg) == "Just text, caf\u00e9.\n"
    assert raw.count(b"\n") == raw.count(b"\r\n")


def test_non_ascii_subject_and_display_name_round_trip():
    subject = "Les mod\u00e8les ouverts rattrapent l'\u00e9cart \u2014 \u6a21\u578b " * 2
    raw = build(subject=subject.strip(), from_addr="Zo\u00eb du Mod\u00e8le <news@news.example>")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head
    msg = parse(raw)
    assert msg["Subject"] == subject.strip()
    assert msg["From"].addresses[0].display_name == "Zo\u00eb du Mod\u00e8le"
    assert msg["From"].addresses[0].addr_spec == "news@news.example"


def test_given_message_id_and_extra_headers_are_used():
    msg = parse(build(message_id="<fixed@news.example>",
                      extra_headers={"Feedback-ID": "digest:daily:modelwire"}))
    assert msg["Message-ID"] == "<fixed@news.example>"
    assert msg["Feedback-ID"] == "digest:daily:modelwire"
    assert "Return-Path" not in msg, "the final MTA adds it (RFC 5321), never the sender"


def test_date_is_kept_in_its_zone():
    paris = timezone(timedelta(hours=1))
    msg = parse(build(date=datetime(2025, 11, 27, 10, 30, tzinfo=paris)))
    assert msg["Date"].datetime == datetime(2025, 11, 27, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("char", ["\r", "\n", "\0", "\r\n"])
@pytest.mark.parametrize(("argument", "header", "value"), [
    ("subject", "Subject", "Hello{c}Bcc: victim@example.com"),
    ("to", "To", "ada@example.com{c}Bcc: victim@example.com"),
    ("from_addr", "From", "Modelwire <newsletter@news.example>{c}X-Evil: 1"),
    ("list_id", "List-Id", "Modelwire <daily.news.example>{c}X-Evil: 1"),
    ("list_unsubscribe_url", "List-Unsubscribe", "https://news.example/u{c}X-Evil: 1"),
    ("extra_headers", "X-Campaign", "daily{c}X-Evil: 1"),
])
def test_line_breaks_in_header_values_are_refused(argument, header, value, char):
    value = value.format(c=char)
    arg = {"X-Campaign": value} if argument == "extra_headers" else value
    with pytest.raises(HeaderValueError, match=header):
        build(**{argument: arg})


def test_bad_extra_header_names_are_refused():
    with pytest.raises(HeaderValueError):
        build(extra_headers={"X-Bad Name": "1"})
    with pytest.raises(HeaderValueError):
        build(extra_headers={"X-Evil\r\nBcc": "1"})
    with pytest.raises(ValueError, match="(?i)from"):
        build(extra_headers={"from": "Other <other@example.com>"})


@pytest.mark.parametrize("to", ["not an address", "a@example.com, b@example.com", ""])
def test_to_must_be_one_address(to):
    with pytest.raises(ValueError, match="To"):
        build(to=to)


def test_naive_date_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        build(date=datetime(2025, 11, 27, 9, 30))  # noqa: DTZ001 - the point of the test


def test_a_long_list_unsubscribe_url_is_never_encoded_or_broken():
    import email
    import email.policy

    from newsletter.mail import build_message

    url = "https://news.example/u/" + "x" * 120
    raw = build_message(from_addr="A <a@b.example>", to="r@example.com", subject="s",
                        text="t", message_id_domain="b.example", list_unsubscribe_url=url,
                        list_unsubscribe_mailto="unsub@b.example")
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]
    assert f"<{url}>".encode() in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["List-Unsubscribe"].strip() == f"<{url}>, <mailto:unsub@b.example>"
