"""Stripe webhook benchmark: how fast ``POST /hooks/stripe`` takes events in (prints figures).

    .venv/bin/python bench/billing_webhooks.py [--readers 200] [--database-url URL]

Starts localstripe (``--from-scratch``) and the tests' Stripe front (tests/support/stripe.py),
makes an app on a fresh database (SQLite in a temporary folder by default; with
``--database-url`` a PostgreSQL database of that name is created and dropped, and must not
exist), and N readers, each with a customer and a monthly subscription at localstripe. Then
it posts, through the Flask test client, one signed ``customer.subscription.created`` per
reader (each is verified, stored once, and makes the app fetch the subscription from Stripe
and write the reader's plan), then the same N events again (replays: verified and dropped,
no Stripe call). Printed: events per second and the median and 95th-percentile time of
each kind. Every answer must be 200 and every reader paying at the end (checked; timings
are not).

Two ceilings, measured in the same run: ``GET /healthz`` through the same client (what the
request costs with no work), and the gateway's own ``subscriptions.retrieve`` against the
same local Stripe (what the one Stripe call of each new event costs) — an event can be no
faster than their sum.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from digests import (  # noqa: E402 - bench-local import
    create_pg_database,
    drop_pg_database,
    make_app,
    prepare_database,
)


def _timed(call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _line(name: str, times: list[float], ceiling: float | None = None) -> str:
    median = statistics.median(times)
    p95 = sorted(times)[int(len(times) * 0.95) - 1] if len(times) > 1 else times[0]
    rate = len(times) / sum(times)
    text = (f"{name:<34} {rate:8.1f}/s   median {median * 1000:7.2f} ms   "
            f"p95 {p95 * 1000:7.2f} ms")
    if ceiling:
        text += f"   ({median / ceiling:.1f}× the ceiling)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        made = args.database_url and create_pg_database(url)
        try:
            run(tmp, url, args.readers)
        finally:
            if made:
                drop_pg_database(url)


def run(tmp: Path, url: str, n: int) -> None:
    from sqlalchemy import func, select

    from newsletter.db import db
    from newsletter.subscribers.models import Reader
    from newsletter.wiring import build_billing, services
    from tests.factories_readers import make_reader
    from tests.support import stripe as fake

    with fake.running_stripe(tmp) as front:
        app = make_app(tmp, url)
        app.config.update(fake.settings(front))
        client = app.test_client()
        with app.app_context():
            prepare_database(datetime.now(UTC))
            services().billing = build_billing(app.config)
            from newsletter.billing.models import BillingAccount

            events = []
            for i in range(n):
                email = f"reader{i}@bench.example"
                reader = make_reader(email, topics=("ai-policy-and-safety",))
                customer, sub = front.customer_with_subscription(reader.id, email)
                db.session.add(BillingAccount(reader_id=reader.id, customer_id=customer))
                events.append(fake.event("customer.subscription.created", sub))
            db.session.commit()
            signed = [fake.signed(event) for event in events]
            gateway = services().billing.gateway
            sub_ids = [event["data"]["object"]["id"] for event in events]

        health = _timed(lambda: client.get("/healthz"), 200)
        with app.app_context():
            fetch_ids = iter(sub_ids * 2)
            fetch = _timed(lambda: gateway.subscription(next(fetch_ids)), min(n, 200))
        answers = iter(signed)

        def post():
            body, headers = next(answers)
            response = client.post("/hooks/stripe", data=body, headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)

        first = _timed(post, n)
        answers = iter(signed)
        replays = _timed(post, n)
        with app.app_context():
            paying = db.session.scalar(select(func.count(Reader.id))
                                       .where(Reader.plan == "paid"))
        assert paying == n, f"{paying} of {n} readers paying"

    ceiling = statistics.median(health) + statistics.median(fetch)
    print(f"database: {url.split(':', 1)[0]}, {n} readers, one subscription each")
    print(_line("GET /healthz (ceiling 1)", health))
    print(_line("Stripe fetch alone (ceiling 2)", fetch))
    print(_line("webhook, new event", first, ceiling))
    print(_line("webhook, replay (dropped)", replays, statistics.median(health)))


if __name__ == "__main__":
    main()
