"""Demo readers, so ``make run`` shows digests going out at readers' own local times."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from newsletter.content.models import Topic
from newsletter.db import db, utcnow
from newsletter.subscribers.addresses import email_hash
from newsletter.subscribers.models import Reader, ReaderStatus
from newsletter.subscribers.service import Actor, ReaderServices, record_event, set_topics

# (address, timezone, minutes after seeding, frequency, format, topics)
DEMO_READERS = (
    ("ada@reader.example", "Europe/London", 3, "daily", "html",
     ("ai-policy-and-safety", "models-and-research")),
    ("grace@reader.example", "America/New_York", 6, "daily", "html",
     ("models-and-research", "ai-policy-and-safety", "chips-and-compute")),
    ("lin@reader.example", "Asia/Shanghai", 9, "daily", "text",
     ("chips-and-compute", "models-and-research")),
    ("sam@reader.example", "UTC", 12, "weekly", "html",
     ("ai-policy-and-safety",)),
)


def seed_demo_readers(services: ReaderServices, now: datetime | None = None) -> int:
    """Add the demo readers who are not there yet (confirmed, with a consent record).

    Their delivery times are a few minutes after ``now`` on their own wall clocks, so a
    freshly started ``make run`` puts their digests in the outbox within a quarter of an
    hour; the weekly one gets hers on today's weekday. Returns how many were added.
    """
    now = now or utcnow()
    topics = {t.slug: t for t in db.session.scalars(select(Topic))}
    existing = set(db.session.scalars(select(Reader.email)))
    added = 0
    for address, tz, minutes, frequency, fmt, slugs in DEMO_READERS:
        if address in existing:
            continue
        local = (now + timedelta(minutes=minutes)).astimezone(ZoneInfo(tz))
        reader = Reader(email=address, email_hash=email_hash(address, services.hash_key),
                        status=ReaderStatus.ACTIVE.value, source="demo", timezone=tz,
                        delivery_minute=local.hour * 60 + local.minute, frequency=frequency,
                        weekly_day=local.weekday(), format=fmt, confirmed_at=now,
                        created_at=now)
        db.session.add(reader)
        db.session.flush()
        set_topics(reader, [topics[s] for s in slugs if s in topics])
        record_event(services, reader, "demo_reader_created", Actor(source="demo"),
                     consent=True)
        added += 1
    db.session.commit()
    return added
