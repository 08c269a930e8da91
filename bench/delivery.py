"""Delivery benchmark: a real digest sent to N readers through the real sender (prints figures).

    .venv/bin/python bench/delivery.py [--readers 100000] [--connections 8]
        [--fanout-readers 1000000] [--database-url postgresql+psycopg://postgres@127.0.0.1/x]
        [--skip-fanout] [--quick] [--ceiling-messages 20000] [--max-send-seconds S]
        [--profile]

One run measures, on a fresh database (SQLite in a temporary folder by default; with
``--database-url`` a PostgreSQL database of that name is created and dropped, and must not
exist):

* sending an edition of 3 topics x 5 syntheses (the demo content, tracking on) to N readers
  through ``make_sender(app).run(...)`` over ``--connections`` SMTP connections to a counting
  aiosmtpd sink in a process of its own: messages/s from the first claim to the last
  outcome, CPU time of the sending process per message, peak RSS — once with DKIM on, once
  with DKIM off (two editions in the same database, each sent to all N readers), and once
  with DKIM on to N/5 readers (a third edition whose audience is a topic every fifth reader
  follows). Each send runs in a fresh process of its own, so CPU time and peak RSS are that
  send's alone;
* the ceiling: plain smtplib sending one real composed message (DKIM on) over the same
  number of persistent connections to the same sink, in a process of its own;
* the fan-out of an edition to ``--fanout-readers`` readers on SQLite (a separate database;
  only the ``fan_out`` statement is timed).

Targets (2-core machine) are printed next to the figures as PASS/MISS; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smtp_sink import SmtpSink  # noqa: E402 - the helper beside this file

# Three topics with five demo syntheses each (a synthesis appears in one section only).
DIGEST_TOPICS = ("ai-policy-and-safety", "models-and-research", "ai-business-and-funding")
FIFTH_TOPIC = "open-source-ai"       # followed by every fifth reader: the N/5 audience
HALF_TOPIC = "chips-and-compute"
PER_TOPIC = 5
ENVELOPE_FROM = "bounces@news.example"

TARGET_RATIO = 0.95
TARGET_CPU_MS = 1.0
TARGET_RSS_MB = 150.0
RSS_GROWTH_TOLERANCE = 0.05   # "no growth": peak(N) within 5 % of peak(N/5)
TARGET_FANOUT_S = 10.0
TARGET_FANOUT_READERS = 1_000_000


# -- the application and its database -------------------------------------------------------

def app_config(tmp: Path, database_url: str, secret: str, *, smtp_port: int = 25,
               connections: int = 8, dkim_key: Path | None = None) -> dict[str, Any]:
    return {
        "DEBUG": False,
        "POSTAL_ADDRESS": "Modelwire Ltd, 10 Bench Lane, London N1 9GU, UK",
        "TESTING": False,
        "SECRET_KEY": secret,
        "SECRET_KEYS": None,
        "SUPPRESSION_KEY": None,
        "DATABASE_URL": database_url,
        "INSTANCE_DIR": str(tmp / "instance"),
        "OUTBOX_DIR": str(tmp / "outbox"),
        "BASE_URL": "https://news.example",
        "PUBLICATION_NAME": "Modelwire",
        "MAIL_FROM": "Modelwire <newsletter@news.example>",
        "MAIL_DOMAIN": None,
        "BOUNCE_DOMAIN": None,
        "MAIL_TRANSPORT": "smtp",
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "SEND_CONNECTIONS": connections,
        "TRACKING": True,
        "DKIM_SELECTOR": "bench" if dkim_key else None,
        "DKIM_DOMAIN": "news.example" if dkim_key else None,
        "DKIM_PRIVATE_KEY_PATH": str(dkim_key) if dkim_key else None,
    }


def make_app(config: dict[str, Any]):
    from newsletter import create_app

    return create_app(config)


def migrate(app) -> None:
    from flask_migrate import upgrade

    from newsletter.db import db

    with app.app_context():
        upgrade()
        db.engine.dispose()


@contextmanager
def scratch_database(url: str | None, tmp: Path, name: str):
    """A fresh database: a SQLite file in ``tmp``, or the PostgreSQL database named in
    ``url``, created here (refused if it exists) and dropped afterwards."""
    if url is None:
        yield f"sqlite:///{tmp / name}"
        return
    from sqlalchemy import create_engine, make_url, text

    target = make_url(url)
    if not target.drivername.startswith("postgresql") or not target.database:
        raise SystemExit("--database-url must be postgresql+psycopg://user@host:port/<db>")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    quoted = '"' + target.database.replace('"', '""') + '"'
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": target.database}).first()
        if exists:
            raise SystemExit(f"database {target.database!r} exists; the benchmark only uses a "
                             "database it creates (drop it or name another)")
        conn.execute(text(f"CREATE DATABASE {quoted}"))
    try:
        yield target.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        admin.dispose()


def seed_content(app) -> list[dict[str, Any]]:
    """The demo topics and, for each digest topic, its five demo syntheses; returns sections."""
    from sqlalchemy import select

    from newsletter.content.demo import ensure_topics, load_demo_data
    from newsletter.content.models import Topic
    from newsletter.content.service import ingest
    from newsletter.db import db, utcnow

    data = load_demo_data()
    now = utcnow()
    with app.app_context():
        ensure_topics(data["topics"])
        names = {t.slug: t.name for t in db.session.scalars(select(Topic))}
        sections, used = [], set()
        for slug in DIGEST_TOPICS:
            items = [s for s in data["syntheses"]
                     if slug in s["topics"] and s["external_id"] not in used][:PER_TOPIC]
            used.update(s["external_id"] for s in items)
            if len(items) < PER_TOPIC:
                raise SystemExit(f"the demo content has fewer than {PER_TOPIC} syntheses "
                                 f"for {slug}")
            ids = []
            for item in items:
                payload = {k: v for k, v in item.items() if k != "hours_ago"}
                payload["published_at"] = (now - timedelta(hours=item["hours_ago"])).isoformat()
                ids.append(ingest(payload).synthesis.id)
            sections.append({"title": names[slug], "synthesis_ids": ids})
        return sections


def topic_ids(app) -> dict[str, int]:
    from sqlalchemy import select

    from newsletter.content.models import Topic
    from newsletter.db import db

    with app.app_context():
        return {t.slug: t.id for t in db.session.scalars(select(Topic))}


def _reader_row(i: int, key: bytes, now: datetime) -> dict[str, Any]:
    from newsletter.subscribers.addresses import email_hash

    email = f"reader{i:07d}@example.com"
    return {"email": email, "email_hash": email_hash(email, key), "plan": "free",
            "status": "active", "source": "import", "frequency": "daily", "weekly_day": 0,
            "delivery_minute": 420, "timezone": "UTC", "format": "html",
            "created_at": now, "updated_at": now, "confirmed_at": now}


def _follow_sql(topics: dict[str, int]) -> list[str]:
    """reader_topics rows by reader id: one digest topic each (id mod 3), the "half" topic
    for even ids, the "fifth" topic for ids divisible by 5 (the N/5 audience)."""
    digest = [topics[slug] for slug in DIGEST_TOPICS]
    return [
        "INSERT INTO reader_topics (reader_id, topic_id, position) "
        f"SELECT id, CASE id % 3 WHEN 0 THEN {digest[0]} WHEN 1 THEN {digest[1]} "
        f"ELSE {digest[2]} END, 0 FROM readers",
        "INSERT INTO reader_topics (reader_id, topic_id, position) "
        f"SELECT id, {topics[HALF_TOPIC]}, 1 FROM readers WHERE id % 2 = 0",
        "INSERT INTO reader_topics (reader_id, topic_id, position) "
        f"SELECT id, {topics[FIFTH_TOPIC]}, 2 FROM readers WHERE id % 5 = 0",
    ]


def insert_readers(app, n: int, batch: int = 10_000) -> float:
    """N active readers (Core executemany in batches) and the topics they follow; seconds."""
    from sqlalchemy import insert, text

    from newsletter.db import db
    from newsletter.subscribers.models import Reader
    from newsletter.wiring import reader_services

    topics = topic_ids(app)
    with app.app_context():
        key = reader_services().hash_key
        start = time.perf_counter()
        now = datetime.now(UTC)
        with db.engine.begin() as conn:
            statement = insert(Reader.__table__)
            for first in range(0, n, batch):
                conn.execute(statement, [_reader_row(i, key, now)
                                         for i in range(first, min(first + batch, n))])
            for sql in _follow_sql(topics):
                conn.execute(text(sql))
        elapsed = time.perf_counter() - start
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        db.engine.dispose()
    return elapsed


def create_edition(app, sections, topics: tuple[str, ...], subject: str) -> int:
    from newsletter.db import db
    from newsletter.editions import service as editions

    with app.app_context():
        edition = editions.create_edition(
            subject=subject, preheader="Three topics, fifteen syntheses", sections=sections,
            topics=list(topics), tracking=True, kind="digest")
        edition_id = edition.id
        db.session.remove()
    return edition_id


def start_edition(app, edition_id: int) -> tuple[int, float, int]:
    """``start_sending`` (render once per variant + fan-out); (queued, seconds, HTML bytes)."""
    from sqlalchemy import select

    from newsletter.db import db
    from newsletter.delivery import service as sending
    from newsletter.editions.models import EditionVariant
    from newsletter.wiring import mail_setup

    with app.app_context():
        start = time.perf_counter()
        queued = sending.start_sending(edition_id, mail_setup())
        elapsed = time.perf_counter() - start
        html = db.session.scalar(select(EditionVariant.html).where(
            EditionVariant.edition_id == edition_id, EditionVariant.key == "html"))
        if isinstance(html, str):
            html = json.loads(html)
        html_bytes = sum(len(s.encode()) for s in html["literals"])
        db.session.remove()
        db.engine.dispose()
    return queued, elapsed, html_bytes


# -- processes of their own: a send, the ceiling ---------------------------------------------

def _rss_now_kb() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _profile_threads(profiles: list) -> None:
    """cProfile every thread started from now on (one profiler per thread, timed by the
    thread's own CPU clock: the figures are CPU seconds, not wall time)."""
    import cProfile

    def boot(frame, event, arg):
        sys.setprofile(None)
        profiler = cProfile.Profile(time.thread_time)
        profiles.append((threading.current_thread().name, profiler))
        profiler.enable()

    threading.setprofile(boot)


def _profile_report(profiles: list, main_profile) -> str:
    import io
    import pstats

    out = io.StringIO()
    groups: dict[str, list] = {"relay connections": [], "outcome writer": []}
    for name, profiler in profiles:
        key = "outcome writer" if name == "outcome-writer" else "relay connections"
        if name.startswith("relay-") or name == "outcome-writer":
            groups[key].append(profiler)
    groups["claimer (calling thread)"] = [main_profile]
    for title, profilers in groups.items():
        if not profilers:
            continue
        stats = pstats.Stats(profilers[0], stream=out)
        for extra in profilers[1:]:
            stats.add(extra)
        out.write(f"\n==== cProfile, {title} ({len(profilers)} thread(s)), "
                  "top 25 by cumulative CPU time ====\n")
        stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def _send_child(spec: dict[str, Any], conn) -> None:
    """One send in a fresh process: make_sender + run; reports time, CPU, RSS."""
    import resource

    from sqlalchemy import func, select

    from newsletter.db import db, utcnow
    from newsletter.delivery.models import Delivery
    from newsletter.delivery.queue import Claimed
    from newsletter.wiring import make_sender

    app = make_app(spec["config"])
    sender = make_sender(app)
    profiles: list = []
    main_profile = None
    if spec.get("profile"):
        import cProfile

        _profile_threads(profiles)
        main_profile = cProfile.Profile(time.thread_time)
    rss_before = _rss_now_kb()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    first_claim = utcnow()
    stop = threading.Event()
    if spec.get("max_seconds"):
        timer = threading.Timer(spec["max_seconds"], stop.set)
        timer.daemon = True
        timer.start()
    if main_profile is not None:
        main_profile.enable()
    progress = sender.run(stop, edition_id=spec["edition_id"])
    if main_profile is not None:
        main_profile.disable()
    run_seconds = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    threading.setprofile(None)
    result: dict[str, Any] = {
        "sent": progress.sent, "deferred": progress.deferred, "bounced": progress.bounced,
        "failed": progress.failed, "cancelled": progress.cancelled,
        "run_seconds": run_seconds, "cpu_seconds": cpu,
        "user_seconds": usage1.ru_utime - usage0.ru_utime,
        "system_seconds": usage1.ru_stime - usage0.ru_stime,
        "ctx_switches": (usage1.ru_nvcsw - usage0.ru_nvcsw)
        + (usage1.ru_nivcsw - usage0.ru_nivcsw),
        "rss_before_kb": rss_before, "peak_rss_kb": usage1.ru_maxrss,
        "signed": sender.composer.signer is not None, "stopped": stop.is_set(),
    }
    with app.app_context():
        last = db.session.scalar(select(func.max(Delivery.sent_at)).where(
            Delivery.edition_id == spec["edition_id"]))
        result["first_to_last_seconds"] = (last - first_claim).total_seconds() if last else None
        if spec.get("sample"):
            row = db.session.scalars(select(Delivery).where(
                Delivery.edition_id == spec["edition_id"]).order_by(Delivery.id).limit(1)).one()
            job = Claimed(id=row.id, edition_id=row.edition_id, reader_id=row.reader_id,
                          variant_id=row.variant_id, email=row.email, attempts=0,
                          created_at=row.created_at, claim_id="bench", eligible=True)
            envelope_from, recipient, message = sender.composer.compose(job)
            result["sample"] = {"from": envelope_from, "to": recipient, "message": message}
        db.session.remove()
    if spec.get("profile"):
        result["profile"] = _profile_report(profiles, main_profile)
    conn.send(result)
    conn.close()


def _ceiling_child(spec: dict[str, Any], conn) -> None:
    """Plain smtplib: ``connections`` threads, one persistent connection each, N messages."""
    import smtplib

    message: bytes = spec["message"]
    count, connections = spec["messages"], spec["connections"]
    shares = [count // connections + (1 if i < count % connections else 0)
              for i in range(connections)]
    clients = []
    for _ in range(connections):
        client = smtplib.SMTP("127.0.0.1", spec["port"], local_hostname="bench", timeout=60)
        client.ehlo()
        clients.append(client)
    barrier = threading.Barrier(connections + 1)
    errors: list[BaseException] = []

    def work(client, share: int) -> None:
        barrier.wait()
        try:
            for _ in range(share):
                client.sendmail(spec["from"], [spec["to"]], message)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c, s)) for c, s in zip(clients, shares,
                                                                          strict=True)]
    for thread in threads:
        thread.start()
    barrier.wait()
    cpu0, start = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    for client in clients:
        client.quit()
    conn.send({"seconds": elapsed, "cpu_seconds": cpu, "messages": count,
               "errors": [repr(e) for e in errors[:3]]})
    conn.close()


