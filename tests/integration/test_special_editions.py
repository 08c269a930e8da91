"""Special editions written in Markdown: `newsletter edition create --markdown`, then sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.db import db
from newsletter.editions.models import Edition, EditionLink
from newsletter.editions.specials import create_special
from newsletter.validation import InvalidInput
from tests.factories import make_synthesis
from tests.support.editions import audience
from tests.support.readers import outbox_messages, text_of

SECTION_START = "margin:0px auto;max-width:600px;"  # how MJML opens every <mj-section>

MARKDOWN = """\
Good morning. Today's special edition covers two stories that moved fast overnight.

<script>alert('pwned')</script>

## The regulator acts

The [agency published its rules](https://regulator.example/rules "Rules") this morning,
with <b onclick="steal()">binding</b> deadlines and a [trap](javascript:alert(1)).

- Deadlines in six months
- Fines up to 4%

## What labs said

> We welcome clarity.

<img src="https://img.example/chart.png" onerror="alert(2)" alt="Chart">
"""


def write(tmp_path: Path, name: str, data: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return str(path)


def edition_count() -> int:
    return db.session.scalar(select(func.count(Edition.id)))


def test_markdown_edition_is_created_sanitised_then_sent_in_sections(runner, app, topics,
                                                                     tmp_path):
    readers = audience(2)
    created = runner.invoke(args=["edition", "create", "--subject", "Rules day",
                                  "--markdown", write(tmp_path, "special.md", MARKDOWN),
                                  "--topics", "ai-policy-and-safety"])
    assert created.exit_code == 0, created.output
    edition = db.session.get(Edition, int(created.stdout.strip()))
    assert (edition.kind, edition.status, edition.audience["topics"]) == \
        ("special", "draft", ["ai-policy-and-safety"])
    assert edition.preheader == ("Good morning. Today's special edition covers two stories "
                                 "that moved fast overnight.")
    body = edition.content["body_html"]
    assert ">The regulator acts</h2>" in body and ">What labs said</h2>" in body
    for unsafe in ("<script", "alert", "onclick", "steal", "javascript", "onerror"):
        assert unsafe not in body, unsafe
    assert 'href="https://regulator.example/rules"' in body
    assert "agency published its rules (https://regulator.example/rules)" in \
        edition.content["body_text"]
    assert f"/editions/{edition.slug}" in created.stderr

    sent = runner.invoke(args=["send", str(edition.id), "--quiet"])
    assert sent.exit_code == 0, sent.output
    messages = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    assert sorted(m["To"] for m in messages) == sorted(r.email for r in readers)
    message = messages[0]
    html = message.get_body(("html",)).get_content()
    text = text_of(message).replace("\r\n", "\n")
    web_url = f"https://news.example/editions/{edition.slug}"

    # Each top-level heading opens an <mj-section> of its own.
    # (The first paragraph is also the hidden preheader, so it is found by its <p>.)
    chunks = html.split(SECTION_START)
    intro = '<p style="margin:0 0 12px 0;">Good morning.'
    where = {label: next(i for i, chunk in enumerate(chunks) if label in chunk)
             for label in (intro, ">The regulator acts</h2>", ">What labs said</h2>",
                           "View in browser")}
    assert len(set(where.values())) == 4, where
    assert where["View in browser"] < where[intro] < \
        where[">The regulator acts</h2>"] < where[">What labs said</h2>"]
    assert "Deadlines in six months" in chunks[where[">The regulator acts</h2>"]]
    assert "We welcome clarity." in chunks[where[">What labs said</h2>"]]

    # "View in browser" is a tracked link to the web version, and plain in the text part.
    assert db.session.scalar(select(EditionLink.n).where(
        EditionLink.edition_id == edition.id, EditionLink.url == web_url)) is not None
    assert f"View in browser: {web_url}" in text.splitlines()[3]
    for unsafe in ("<script", "alert(", "onclick", "javascript:", "onerror"):
        assert unsafe not in html and unsafe not in text, unsafe
    assert "- Deadlines in six months\n- Fines up to 4%" in text
    assert "> We welcome clarity." in text


def test_view_in_browser_link_is_direct_without_tracking(runner, app, topics, tmp_path):
    audience(1)
    created = runner.invoke(args=["edition", "create", "--subject", "Untracked",
                                  "--no-tracking", "--preheader", "Own preheader",
                                  "--markdown", write(tmp_path, "a.md", "## Hi\n\nBody.")])
    assert created.exit_code == 0, created.output
    edition = db.session.get(Edition, int(created.stdout.strip()))
    assert edition.preheader == "Own preheader"
    assert runner.invoke(args=["send", str(edition.id), "--quiet"]).exit_code == 0
    [message] = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    html = message.get_body(("html",)).get_content()
    assert f'<a href="https://news.example/editions/{edition.slug}" ' \
           'style="color:#a3271b;text-decoration:underline;">View in browser</a>' in html


def test_markdown_body_with_syntheses_after_it(runner, app, topics, tmp_path):
    synthesis = make_synthesis(title="A card after the body")
    created = runner.invoke(args=["edition", "create", "--subject", "Both",
                                  "--markdown", write(tmp_path, "b.md", "Intro text."),
                                  "--synthesis", synthesis.slug])
    assert created.exit_code == 0, created.output
    edition = db.session.get(Edition, int(created.stdout.strip()))
    assert edition.content["sections"] == [{"title": "Both", "synthesis_ids": [synthesis.id]}]
    assert "Intro text." in edition.content["body_html"]


def test_scheduled_markdown_edition_is_started_by_the_worker_when_due(runner, app, topics,
                                                                      tmp_path):
    audience(2)
    created = runner.invoke(args=["edition", "create", "--subject", "Later",
                                  "--markdown", write(tmp_path, "later.md", "## Soon\n\nText"),
                                  "--send-at", "2030-01-02T08:00:00+01:00"])
    assert created.exit_code == 0, created.output
    edition = db.session.get(Edition, int(created.stdout.strip()))
    assert edition.status == "scheduled"
    assert edition.send_at == datetime(2030, 1, 2, 7, 0, tzinfo=UTC)
    assert edition.slug.startswith("2030-01-02-later")

    from newsletter.delivery.service import start_due_editions
    from newsletter.wiring import mail_setup

    with time_machine.travel(datetime(2030, 1, 2, 6, 59, tzinfo=UTC), tick=False):
        assert start_due_editions(mail_setup()) == []
    with time_machine.travel(datetime(2030, 1, 2, 7, 1, tzinfo=UTC), tick=False):
        assert start_due_editions(mail_setup()) == [edition.id]
    db.session.refresh(edition)
    assert edition.status == "sending"


@pytest.mark.parametrize(("args", "data", "message"), [
    (["--markdown", "{missing}"], None, "No such file or directory"),
    (["--markdown", "{file}"], b"", "is empty"),
    (["--markdown", "{file}"], b"  \n\n ", "is empty"),
    (["--markdown", "{file}"], b"x" * (200 * 1024 + 1), "is larger than 200 KB"),
    (["--markdown", "{file}"], b"caf\xe9 au lait", "is not UTF-8"),
    (["--markdown", "{file}"], b"<script>alert(1)</script>", "no content once unsafe HTML"),
    (["--markdown", "{file}", "--topics", "ai-policy-and-safety,nope"], b"## Hi",
     "unknown topic 'nope'"),
    (["--markdown", "{file}", "--send-at", "next tuesday"], b"## Hi", "ISO 8601"),
    (["--markdown", "{file}", "--send-at", "2030-01-01T07:00:00"], b"## Hi",
     "timezone offset"),
    (["--markdown", "{file}", "--tier", "vip"], b"## Hi", "'vip' is not one of"),
    (["--markdown", "{file}", "--synthesis", "nope"], b"## Hi", "no published synthesis"),
    ([], None, "an edition needs a body or syntheses"),
])
def test_bad_input_creates_nothing_and_says_why(runner, app, topics, tmp_path, args, data,
                                                message):
    file = write(tmp_path, "in.md", data) if data is not None else ""
    args = [a.format(file=file, missing=tmp_path / "missing.md") for a in args]
    result = runner.invoke(args=["edition", "create", "--subject", "Bad", *args])
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert edition_count() == 0


def test_error_names_the_markdown_file(runner, app, topics, tmp_path):
    path = write(tmp_path, "latin1.md", b"\xff\xfe")
    result = runner.invoke(args=["edition", "create", "--subject", "x", "--markdown", path])
    assert result.exit_code == 1
    assert f"Error: {path}: is not UTF-8 text" in result.output


def test_create_special_service(app, topics):
    edition = create_special("From the admin", "First paragraph *here*.\n\n## Part\n\nMore",
                             topics=["models-and-research"], tier="paid")
    assert edition.preheader == "First paragraph here."
    assert edition.audience == {"topics": ["models-and-research"], "tier": "paid"}
    assert edition.kind == "special" and edition.status == "draft"
    with pytest.raises(InvalidInput) as caught:
        create_special("x", "")
    assert caught.value.for_field("markdown")
    with pytest.raises(InvalidInput) as caught:
        create_special("", "Body", topics=["nope"])
    assert caught.value.for_field("subject") and caught.value.for_field("topics")
    assert edition_count() == 1
    later = datetime.now(UTC) + timedelta(days=1)
    assert create_special("Scheduled", "Body", send_at=later).status == "scheduled"


def test_the_footer_says_only_what_is_true_of_each_reader(app, topics):
    """One rendering serves every reader: it must not tell a reader she chose topics she
    never chose (the edition's audience is two topics; she follows one)."""
    from pathlib import Path

    from tests.support.editions import audience, send, special_edition
    from tests.support.readers import outbox_messages, text_of

    [reader] = audience(1, topics=("ai-policy-and-safety",))
    edition = special_edition(topics=["ai-policy-and-safety", "models-and-research"])
    send(app, edition.id)
    [message] = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    text = " ".join(text_of(message).split())
    html = message.get_body(("html",)).get_content()
    for part in (text, " ".join(html.split())):
        assert "subscribed to AI policy and safety, Models and research" not in part
        assert f"because you subscribed to Modelwire with {reader.email}." in part
        assert ("It is for readers who follow any of: AI policy and safety, Models and "
                "research.") in part
