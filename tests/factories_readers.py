"""Readers for tests, made through the service so they look like real ones."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.content.models import Topic
from newsletter.db import db, utcnow
from newsletter.subscribers.models import Reader, ReaderTopic


def make_reader(email: str = "ada@example.com", status: str = "active",
                topics: tuple[str, ...] = ("ai-policy-and-safety", "models-and-research"),
                **fields) -> Reader:
    from newsletter.subscribers.addresses import email_hash
    from newsletter.wiring import reader_services

    reader = Reader(email=email, email_hash=email_hash(email, reader_services().hash_key),
                    status=status, confirmed_at=utcnow() if status == "active" else None,
                    **fields)
    db.session.add(reader)
    db.session.flush()
    for position, slug in enumerate(topics, start=1):
        topic = db.session.scalar(select(Topic).where(Topic.slug == slug))
        db.session.add(ReaderTopic(reader_id=reader.id, topic_id=topic.id, position=position))
    db.session.commit()
    return reader


def links():
    from newsletter.wiring import reader_services

    return reader_services().mailer.links
