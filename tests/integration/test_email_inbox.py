"""The email in the inbox (issue 11, item 13), checked on the messages the product really
sends (file transport): one h1, topic labels h2 and items h3, a preheader followed by
filler, designed dark mode, front-loaded digest subjects, sized images, Reply-To, and a
SpamAssassin score of 0."""

from __future__ import annotations

import html as html_lib
import re
import shutil
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from newsletter.db import db, utcnow
from newsletter.delivery.fanout import queue_readers
from newsletter.editions.digests import compose_now
from newsletter.editions.digests.write import SUBJECT_LENGTH, digest_subject
from newsletter.editions.specials import create_special
from newsletter.wiring import mail_setup
from tests.factories import make_synthesis
from tests.factories_readers import make_reader
from tests.support.editions import send
from tests.support.readers import csrf_from, outbox_messages

REPLY_TO = "Modelwire editors <editors@news.example>"
FILLER = "\u034f\u200c\u00a0" * 90
MARKDOWN = """Three regulators published rules this week. **Audits start in March.**

![Where the audits fall](https://news.example/static/audits.png)

## What happened

The rules are binding.

## What to watch

- Whether labs publish their evaluations
"""


class Headings(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._open: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if re.fullmatch(r"h[1-6]", tag):
            self._open, self._text = tag, []

    def handle_data(self, data):
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == self._open:
            self.found.append((tag, " ".join("".join(self._text).split())))
            self._open = None


def headings(html: str) -> list[tuple[str, str]]:
    parser = Headings()
    parser.feed(html)
    return parser.found


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


@pytest.fixture
def reply_to(app_config):
    app_config["REPLY_TO"] = REPLY_TO


@pytest.fixture
def outbox(app) -> Path:
    return Path(app.config["OUTBOX_DIR"])


def _new(outbox: Path, before: int):
    return outbox_messages(outbox)[before:]


def sent_special(app, outbox):
    before = len(outbox_messages(outbox))
    synthesis = make_synthesis(title="A synthesis inside the edition")
    edition = create_special("Frontier rules arrive", MARKDOWN, topics=["ai-policy-and-safety"],
                             sections=[{"title": "AI policy and safety",
                                        "synthesis_ids": [synthesis.id]}])
    send(app, edition.id)
    [message] = _new(outbox, before)
    return message


def sent_digest(app, outbox):
    before = len(outbox_messages(outbox))
    for n in range(3):
        make_synthesis(title=f"Regulators in three jurisdictions publish binding rules {n}",
                       published_at=(utcnow() - timedelta(minutes=5 + n)).isoformat())
    result = compose_now(mail_setup(), queue=queue_readers, now=utcnow(), slot_minutes=15)
    db.session.commit()
    for edition_id in result.editions:
        send(app, edition_id)
    [message] = _new(outbox, before)
    return message


@pytest.fixture
def reader(topics):
    return make_reader("ada@example.com", topics=("ai-policy-and-safety", "models-and-research"))


def test_a_digest_has_one_h1_topic_h2s_and_item_h3s(app, reader, outbox):
    found = headings(html_of(sent_digest(app, outbox)))
    assert [text for tag, text in found if tag == "h1"] == ["Your daily digest"]
    assert {text for tag, text in found if tag == "h2"} == {"AI policy and safety"}
    items = [text for tag, text in found if tag == "h3"]
    assert len(items) == 3 and all(t.startswith("Regulators in three") for t in items)
    assert not [tag for tag, _ in found if tag not in ("h1", "h2", "h3")]


def test_a_special_edition_shows_its_subject_as_its_one_h1(app, reader, outbox):
    found = headings(html_of(sent_special(app, outbox)))
    assert [text for tag, text in found if tag == "h1"] == ["Frontier rules arrive"]
    h2s = [text for tag, text in found if tag == "h2"]
    assert h2s == ["What happened", "What to watch", "AI policy and safety"]
    assert ("h3", "A synthesis inside the edition") in found
    # The card's own headings sit below its title.
    assert ("h4", "Analyst take") in found


def test_account_mail_has_one_h1(client, app, topics, outbox):
    client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": "new@example.com",
                                    "topic": ["ai-policy-and-safety"]})
    [message] = outbox_messages(outbox)
    assert [t for t in headings(html_of(message)) if t[0] == "h1"] == [
        ("h1", "Confirm your subscription")]


