"""How long ``POST /preferences/link`` takes for a known and an unknown address (prints
figures; never a test).

    .venv/bin/python bench/account_mail.py [--requests 300]

Both kinds of request go through the real app (SQLite in a temporary folder, CSRF on, rate
limits off) with a real SMTP sink on loopback as the relay. The request only queues the
email; for comparison the same run times what the request used to do in-line for a known
address (build the message and hand it to the relay: on loopback here; a real relay over
TLS adds its own round trips), and the worker's drain of the queue.
"""

from __future__ import annotations

import argparse
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from delivery import app_config, make_app, migrate  # noqa: E402 - bench-local import
from smtp_sink import SmtpSink  # noqa: E402

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.2f} ms (p90 " \
           f"{statistics.quantiles(samples, n=10)[-1] * 1000:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    from newsletter.db import db, utcnow
    from newsletter.subscribers.addresses import email_hash
    from newsletter.subscribers.models import AccountMail, Reader
    from newsletter.subscribers.outbox import send_due
    from newsletter.wiring import reader_services

    with tempfile.TemporaryDirectory() as folder, SmtpSink() as sink:
        tmp = Path(folder)
        config = app_config(tmp, f"sqlite:///{tmp / 'bench.db'}", secrets.token_hex(32),
                            smtp_port=sink.port)
        config["RATELIMIT_ENABLED"] = False
        app = make_app(config)
        migrate(app)
        with app.app_context():
            key = reader_services().hash_key
            db.session.add(Reader(email="known@example.com", status="active",
                                  email_hash=email_hash("known@example.com", key)))
            db.session.commit()

        client = app.test_client()
        token = _CSRF.search(client.get("/preferences/link").get_data(as_text=True)).group(1)
        times: dict[str, list[float]] = {"known": [], "unknown": []}
        for n in range(args.requests * 2):
            kind = "known" if n % 2 == 0 else "unknown"
            started = time.perf_counter()
            response = client.post("/preferences/link", data={
                "csrf_token": token, "email": f"{kind}@example.com"})
            times[kind].append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
            if kind == "known" and n % 20 == 0:
                with app.app_context():  # keep the queue short, as the worker would
                    send_due(reader_services().mailer, utcnow(), limit=1000)

        with app.app_context():
            inline = []
            mailer = reader_services().mailer
            transport = mailer.mail.new_transport()
            for _ in range(100):
                started = time.perf_counter()
                message = mailer.message("manage_link", 1, "known@example.com")
                transport.send(message.return_path, [message.to], message.data)
                inline.append(time.perf_counter() - started)
            transport.close()

            for _ in range(200):
                db.session.add(AccountMail(reader_id=1, kind="manage_link",
                                           to_email="known@example.com"))
            db.session.commit()
            started = time.perf_counter()
            sent = send_due(mailer, utcnow(), limit=1000).sent
            drain = time.perf_counter() - started

    known, unknown = times["known"], times["unknown"]
    print(f"POST /preferences/link, {args.requests} of each, alternating:")
    print(f"  known address   (queues one row): {_median_ms(known)}")
    print(f"  unknown address (queues nothing): {_median_ms(unknown)}")
    gap = statistics.median(known) - statistics.median(unknown)
    print(f"  difference of medians: {gap * 1000:.2f} ms")
    print(f"what a known address cost in-line before the queue (build + relay): "
          f"{_median_ms(inline)}")
    print(f"worker drain: {sent} account emails in {drain:.2f} s "
          f"({sent / drain:.0f}/s, one relay connection)")


if __name__ == "__main__":
    main()
