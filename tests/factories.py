"""Small builders for test data; each returns committed rows."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from newsletter.content.models import Topic
from newsletter.content.service import ingest
from newsletter.db import db, utcnow

DATA = Path(__file__).parent / "data"
_seq = itertools.count(1)


def sample_payload() -> dict[str, Any]:
    """The published sample synthesis (../shared/samples) as an API payload."""
    return json.loads((DATA / "sample_synthesis.json").read_text(encoding="utf-8"))


def make_topic(slug: str = "ai-policy-and-safety", name: str = "AI policy and safety",
               premium: bool = False, position: int | None = None,
               description: str = "") -> Topic:
    topic = Topic(slug=slug, name=name, premium=premium, description=description,
                  position=next(_seq) if position is None else position)
    db.session.add(topic)
    db.session.commit()
    return topic


def synthesis_payload(**overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    payload = {
        "external_id": f"ext-{n}",
        "title": f"Synthesis number {n}",
        "summary": f"Summary of synthesis {n}.",
        "context": "Some context.",
        "analysis": "An analyst take.",
        "watch": "Watch whether something happens.",
        "mentions": ["Example Org"],
        "byline": "Modelwire Editorial",
        "source_name": "Example News",
        "source_url": f"https://news.example/{n}",
        "topics": ["ai-policy-and-safety"],
        "published_at": (utcnow() - timedelta(hours=n % 48 + 1)).isoformat(),
    }
    payload.update(overrides)
    return payload


def make_synthesis(listed_at: datetime | None = None, **overrides: Any):
    """A synthesis through the real ingest. With ``published_at`` given, it counts as listed
    (visible to readers) at that time, as if ingested then; ``listed_at`` overrides that
    (a back-dated or late one)."""
    synthesis = ingest(synthesis_payload(**overrides)).synthesis
    when = listed_at or (synthesis.published_at if "published_at" in overrides else None)
    if when is not None and synthesis.listed_at is not None:
        synthesis.listed_at = when
        db.session.commit()
    return synthesis
