"""Building editions and audiences for delivery tests."""

from __future__ import annotations

import threading

from newsletter.db import db
from newsletter.delivery import service as sending
from newsletter.editions import service as editions
from tests.factories import make_synthesis
from tests.factories_readers import make_reader


def audience(n: int, *, prefix: str = "reader", topics=("ai-policy-and-safety",), **fields):
    return [make_reader(email=f"{prefix}{i}@example.com", topics=topics, **fields)
            for i in range(n)]


def special_edition(subject: str = "Breaking: a test edition", n_syntheses: int = 2, **kwargs):
    syntheses = [make_synthesis(title=f"Story {i} for {subject}") for i in range(n_syntheses)]
    edition = editions.create_edition(
        subject=subject, preheader="What happened today",
        sections=[{"title": "AI policy and safety",
                   "synthesis_ids": [s.id for s in syntheses]}], **kwargs)
    db.session.commit()  # create_edition flushes; the use case (here, the test) commits
    return edition


def send(app, edition_id: int, **kwargs):
    """Start (if needed) and send the edition in the foreground, as `newsletter send` does."""
    from newsletter.editions.models import Edition
    from newsletter.wiring import mail_setup, make_sender

    edition = db.session.get(Edition, edition_id)
    db.session.refresh(edition)
    if edition.status in ("draft", "scheduled"):
        sending.start_sending(edition_id, mail_setup())
    sender = make_sender(app, **kwargs)
    progress = sender.run(threading.Event(), edition_id=edition_id)
    db.session.expire_all()
    return progress