def in_process(target: Callable, spec: dict[str, Any]) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=target, args=(spec, child))
    process.start()
    child.close()
    try:
        result = parent.recv()
    except EOFError:
        process.join()
        raise SystemExit(f"{target.__name__} died (exit code {process.exitcode})") from None
    process.join()
    return result


def send(app_cfg: dict[str, Any], edition_id: int, sink: SmtpSink, *, sample: bool = False,
         max_seconds: float = 0.0, profile: bool = False) -> dict[str, Any]:
    sink.reset()
    sink_cpu0 = sink.cpu_seconds()
    result = in_process(_send_child, {"config": app_cfg, "edition_id": edition_id,
                                      "sample": sample, "profile": profile,
                                      "max_seconds": max_seconds})
    result["sink_messages"], result["sink_bytes"] = sink.messages, sink.bytes
    sink_cpu1 = sink.cpu_seconds()
    result["sink_cpu_seconds"] = (sink_cpu1 - sink_cpu0) if sink_cpu0 is not None else None
    return result


def ceiling(sink: SmtpSink, sample: dict[str, Any], messages: int,
            connections: int) -> dict[str, Any]:
    sink.reset()
    sink_cpu0 = sink.cpu_seconds()
    result = in_process(_ceiling_child, {"port": sink.port, "message": sample["message"],
                                         "from": sample["from"], "to": sample["to"],
                                         "messages": messages, "connections": connections})
    result["sink_messages"] = sink.messages
    sink_cpu1 = sink.cpu_seconds()
    result["sink_cpu_seconds"] = (sink_cpu1 - sink_cpu0) if sink_cpu0 is not None else None
    return result


