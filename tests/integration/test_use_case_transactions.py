"""A use case owns its transaction (issue 27): a crash at any commit leaves nothing
half-made — the special edition with its Markdown and its request's fingerprint, the
admin's draft with its Markdown, the complaint that suppresses and unsubscribes.

A crash is simulated at each commit the use case makes in turn (the n-th commit raises
and the transaction is rolled back, as a killed process would leave it); afterwards the
database holds either the whole result or none of it.
"""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import select

from newsletter.db import db, utcnow
from newsletter.editions.models import Edition
from newsletter.subscribers.models import Reader, Suppression
from tests.factories_readers import make_reader


class Crash(Exception):
    pass


@pytest.fixture
def crash_at(monkeypatch):
    """``crash_at(n)``: the n-th commit from now raises (rolled back); the count of commits
    seen is returned by the fixture's ``seen`` attribute."""
    real = db.session.commit

    class Arm:
        seen = 0
        at = None

        def __call__(self, n: int) -> None:
            self.at, self.seen = n, 0

    arm = Arm()

    def commit():
        arm.seen += 1
        if arm.at is not None and arm.seen == arm.at:
            db.session.rollback()
            raise Crash(f"crash at commit {arm.seen}")
        real()

    monkeypatch.setattr(db.session, "commit", commit)
    return arm


def editions() -> list[Edition]:
    db.session.expire_all()
    return list(db.session.scalars(select(Edition)))


PAYLOAD = {"subject": "Breaking: chips", "markdown": "The first paragraph.\n\nMore.",
           "topics": [], "tier": "all"}


def test_a_crash_while_an_api_edition_is_made_leaves_all_or_nothing(app, topics, crash_at):
    from newsletter.editions.intake import KeyReused, create_requested

    for n in (1, 2, 3):
        crash_at(n)
        with contextlib.suppress(Crash):
            create_requested(PAYLOAD, now=utcnow(), recipients=lambda e: 1,
                             idempotency_key=f"key-{n}")
        for edition in editions():
            assert edition.content.get("markdown") == PAYLOAD["markdown"], n
            assert edition.content.get("request_sha256"), n
    crash_at(None)
    # The key of a crashed attempt, reused with another body, is a new request (nothing
    # was stored for it), never a silent replay of a half-made edition.
    other = {**PAYLOAD, "subject": "Another body"}
    for n in (1, 2, 3):
        try:
            edition, created = create_requested(other, now=utcnow(), recipients=lambda e: 1,
                                                 idempotency_key=f"key-{n}")
        except KeyReused:
            continue  # the first attempt was stored whole: the key is taken, and says so
        assert created and edition.subject == "Another body", n


def test_a_crash_while_a_draft_is_saved_leaves_all_or_nothing(app, topics, crash_at):
    from newsletter.editions.drafts import save_draft

    for n in (1, 2):
        crash_at(n)
        with contextlib.suppress(Crash):
            save_draft(None, subject=f"Draft {n}", preheader="", markdown="Body *here*.",
                       synthesis_ids=[], topics=[])
    for edition in editions():
        assert edition.content.get("markdown") == "Body *here*.", edition.subject


def test_the_command_line_keeps_the_markdown_source_of_an_edition(app, topics, runner,
                                                                  tmp_path):
    source = tmp_path / "edition.md"
    source.write_text("The first paragraph.\r\n\r\n## Part\r\n\r\nMore.", encoding="utf-8")
    result = runner.invoke(args=["edition", "create", "--subject", "From the CLI",
                                 "--markdown", str(source)])
    assert result.exit_code == 0, result.output
    [edition] = editions()
    assert edition.content["markdown"] == "The first paragraph.\n\n## Part\n\nMore."


def test_a_crash_in_a_complaint_leaves_it_to_be_read_again_whole(app, topics, crash_at):
    from newsletter.delivery.events import COMPLAINT, BouncePolicy, Event, handle
    from newsletter.wiring import reader_services, services

    reader = make_reader("ada@example.com")
    readers = reader_services()
    # A complaint about account mail we sent: its token is the proof.
    event = Event(source="arf", event_id="complaint-1", kind=COMPLAINT,
                  token=readers.mailer.account_tokens.make_token(reader.id),
                  recipient="ada@example.com", detail="abuse report")

    def run():
        return handle(event, tokens=services().delivery_tokens, services=readers,
                      policy=BouncePolicy.from_config(app.config))

    for n in (1, 2):
        crash_at(n)
        with contextlib.suppress(Crash):
            run()
        db.session.expire_all()
        suppressed = db.session.scalar(select(Suppression.id).where(
            Suppression.email_hash == reader.email_hash)) is not None
        left = db.session.get(Reader, reader.id).status == "unsubscribed"
        assert suppressed == left, f"crash at commit {n}: suppressed={suppressed}, left={left}"
    crash_at(None)
    assert run() in (COMPLAINT, "duplicate")
    db.session.expire_all()
    assert db.session.get(Reader, reader.id).status == "unsubscribed"
