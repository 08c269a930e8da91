"""Admin pages benchmark: how fast the admin area answers at a realistic scale (prints figures).

    .venv/bin/python bench/admin_pages.py [--readers 100000] [--repeat 5] [--database-url URL]

On a fresh database (SQLite in a temporary folder by default; with ``--database-url`` a
PostgreSQL database of that name is created and dropped, and must not exist), built with
bench/digests.py's setup functions: the demo content and N readers made set-based, given a
history (joined evenly over two years, 2 % left during the last 30 days, with their consent
events), then one simulated day of the digest job — the last Friday before today (UTC), the
weekly readers' day — which makes ~1,400 digest editions and ~N deliveries. Then, set-based:
5 % of readers paying; every digest sent, 2 % bounced (with a bounce event), 1 % deferred; a
special edition to every active reader, started by ``start_sending`` as the admin area
starts one, sent over the last 10 minutes (same shares bounced and deferred), opened by 30 %
(people) and 10 % (machines), clicked by 5 %, a few complaints, with its tracking events.

An owner signs in through the Flask test client (the CSRF token read from the login form)
and each page is asked for once to warm up, then ``--repeat`` times: printed are the
median and the slowest answer, and the median as a multiple of the ceiling. Every answer
must be 200 (checked; timings are not). ``/admin/readers`` is measured when the app has
that route (newsletter/web/admin/readers.py).

The ceiling, measured in the same run through the same client: ``GET /healthz``, a request
that does no work beyond ``SELECT 1`` — what sign-in, routing and the test client cost.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from digests import (  # noqa: E402 - bench-local import
    add_readers,
    create_pg_database,
    digest_day,
    drop_pg_database,
    make_app,
    prepare_database,
)

OWNER = "owner@bench.example"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway database
HISTORY_DAYS = 730   # readers joined evenly over two years
LEFT_EVERY = 1500    # 1 in LEFT_EVERY readers left on each of the last 30 days: 2 %
SPECIAL_LINKS = 6
WEEKLY_DAY = 4       # the weekly readers' day in bench/digests.py: Friday
HEALTH_REPEAT = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed requests per page, after one to warm up")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        created = create_pg_database(url)
        try:
            run(Path(tmp), url, args.readers, args.repeat)
        finally:
            if created:
                drop_pg_database(url)


def run(tmp: Path, url: str, n: int, repeat: int) -> None:
    from sqlalchemy import text

    from newsletter.accounts.admins import create_admin
    from newsletter.db import db, utcnow
    from newsletter.wiring import mail_setup

    app = make_app(tmp, url)
    now = utcnow()
    # The last whole Friday (UTC) before today: the weekly readers' day (weekly_day 4), as
    # in bench/digests.py, and inside the dashboard's 7-day and 30-day windows.
    day = now.date() - timedelta(days=(now.weekday() - WEEKLY_DAY - 1) % 7 + 1)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    t0 = time.perf_counter()
    with app.app_context():
        prepare_database(start)
        add_readers(n, start, random.Random(5))
        _reader_history(n, start, now)
        busy, _, queued, _ = digest_day(mail_setup(), start)
        db.session.execute(text("UPDATE readers SET plan = 'paid' WHERE id % 20 = 3"))
        db.session.commit()
        special, special_count = _special_edition(mail_setup(), now)
        _outcomes(special, now)
        figures = _figures(special)
        create_admin(OWNER, PASSWORD, "owner")
        digest_day_shown = _digest_day_shown()
        dialect = db.engine.dialect.name
        db.session.remove()
    setup_s = time.perf_counter() - t0
    print(f"setup ({dialect}) in {setup_s:.0f} s: {n:,} readers "
          f"({figures['active']:,} active, {figures['paid']:,} paying, "
          f"{figures['left']:,} left in the last 30 days), "
          f"{figures['consent']:,} consent events")
    print(f"  digest day: {queued:,} digests queued in {figures['digests']:,} editions "
          f"({len(busy)} busy minutes); special edition {special}: "
          f"{special_count:,} deliveries")
    print(f"  {figures['editions']:,} editions, {figures['deliveries']:,} deliveries "
          f"({figures['sent']:,} sent, {figures['bounced']:,} bounced, "
          f"{figures['deferred']:,} deferred), {figures['tracking']:,} tracking events, "
          f"{figures['bounce_events']:,} bounce events")

    client = app.test_client()
    _sign_in(client)
    pages = [
        "/admin/", "/admin/charts/readers.svg", "/admin/charts/joined-left.svg",
        "/admin/charts/topics.svg", "/admin/editions",
        f"/admin/editions/digests/{digest_day_shown}", f"/admin/editions/{special}",
        f"/admin/editions/{special}/progress.json", "/admin/content",
        "/admin/content?q=model", "/admin/topics",
    ]
    if any(rule.rule == "/admin/readers" for rule in app.url_map.iter_rules()):
        pages += ["/admin/readers", "/admin/readers?q=example"]
    else:
        print("  (/admin/readers: no such route in this app, not measured)")

    ceiling = _timed(client, "/healthz", HEALTH_REPEAT)
    ceiling_ms = statistics.median(ceiling)
    print()
    print(f"{'page':<40} {'median ms':>10} {'max ms':>9} {'× ceiling':>10}")
    print(f"{'GET /healthz (the ceiling)':<40} {ceiling_ms:>10.1f} {max(ceiling):>9.1f} "
          f"{1:>10.1f}")
    for page in pages:
        times = _timed(client, page, repeat)
        median = statistics.median(times)
        print(f"{'GET ' + page:<40} {median:>10.1f} {max(times):>9.1f} "
              f"{median / ceiling_ms:>10.0f}")
    print(f"({repeat} timed requests per page after one to warm up; the ceiling "
          f"{HEALTH_REPEAT})")


def _reader_history(n: int, start: datetime, now: datetime) -> None:
    """Spread the readers' joining over :data:`HISTORY_DAYS` (reader 1 first, the newest
    two days before ``start``), make 1 in :data:`LEFT_EVERY` leave on each of the last 30
    days, and add their consent events (subscribe, confirm, unsubscribe) — all set-based."""
    from sqlalchemy import bindparam, text

    from newsletter.db import UTCDateTime, db

    stamp = UTCDateTime()
    per_day = max(1, -(-n // HISTORY_DAYS))
    joined = text("UPDATE readers SET created_at = :created, updated_at = :at, "
                  "confirmed_at = :at WHERE id > :lo AND id <= :hi").bindparams(
        bindparam("created", type_=stamp), bindparam("at", type_=stamp))
    for day in range(HISTORY_DAYS):
        hi = n - day * per_day
        if hi <= 0:
            break
        at = start - timedelta(days=2 + day, hours=day % 12)
        db.session.execute(joined, {"created": at - timedelta(minutes=7), "at": at,
                                    "lo": hi - per_day, "hi": hi})
    left = text("UPDATE readers SET status = 'unsubscribed', unsubscribed_at = :at, "
                "updated_at = :at WHERE id % :every = :day").bindparams(
        bindparam("at", type_=stamp))
    for day in range(30):
        db.session.execute(left, {"at": now - timedelta(days=day, hours=3),
                                  "every": LEFT_EVERY, "day": day})
    detail = "CAST('{}' AS JSON)" if db.engine.dialect.name == "postgresql" else "'{}'"
    for kind, column, where in (("subscribe", "created_at", ""),
                                ("confirm", "confirmed_at", ""),
                                ("unsubscribe", "unsubscribed_at",
                                 "WHERE unsubscribed_at IS NOT NULL")):
        db.session.execute(text(
            f"INSERT INTO consent_events (reader_id, kind, source, occurred_at, detail) "
            f"SELECT id, '{kind}', 'form', {column}, {detail} FROM readers {where}"))
    db.session.commit()


def _special_edition(mail, now: datetime) -> tuple[int, int]:
    """A special edition to every reader, started as the admin area starts one; returns
    its id and the deliveries queued."""
    from newsletter.delivery.service import start_sending
    from newsletter.editions import service as editions

    links = "".join(f'<li><a href="https://research.example/paper/{i}">Paper {i}</a></li>'
                    for i in range(1, SPECIAL_LINKS + 1))
    edition = editions.create_edition(
        subject="The year in models", body_html=f"<p>What changed this year.</p><ul>{links}</ul>",
        body_text="What changed this year.\n" + "\n".join(
            f"https://research.example/paper/{i}" for i in range(1, SPECIAL_LINKS + 1)))
    count = start_sending(edition.id, mail, now=now - timedelta(minutes=10))
    return edition.id, count


def _outcomes(special: int, now: datetime) -> None:
    """What the workers and the readers would have done, set-based: digests sent the
    minute they were queued, the special over the last 10 minutes; 2 % bounced, 1 %
    deferred; opens, clicks and complaints for the special with their events."""
    from sqlalchemy import bindparam, text

    from newsletter.db import UTCDateTime, db

    stamp = UTCDateTime()

    def execute(sql: str, **params) -> None:
        statement = text(sql)
        times = [name for name, value in params.items() if isinstance(value, datetime)]
        if times:
            statement = statement.bindparams(*(bindparam(t, type_=stamp) for t in times))
        db.session.execute(statement, params)

    execute("UPDATE deliveries SET status = 'sent', attempts = 1, sent_at = created_at, "
        "relay_reply = '250 2.0.0 OK queued' WHERE status = 'queued' AND edition_id <> :e",
        e=special)
    for minute in range(10):
        execute("UPDATE deliveries SET status = 'sent', attempts = 1, sent_at = :at, "
            "relay_reply = '250 2.0.0 OK queued' "
            "WHERE edition_id = :e AND status = 'queued' AND id % 10 = :m",
            e=special, m=minute, at=now - timedelta(minutes=9 - minute, seconds=30))
    execute("UPDATE deliveries SET status = 'bounced', relay_reply = NULL, "
        "last_error = '550 5.1.1 <reader@bench.example>: Recipient address rejected' "
        "WHERE id % 50 = 17")
    execute("UPDATE deliveries SET status = 'deferred', attempts = 1, sent_at = NULL, "
        "relay_reply = NULL, next_attempt_at = :at, "
        "last_error = '451 4.7.1 Greylisted, try again later' WHERE id % 100 = 42",
        at=now + timedelta(minutes=10))
    execute("INSERT INTO bounce_events (email_hash, delivery_id, kind, source, occurred_at, "
        "detail) SELECT r.email_hash, d.id, 'hard_bounce', 'smtp', :at, d.last_error "
        "FROM deliveries d JOIN readers r ON r.id = d.reader_id WHERE d.status = 'bounced'",
        at=now - timedelta(minutes=5))
    sent = "FROM deliveries WHERE edition_id = :e AND status = 'sent'"
    for which, machine in (("id % 10 < 3", False), ("id % 10 = 3", True)):
        agent = "Barracuda scanner" if machine else "Mozilla/5.0 (Macintosh) Mail"
        execute(f"INSERT INTO tracking_events (delivery_id, kind, machine, occurred_at, "
            f"user_agent) SELECT id, 'open', :machine, :at, '{agent}' {sent} AND {which}",
            e=special, machine=machine, at=now - timedelta(minutes=4))
        execute(f"UPDATE deliveries SET opens = opens + 1, first_opened_at = :at"
            f"{', machine_opens = machine_opens + 1' if machine else ''} "
            f"WHERE edition_id = :e AND status = 'sent' AND {which}",
            e=special, at=now - timedelta(minutes=4))
    execute(f"INSERT INTO tracking_events (delivery_id, kind, link, machine, occurred_at, "
        f"user_agent) SELECT id, 'click', (id / 20) % :links + 1, :machine, :at, "
        f"'Mozilla/5.0 (Macintosh) Mail' {sent} AND id % 20 = 0",
        e=special, links=SPECIAL_LINKS, machine=False, at=now - timedelta(minutes=3))
    execute("UPDATE deliveries SET clicks = clicks + 1, first_clicked_at = :at "
        "WHERE edition_id = :e AND status = 'sent' AND id % 20 = 0",
        e=special, at=now - timedelta(minutes=3))
    execute("INSERT INTO bounce_events (email_hash, delivery_id, kind, source, occurred_at, "
        "detail) SELECT r.email_hash, d.id, 'complaint', 'arf', :at, 'abuse' "
        "FROM deliveries d JOIN readers r ON r.id = d.reader_id "
        "WHERE d.edition_id = :e AND d.status = 'sent' AND d.id % 1000 = 7",
        e=special, at=now - timedelta(minutes=2))
    db.session.commit()


def _figures(special: int) -> dict[str, int]:
    from sqlalchemy import text

    from newsletter.db import db

    def one(sql: str) -> int:
        return db.session.scalar(text(sql), {"e": special}) or 0

    return {
        "active": one("SELECT count(*) FROM readers WHERE status = 'active'"),
        "paid": one("SELECT count(*) FROM readers WHERE plan = 'paid'"),
        "left": one("SELECT count(*) FROM readers WHERE status = 'unsubscribed'"),
        "consent": one("SELECT count(*) FROM consent_events"),
        "editions": one("SELECT count(*) FROM editions"),
        "digests": one("SELECT count(*) FROM editions WHERE kind = 'digest'"),
        "deliveries": one("SELECT count(*) FROM deliveries"),
        "sent": one("SELECT count(*) FROM deliveries WHERE status = 'sent'"),
        "bounced": one("SELECT count(*) FROM deliveries WHERE status = 'bounced'"),
        "deferred": one("SELECT count(*) FROM deliveries WHERE status = 'deferred'"),
        "tracking": one("SELECT count(*) FROM tracking_events"),
        "bounce_events": one("SELECT count(*) FROM bounce_events"),
    }


def _digest_day_shown() -> str:
    """The day (YYYY-MM-DD) the digest editions were made on: today, unless the run
    crossed midnight (then the day with most of them)."""
    from sqlalchemy import select

    from newsletter.db import db
    from newsletter.editions.models import Edition

    days = Counter(created.date() for created in db.session.scalars(
        select(Edition.created_at).where(Edition.kind == "digest")))
    return days.most_common(1)[0][0].isoformat()


def _sign_in(client) -> None:
    import re

    html = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token, "no CSRF token on /admin/login"
    answer = client.post("/admin/login", data={"email": OWNER, "password": PASSWORD,
                                               "csrf_token": token.group(1)})
    assert answer.status_code == 302, f"sign-in answered {answer.status_code}"
    assert client.get("/admin/").status_code == 200, "not signed in"


def _timed(client, path: str, repeat: int) -> list[float]:
    """Milliseconds per answer, ``repeat`` times after one request to warm up; every
    answer must be 200."""
    times = []
    for i in range(repeat + 1):
        t = time.perf_counter()
        answer = client.get(path)
        elapsed = (time.perf_counter() - t) * 1000
        assert answer.status_code == 200, f"GET {path} answered {answer.status_code}"
        if i:
            times.append(elapsed)
    return times


if __name__ == "__main__":
    main()
