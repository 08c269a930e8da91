"""The demo publication: topics and syntheses written for this project (fictional outlets)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from newsletter.content.models import Synthesis, Topic
from newsletter.content.service import IngestOutcome, ingest
from newsletter.db import db, utcnow

DEMO_FILE = Path(__file__).with_name("demo_content.json")


def load_demo_data() -> dict:
    return json.loads(DEMO_FILE.read_text(encoding="utf-8"))


def ensure_topics(topics: list[dict]) -> int:
    """Create the topics that do not exist yet (matched by slug); returns how many were made."""
    existing = set(db.session.scalars(select(Topic.slug)))
    made = 0
    for item in topics:
        if item["slug"] in existing:
            continue
        db.session.add(Topic(slug=item["slug"], name=item["name"],
                             description=item.get("description", ""),
                             premium=bool(item.get("premium")), position=item["position"]))
        made += 1
    db.session.commit()
    return made


def seed_demo(now: datetime | None = None) -> dict[str, int]:
    """Load the demo topics and syntheses, dated relative to ``now``; safe to run again."""
    now = now or utcnow()
    data = load_demo_data()
    counts = {"topics": ensure_topics(data["topics"]), "created": 0, "updated": 0,
              "unchanged": 0}
    for item in data["syntheses"]:
        payload = {k: v for k, v in item.items() if k != "hours_ago"}
        payload["published_at"] = (now - timedelta(hours=item["hours_ago"])).isoformat()
        result = ingest(payload)
        if result.outcome is IngestOutcome.CREATED:
            # Demo pieces count as listed when they were "published", hours ago, so the
            # demo readers' first digests hold the last day's, not all of them.
            result.synthesis.listed_at = result.synthesis.published_at
            db.session.commit()
        outcome = result.outcome
        counts[outcome.value if outcome is not IngestOutcome.CREATED else "created"] += 1
    return counts


def database_is_empty() -> bool:
    return not db.session.scalar(select(func.count(Synthesis.id)))