# -- fan-out of a large audience on SQLite ---------------------------------------------------

def fanout_benchmark(tmp: Path, secret: str, readers: int) -> dict[str, Any]:
    """A separate SQLite database with ``readers`` readers; times ``fan_out`` alone."""
    from sqlalchemy import func, select

    from newsletter.db import db, utcnow
    from newsletter.delivery.fanout import fan_out
    from newsletter.delivery.models import Delivery
    from newsletter.editions import service as editions
    from newsletter.editions.models import Edition
    from newsletter.subscribers.addresses import email_hash
    from newsletter.wiring import mail_setup, reader_services

    url = f"sqlite:///{tmp / 'fanout.db'}"
    app = make_app(app_config(tmp, url, secret))
    migrate(app)
    sections = seed_content(app)
    topics = topic_ids(app)
    with app.app_context():
        key = reader_services().hash_key
        stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
        start = time.perf_counter()
        raw = db.engine.raw_connection()
        try:
            sqlite = raw.driver_connection
            sqlite.create_function("bench_email_hash", 1, lambda e: email_hash(e, key),
                                   deterministic=True)
            sqlite.execute(
                "INSERT INTO readers (email, email_hash, plan, status, source, frequency, "
                "weekly_day, delivery_minute, timezone, format, created_at, updated_at, "
                "confirmed_at) "
                "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq "
                "WHERE i + 1 < ?) "
                "SELECT e, bench_email_hash(e), 'free', 'active', 'import', 'daily', 0, 420, "
                "'UTC', 'html', ?, ?, ? FROM (SELECT printf('reader%07d@example.com', i) AS e "
                "FROM seq)", (readers, stamp, stamp, stamp))
            for sql in _follow_sql(topics):
                sqlite.execute(sql)
            sqlite.commit()
        finally:
            raw.close()
        insert_seconds = time.perf_counter() - start
        edition = editions.create_edition(subject="Fan-out benchmark", sections=sections,
                                          topics=list(DIGEST_TOPICS), kind="digest")
        variants = editions.render_variants(db.session.get(Edition, edition.id), mail_setup())
        now = utcnow()
        start = time.perf_counter()
        queued = fan_out(edition.id, kind=edition.kind, html_variant=variants["html"].id,
                         text_variant=variants["text"].id,
                         topic_ids=[topics[s] for s in DIGEST_TOPICS], paid_only=False,
                         now=now, today=now.date())
        fanout_seconds = time.perf_counter() - start
        start = time.perf_counter()
        db.session.commit()
        commit_seconds = time.perf_counter() - start
        rows = db.session.scalar(select(func.count()).select_from(Delivery))
        db.session.remove()
        db.engine.dispose()
    return {"readers": readers, "insert_seconds": insert_seconds, "queued": queued,
            "rows": rows, "fanout_seconds": fanout_seconds, "commit_seconds": commit_seconds}


