"""Sign-in timing benchmark: does the answer's time tell a known address from an unknown one,
or a locked one from one that is not? (prints figures)

    .venv/bin/python bench/sign_in.py [--repeat 30]

On a fresh SQLite database in a temporary folder, one owner account; then, through the
Flask test client, ``--repeat`` wrong sign-ins in each of four cases, each from its own IP
address (so no case locks another): a known address with a wrong password, an unknown
address, and — after five wrong tries from that IP — a known and an unknown address
while locked. Printed are each case's status codes, median and spread (the middle 80 %).

The ceiling, measured in the same run: one scrypt hash check (werkzeug, the method the
accounts use), which every answer must cost; and ``GET /healthz`` through the same client
(what routing and the test client cost).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OWNER = "owner@bench.example"
PASSWORD = "a long bench passphrase"  # noqa: S105


def _csrf(client) -> str:
    import re

    html = client.get("/admin/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]


def _times(client, email: str, repeat: int) -> tuple[list[float], Counter]:
    token = _csrf(client)
    times, codes = [], Counter()
    for n in range(repeat):
        start = time.perf_counter()
        response = client.post("/admin/login", data={"email": email, "password": f"wrong {n}",
                                                     "csrf_token": token})
        times.append((time.perf_counter() - start) * 1000)
        codes[response.status_code] += 1
    return times, codes


def _spread(times: list[float]) -> str:
    ordered = sorted(times)
    low, high = ordered[len(ordered) // 10], ordered[-(len(ordered) // 10) - 1]
    return f"median {statistics.median(times):6.1f} ms   middle 80 % {low:6.1f}–{high:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    from werkzeug.security import check_password_hash

    from newsletter import create_app
    from newsletter.accounts import admins
    from newsletter.db import db

    folder = Path(tempfile.mkdtemp(prefix="bench-sign-in-"))
    app = create_app({"DEBUG": True, "INSTANCE_DIR": str(folder),
                      "DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
                      "ADMIN_LOGIN_LIMIT_PER_IP": "100000/minute"})
    with app.app_context():
        db.create_all()
        admins.create_admin(OWNER, PASSWORD, "owner")
        stored = admins.find_admin(OWNER).password_hash
    # The requests run outside any app context: one pushed around them would be shared by
    # every client (and Flask-WTF keeps the CSRF token in ``g``).
    def client(ip: str):
        made = app.test_client()
        made.environ_base["REMOTE_ADDR"] = ip
        return made

    hashes = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        check_password_hash(stored, "wrong")
        hashes.append((time.perf_counter() - start) * 1000)
    health = client("192.0.2.1")
    healthz = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        health.get("/healthz")
        healthz.append((time.perf_counter() - start) * 1000)

    cases = {}
    # Each case from its own IP: up to four wrong tries from there answer 401.
    for name, email, ip in (("known address, wrong password", OWNER, "192.0.2.10"),
                            ("unknown address", "nobody@bench.example", "192.0.2.11")):
        times, codes = [], Counter()
        for start in range(0, args.repeat, 4):
            batch = min(4, args.repeat - start)
            t, c = _times(client(f"{ip}{start}"[:15]), email, batch)
            times += t
            codes += c
        cases[name] = (times, codes)
    for name, email, ip in (("known address, locked", OWNER, "192.0.2.20"),
                            ("unknown address, locked", "nobody@bench.example",
                             "192.0.2.21")):
        locked = client(ip)
        _times(locked, email, admins.MAX_FAILURES)
        cases[name] = _times(locked, email, args.repeat)

    print(f"sign-in timing, {args.repeat} requests per case (SQLite, Flask test client)")
    print(f"  ceiling: one scrypt check        {_spread(hashes)}")
    print(f"  ceiling: GET /healthz            {_spread(healthz)}")
    for name, (times, codes) in cases.items():
        answers = ", ".join(f"{code}×{count}" for code, count in sorted(codes.items()))
        print(f"  {name:<32} {_spread(times)}   answers {answers}")


if __name__ == "__main__":
    main()
