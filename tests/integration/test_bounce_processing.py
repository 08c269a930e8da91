"""The services behind ``bounces process`` and ``/hooks/<provider>``: ``process_messages`` and
``apply_events`` against a real database, without the CLI or HTTP around them."""

from __future__ import annotations

from sqlalchemy import func, select

from newsletter.db import db
from newsletter.delivery.bounces import process_messages
from newsletter.delivery.events import BouncePolicy, Event, apply_events
from newsletter.delivery.models import BounceEvent
from newsletter.subscribers.service import is_suppressed
from newsletter.wiring import services
from tests.integration.test_after_sending import SAMPLES, dsn_for, sent, token_of  # noqa: F401


def test_process_messages_tallies_outcomes_and_skips_what_is_not_a_report(app, sent):  # noqa: F811
    _, _, rows = sent
    parts = services()
    messages = [("first.eml", dsn_for(rows[0])),
                ("reply.eml", (SAMPLES / "personal_reply.eml").read_bytes()),
                ("again.eml", dsn_for(rows[0]))]

    run = process_messages(messages, tokens=parts.delivery_tokens, readers=parts.readers,
                           policy=BouncePolicy.from_config(app.config))

    assert run.tally == {"hard_bounce": 1, "skipped": 1, "duplicate": 1}
    assert [line.split(": ")[:2] for line in run.skipped] == [["reply.eml", "skipped"]]
    assert run.summary == "3 message(s): 1 duplicate, 1 hard_bounce, 1 skipped"
    assert is_suppressed(parts.readers, rows[0].email)
    assert db.session.scalar(select(func.count(BounceEvent.id))) == 1


def test_process_messages_with_nothing_to_read(app):
    parts = services()
    run = process_messages([], tokens=parts.delivery_tokens, readers=parts.readers,
                           policy=BouncePolicy.from_config(app.config))
    assert (run.summary, run.skipped) == ("0 message(s): nothing", [])


def test_apply_events_gives_one_outcome_per_event_in_order(app, sent):  # noqa: F811
    _, _, rows = sent
    parts = services()
    events = [Event("mailgun", "e1", "hard_bounce", token=token_of(rows[1])),
              Event("mailgun", "e1", "hard_bounce", token=token_of(rows[1])),
              Event("mailgun", "e2", "delivered", token=token_of(rows[2])),
              Event("mailgun", "e3", "soft_bounce")]

    outcomes = apply_events(events, tokens=parts.delivery_tokens, readers=parts.readers,
                            policy=BouncePolicy.from_config(app.config))

    assert outcomes == ["hard_bounce", "duplicate", "ignored", "unmatched"]
    assert is_suppressed(parts.readers, rows[1].email)
    assert not is_suppressed(parts.readers, rows[2].email)
