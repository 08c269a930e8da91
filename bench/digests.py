"""Digest composition benchmark: a whole day of the worker's digest job (prints figures).

    .venv/bin/python bench/digests.py [--readers 100000] [--database-url URL]

On a fresh database (SQLite in a temporary folder by default; with ``--database-url`` a
PostgreSQL database of that name is created and dropped, and must not exist): the demo
content, N confirmed readers in 6 timezones at 4 local times each (10 % weekly, 10 % text
only), each following 1 to 3 of the 5 free topics in their own order. Then the digest job
(``compose_due``) runs once a minute for 24 hours of simulated time, exactly as the worker
calls it. Printed: the time of the busy minutes (readers due) and of the idle ones, the
deliveries queued per second, and editions made.

The ceiling, measured in the same run on the same database: one set-based ``fan_out``
(INSERT … SELECT) queueing a delivery for every reader — the fastest way this schema can
queue N deliveries. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ZONES = ("UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
         "Asia/Shanghai")
MINUTES = (7 * 60, 7 * 60 + 5, 7 * 60 + 30, 8 * 60)
FREE_TOPICS = ("ai-policy-and-safety", "models-and-research", "chips-and-compute",
               "ai-business-and-funding", "open-source-ai")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        created = create_pg_database(url)
        try:
            run(Path(tmp), url, args.readers)
        finally:
            if created:
                drop_pg_database(url)


def run(tmp: Path, url: str, n: int) -> None:
    from sqlalchemy import text

    from newsletter.db import db
    from newsletter.delivery.fanout import fan_out
    from newsletter.editions import service as editions
    from newsletter.wiring import mail_setup

    app = make_app(tmp, url)
    start = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    rng = random.Random(5)
    with app.app_context():
        prepare_database(start)
        t0 = time.perf_counter()
        links = add_readers(n, start, rng)
        print(f"setup: {n:,} readers, {links:,} topic links in "
              f"{time.perf_counter() - t0:.1f} s ({db.engine.dialect.name})")

        mail = mail_setup()
        busy, idle, queued, editions_made = digest_day(mail, start)
        busy_s = sum(e for e, _ in busy)
        print(f"compose_due every minute for 24 h: {len(busy)} busy minute(s), "
              f"{len(idle)} idle")
        longest = max(e for e, _ in busy)
        print(f"  queued {queued:,} digests in {editions_made} edition(s); "
              f"busy minutes took {busy_s:.2f} s in all, the longest {longest:.2f} s")
        print(f"  composing: {queued / busy_s:,.0f} deliveries/s "
              f"({busy_s / max(queued, 1) * 1e6:.0f} µs per reader)")
        print(f"  idle minute: median {statistics.median(e for e, _ in idle) * 1000:.1f} ms, "
              f"max {max(e for e, _ in idle) * 1000:.1f} ms")

        # The ceiling: one INSERT … SELECT queueing every reader, on the same database.
        edition = editions.create_edition(subject="Ceiling", body_text="x", body_html="<p>x</p>")
        variants = editions.render_variants(edition, mail)
        t = time.perf_counter()
        count = fan_out(edition.id, kind=edition.kind, html_variant=variants["html"].id,
                        text_variant=variants["text"].id, topic_ids=[], paid_only=False,
                        now=start, today=start.date())
        db.session.commit()
        ceiling = time.perf_counter() - t
        print(f"ceiling: fan_out of {count:,} deliveries in {ceiling:.2f} s = "
              f"{count / ceiling:,.0f} deliveries/s; composing runs at "
              f"{(queued / busy_s) / (count / ceiling):.2f} of it")
        db.session.execute(text("SELECT 1"))


# -- setup, shared with the other benchmarks that need a day's digests (bench/admin_pages.py)

def make_app(tmp: Path, url: str):
    """The app on the database at ``url``, its instance folder in ``tmp``."""
    from newsletter import create_app

    return create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "bench" * 8,
                       "INSTANCE_DIR": str(tmp / "instance"),
                       "BASE_URL": "https://news.example"})


def prepare_database(start: datetime) -> None:
    """The schema (by the migrations) and the demo content published around ``start``
    (in an app context)."""
    from flask_migrate import upgrade

    from newsletter.content.demo import seed_demo

    upgrade()
    seed_demo(now=start + timedelta(hours=6))


def add_readers(n: int, start: datetime, rng: random.Random) -> int:
    """Insert readers 1…N, set-based and committed: confirmed two days before ``start``, in
    6 timezones at 4 local times each (10 % weekly, 10 % text only), each following 1 to 3
    of the 5 free topics in their own order. Returns the number of topic links."""
    from sqlalchemy import insert, select

    from newsletter.content.models import Topic
    from newsletter.db import db
    from newsletter.subscribers.models import Reader, ReaderTopic

    topic_ids = {t.slug: t.id for t in db.session.scalars(select(Topic))}
    rows, links = [], []
    for i in range(1, n + 1):
        rows.append({
            "id": i, "email": f"reader{i}@bench.example", "email_hash": f"{i:064x}",
            "plan": "free", "status": "active", "source": "bench",
            "frequency": "weekly" if i % 10 == 0 else "daily", "weekly_day": 4,
            "delivery_minute": MINUTES[i % len(MINUTES)], "timezone": ZONES[i % len(ZONES)],
            "format": "text" if i % 10 == 5 else "html",
            "created_at": start - timedelta(days=3), "updated_at": start - timedelta(days=3),
            "confirmed_at": start - timedelta(days=2)})
        for position, slug in enumerate(rng.sample(FREE_TOPICS, rng.randint(1, 3)), 1):
            links.append({"reader_id": i, "topic_id": topic_ids[slug],
                          "position": position})
    for chunk in range(0, n, 20_000):
        db.session.execute(insert(Reader), rows[chunk:chunk + 20_000])
    for chunk in range(0, len(links), 50_000):
        db.session.execute(insert(ReaderTopic), links[chunk:chunk + 50_000])
    db.session.commit()
    return len(links)


def digest_day(mail, start: datetime) -> tuple[list, list, int, int]:
    """Run the digest job (``compose_due``) once a minute for 24 hours of simulated time
    from ``start``, exactly as the worker calls it. Returns ``(busy, idle, queued,
    editions made)``: busy and idle are lists of ``(seconds, deliveries queued)`` per
    minute, split by whether any reader was due."""
    from newsletter.delivery.fanout import queue_readers
    from newsletter.editions.digests import compose_due

    busy, idle = [], []
    queued = editions_made = 0
    now = start
    while now < start + timedelta(hours=24):
        t = time.perf_counter()
        result = compose_due(mail, queue=queue_readers, now=now, grace=timedelta(hours=3),
                             slot_minutes=15)
        elapsed = time.perf_counter() - t
        (busy if result.due else idle).append((elapsed, result.queued))
        queued += result.queued
        editions_made += len(result.editions)
        now += timedelta(minutes=1)
    return busy, idle, queued, editions_made


def create_pg_database(url: str) -> bool:
    """Create the PostgreSQL database ``url`` names (it must not exist); False, doing
    nothing, for any other kind of database."""
    if not url.startswith("postgresql"):
        return False
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(base.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def drop_pg_database(url: str) -> None:
    """Drop the database :func:`create_pg_database` made, closing its connections."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(base.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