def test_the_preheader_is_followed_by_filler_in_list_mail(app, reader, outbox):
    for message in (sent_digest(app, outbox), sent_special(app, outbox)):
        html = html_of(message)
        hidden = re.search(r'<div style="display:none;[^"]*"[^>]*>([^<]*)</div>', html)
        assert hidden, "no hidden preheader"
        preview = html_lib.unescape(hidden.group(1))
        assert preview.endswith(FILLER)
        assert preview[:-len(FILLER)].strip(), "the preheader text itself is empty"


def test_dark_mode_is_designed_not_inverted(app, reader, outbox):
    html = html_of(sent_special(app, outbox))
    metas = re.findall(r'<meta name="([a-z-]+)" content="([^"]+)"', html)
    assert ("color-scheme", "light dark") in metas
    assert ("supported-color-schemes", "light dark") in metas
    dark = html[html.index("@media (prefers-color-scheme: dark)"):]
    dark = dark[:dark.index("</style>")]
    for selector in (".nl-body", ".nl-card", ".nl-foot", ".nl-body a"):
        assert selector in dark
    # The classes the dark styles name are on the email's parts.
    for css_class in ('class="nl-body"', 'class="nl-card"', 'class="nl-foot"', "nl-accent"):
        assert css_class in html


def test_digest_subjects_are_front_loaded_within_50_characters(app, reader, outbox):
    subject = sent_digest(app, outbox)["Subject"]
    assert len(subject) <= SUBJECT_LENGTH
    assert subject.startswith("Regulators in three jurisdictions")
    assert subject.endswith("… (+2 more)")
    assert digest_subject(["Short title"]) == "Short title"
    assert digest_subject(["Short title", "b"]) == "Short title (+1 more)"
    long = digest_subject(["x" * 80, "b", "c"])
    assert len(long) <= SUBJECT_LENGTH and long.endswith("… (+2 more)")


def test_images_from_markdown_get_a_width_outlook_respects(app, reader, outbox):
    html = html_of(sent_special(app, outbox))
    [image] = re.findall(r"<img\b[^>]*audits\.png[^>]*>", html)
    assert 'width="552"' in image and "max-width:100%" in image and "height:auto" in image


def test_reply_to_is_set_on_list_and_account_mail(reply_to, app, client, reader, outbox):
    assert sent_special(app, outbox)["Reply-To"] == REPLY_TO
    assert sent_digest(app, outbox)["Reply-To"] == REPLY_TO
    client.post("/preferences/link", data={"csrf_token": csrf_from(client, "/preferences/link"),
                                           "email": "ada@example.com"})
    assert outbox_messages(outbox)[-1]["Reply-To"] == REPLY_TO


def test_without_the_setting_there_is_no_reply_to(app, reader, outbox):
    assert sent_special(app, outbox)["Reply-To"] is None


@pytest.mark.parametrize("value", ["not an address", "a@b.example\r\nBcc: x@y.example"])
def test_a_bad_reply_to_is_refused_at_start(tmp_path, database_url, value):
    from newsletter import create_app
    from newsletter.config import ConfigError
    from tests.conftest import make_config

    with pytest.raises(ConfigError, match="NEWSLETTER_REPLY_TO must be an email address"):
        create_app(make_config(tmp_path, database_url, REPLY_TO=value))


@pytest.mark.skipif(shutil.which("spamassassin") is None,
                    reason="spamassassin is not installed (make browser-deps)")
def test_spamassassin_scores_each_kind_of_mail_0(app, client, reader, outbox, tmp_path):
    from tests.integration.test_digest_spam import score

    client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": "new@example.com",
                                    "topic": ["ai-policy-and-safety"]})
    confirmation = outbox_messages(outbox)[-1]
    for name, message in (("digest", sent_digest(app, outbox)),
                          ("special edition", sent_special(app, outbox)),
                          ("confirmation", confirmation)):
        report = score(message.as_bytes(), tmp_path)
        print(f"\nSpamAssassin, {name}: {report}")
        assert report.score <= 0.0, f"{name}: {report}"