# -- the report --------------------------------------------------------------------------------

def code_version() -> str:
    """The commit measured (``-dirty`` when the working tree has changes), or "unknown"."""
    import subprocess

    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parent,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "MISS")


def describe_send(label: str, r: dict[str, Any], n: int) -> tuple[float | None, float]:
    seconds = r["first_to_last_seconds"]
    rate = r["sent"] / seconds if seconds else None
    cpu_ms = r["cpu_seconds"] / max(r["sent"], 1) * 1e3
    size = r["sink_bytes"] / max(r["sink_messages"], 1) / 1024
    print(f"  {label}")
    print(f"    outcomes: sent {r['sent']:,} of {n:,} (deferred {r['deferred']}, bounced "
          f"{r['bounced']}, failed {r['failed']}, cancelled {r['cancelled']}); sink counted "
          f"{r['sink_messages']:,} messages, {size:.1f} KB each; signed: {r['signed']}"
          + ("; STOPPED at --max-send-seconds" if r["stopped"] else ""))
    rate_text = f"{rate:,.0f} msg/s" if rate else "n/a"
    print(f"    first claim -> last outcome: {seconds or 0:.2f} s = {rate_text}   "
          f"(sender.run() returned after {r['run_seconds']:.2f} s)")
    print(f"    sender CPU: {r['cpu_seconds']:.2f} s = {cpu_ms:.3f} ms/message "
          f"(user {r['user_seconds']:.2f} s, system {r['system_seconds']:.2f} s; "
          f"{r['ctx_switches'] / max(r['sent'], 1):.1f} context switches/message)")
    if r.get("sink_cpu_seconds") is not None and seconds:
        print(f"    sink CPU meanwhile: {r['sink_cpu_seconds']:.2f} s "
              f"({r['sink_cpu_seconds'] / seconds:.0%} of one core over the send)")
    print(f"    RSS: {(r['rss_before_kb'] or 0) / 1024:.1f} MB before run(), peak "
          f"{r['peak_rss_kb'] / 1024:.1f} MB")
    return rate, cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=None, help="N (default 100,000)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--fanout-readers", type=int, default=None,
                        help="readers of the SQLite fan-out run (default 1,000,000)")
    parser.add_argument("--ceiling-messages", type=int, default=None,
                        help="messages of the smtplib ceiling (default: N, at most 20,000)")
    parser.add_argument("--database-url", default=None,
                        help="postgresql+psycopg://user@host:port/<scratch db to create>")
    parser.add_argument("--skip-fanout", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="10,000 readers and 100,000 for the fan-out")
    parser.add_argument("--max-send-seconds", type=float, default=0.0,
                        help="stop each send after this long and report what it sent "
                             "(default 0: send all)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile every thread of the DKIM-on send and print the top")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    n = args.readers or (10_000 if args.quick else 100_000)
    fanout_n = args.fanout_readers or (100_000 if args.quick else TARGET_FANOUT_READERS)
    ceiling_n = args.ceiling_messages or min(n, 20_000)
    connections = args.connections
    cap = args.max_send_seconds
    secret = secrets.token_hex(32)
    started = time.perf_counter()

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp_name, SmtpSink() as sink:
        tmp = Path(tmp_name)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_path = tmp / "dkim.pem"
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        with scratch_database(args.database_url, tmp, "send.db") as url:
            sqlite = url.startswith("sqlite")
            print(f"Delivery benchmark — {'SQLite (file, WAL)' if sqlite else 'PostgreSQL'}, "
                  f"N = {n:,} readers, {connections} SMTP connections, {os.cpu_count()} CPUs, "
                  f"Python {sys.version.split()[0]}, code {code_version()}"
                  + (f"; each send stopped after {cap:.0f} s" if cap else ""))
            plain_cfg = app_config(tmp, url, secret, smtp_port=sink.port,
                                   connections=connections)
            dkim_cfg = app_config(tmp, url, secret, smtp_port=sink.port,
                                  connections=connections, dkim_key=key_path)
            app = make_app(plain_cfg)
            migrate(app)
            sections = seed_content(app)
            insert_seconds = insert_readers(app, n)
            fifth = create_edition(app, sections, (FIFTH_TOPIC,), "This week: N/5 audience")
            signed = create_edition(app, sections, DIGEST_TOPICS, "This week in AI")
            unsigned = create_edition(app, sections, DIGEST_TOPICS, "This week in AI (no DKIM)")
            queued_signed, fanout_signed, html_bytes = start_edition(app, signed)
            print(f"  setup: {n:,} readers + topics inserted in {insert_seconds:.2f} s "
                  f"({n / insert_seconds:,.0f} readers/s); edition: 3 topics x {PER_TOPIC} "
                  f"syntheses (demo content), tracking on, {html_bytes / 1024:.1f} KB of "
                  "compiled HTML")
            print(f"  start_sending (render + fan-out), DKIM-on edition: {queued_signed:,} "
                  f"queued in {fanout_signed:.2f} s")
            print("  sends: each in a fresh process; CPU = every thread of that process over "
                  "sender.run(): claimer, relay connections (compose, DKIM, smtplib), outcome "
                  "writer, and the database driver" + (
                      ", SQLite itself included" if sqlite
                      else " (PostgreSQL's own server CPU is not included)"))
            r_signed = send(dkim_cfg, signed, sink, sample=True, max_seconds=cap,
                            profile=args.profile)
            message_kb = len(r_signed["sample"]["message"]) / 1024
            rate_signed, cpu_signed = describe_send(
                f"DKIM on, N = {n:,} (edition {signed})", r_signed, queued_signed)
            r_ceiling = ceiling(sink, r_signed["sample"], ceiling_n, connections)
            ceiling_rate = r_ceiling["messages"] / r_ceiling["seconds"]
            print(f"  ceiling: plain smtplib.sendmail of one composed DKIM-on message "
                  f"({message_kb:.1f} KB), {connections} threads x 1 persistent connection, "
                  f"{r_ceiling['messages']:,} messages (a sample; sink counted "
                  f"{r_ceiling['sink_messages']:,}): {r_ceiling['seconds']:.2f} s = "
                  f"{ceiling_rate:,.0f} msg/s; client CPU "
                  f"{r_ceiling['cpu_seconds'] / r_ceiling['messages'] * 1e3:.3f} ms/message"
                  + (f"; sink CPU {r_ceiling['sink_cpu_seconds'] / r_ceiling['seconds']:.0%} "
                     "of a core" if r_ceiling.get("sink_cpu_seconds") is not None else "")
                  + (f"; errors {r_ceiling['errors']}" if r_ceiling["errors"] else ""))
            queued_unsigned, fanout_unsigned, _ = start_edition(app, unsigned)
            print(f"  start_sending, DKIM-off edition: {queued_unsigned:,} queued in "
                  f"{fanout_unsigned:.2f} s")
            r_unsigned = send(plain_cfg, unsigned, sink, max_seconds=cap)
            rate_unsigned, cpu_unsigned = describe_send(
                f"DKIM off, N = {n:,} (a second edition in the same database)",
                r_unsigned, queued_unsigned)
            queued_fifth, fanout_fifth, _ = start_edition(app, fifth)
            print(f"  start_sending, N/5 edition: {queued_fifth:,} queued in "
                  f"{fanout_fifth:.2f} s")
            r_fifth = send(dkim_cfg, fifth, sink, max_seconds=cap)
            describe_send(f"DKIM on, N/5 = {queued_fifth:,} (a third edition, same database; "
                          "for peak RSS)", r_fifth, queued_fifth)
        ratio = rate_signed / ceiling_rate if rate_signed else None
        ratio_off = rate_unsigned / ceiling_rate if rate_unsigned else None
        print(f"  sender / ceiling: DKIM on {ratio or 0:.3f}, DKIM off {ratio_off or 0:.3f}")
        fan = None if args.skip_fanout else fanout_benchmark(tmp, secret, fanout_n)
    if fan:
        print(f"  fan-out on SQLite (separate database): {fan['readers']:,} readers inserted in "
              f"{fan['insert_seconds']:.2f} s; fan_out statement {fan['fanout_seconds']:.2f} s "
              f"for {fan['queued']:,} deliveries ({fan['queued'] / fan['fanout_seconds']:,.0f} "
              f"rows/s), commit {fan['commit_seconds']:.2f} s")

    peak_n, peak_fifth = r_signed["peak_rss_kb"] / 1024, r_fifth["peak_rss_kb"] / 1024
    growth = peak_n - peak_fifth
    grows = growth > peak_fifth * RSS_GROWTH_TOLERANCE
    partial = any(r["sent"] < q for r, q in ((r_signed, queued_signed),
                                              (r_fifth, queued_fifth)))
    print("Targets (2-core machine):")
    print(f"  [{verdict(ratio is not None and ratio >= TARGET_RATIO)}] sender/ceiling >= "
          f"{TARGET_RATIO}: {ratio or 0:.3f} (DKIM on)")
    print(f"  [{verdict(cpu_signed <= TARGET_CPU_MS)}] sender CPU <= {TARGET_CPU_MS} ms/message "
          f"with DKIM on: {cpu_signed:.3f} ms (DKIM off: {cpu_unsigned:.3f} ms)")
    print(f"  [{verdict(peak_n <= TARGET_RSS_MB)}] peak RSS <= {TARGET_RSS_MB:.0f} MB: "
          f"{peak_n:.1f} MB for N = {n:,}")
    print(f"  [{verdict(not grows)}] no RSS growth from N/5 to N (within "
          f"{RSS_GROWTH_TOLERANCE:.0%}): {peak_fifth:.1f} MB -> {peak_n:.1f} MB "
          f"({growth:+.1f} MB) — {'grows' if grows else 'does not grow'}"
          + (" (sends stopped early: not all of N and N/5 went out)" if partial else ""))
    if fan is None:
        print(f"  [{verdict(None)}] fan-out of {TARGET_FANOUT_READERS:,} <= {TARGET_FANOUT_S:.0f}"
              " s on SQLite: skipped (--skip-fanout)")
    else:
        scaled = "" if fan["readers"] == TARGET_FANOUT_READERS else (
            f" (measured with {fan['readers']:,} readers: not the target's size)")
        print(f"  [{verdict(fan['fanout_seconds'] <= TARGET_FANOUT_S)}] fan-out of "
              f"{TARGET_FANOUT_READERS:,} <= {TARGET_FANOUT_S:.0f} s on SQLite: "
              f"{fan['fanout_seconds']:.2f} s{scaled}")
    if args.profile:
        print(r_signed["profile"])
    print(f"(whole benchmark: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
