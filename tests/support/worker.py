"""Helpers for tests that run `newsletter worker` as a real process, and a relay that drops.

``worker_env`` builds the environment of a worker that shares the test's database and
settings; ``start_worker`` starts ``python -m newsletter.cli worker`` with its output in a
log file; ``stop_process`` makes sure nothing outlives the test. ``DeliveriesLock`` stalls every
writer of the deliveries table, as a long lock or a slow disk would. ``enable_drops`` lets a
``SMTPTestServer`` reply hook return ``DROP`` to close the client's connection, for real,
after the message content arrived and before any reply (what a crashing relay does).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from tests.support.smtp import SMTPTestServer, _Handler

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DROP = "DROP"


def worker_env(config, *, smtp_url: str, instance_dir: Path, **settings) -> dict[str, str]:
    """The inherited environment without any ``NEWSLETTER_*``, plus the app's own settings
    (database, keys, links, sender) so the worker and the test see the same data."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update({
        "NEWSLETTER_DATABASE_URL": config["DATABASE_URL"],
        "NEWSLETTER_SECRET_KEY": config["SECRET_KEY"],
        "NEWSLETTER_INSTANCE_DIR": str(instance_dir),
        "NEWSLETTER_BASE_URL": config["BASE_URL"],
        "NEWSLETTER_MAIL_FROM": config["MAIL_FROM"],
        "NEWSLETTER_PUBLICATION_NAME": config["PUBLICATION_NAME"],
        "NEWSLETTER_POSTAL_ADDRESS": "Modelwire Ltd, 10 Test Lane, London N1 9GU, UK",
        "NEWSLETTER_MAIL_TRANSPORT": "smtp",
        "NEWSLETTER_SMTP_URL": smtp_url,
        "PYTHONUNBUFFERED": "1",
    })
    env.update({f"NEWSLETTER_{key}": str(value) for key, value in settings.items()})
    return env


def start_worker(env: dict[str, str], log_path: Path, *, poll: float = 0.5) -> subprocess.Popen:
    """``python -m newsletter.cli worker --poll POLL``, output appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "newsletter.cli", "worker", "--poll", str(poll)],
            cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """SIGKILL it if it is still running, and reap it (for ``finally`` blocks)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=timeout)


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.05,
             what: str = "condition") -> None:
    """Poll ``condition`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class _DroppingHandler(_Handler):
    async def handle_DATA(self, smtp, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        reply = await super().handle_DATA(smtp, session, envelope)
        if reply == DROP:
            # abort(): the socket closes at once and the reply pushed next is discarded,
            # so the client sees the connection vanish after sending its content.
            smtp.transport.abort()
            return "421 4.4.2 dropped"
        return reply


def enable_drops(server: SMTPTestServer) -> SMTPTestServer:
    """Let ``server.reply`` return ``DROP``; the message is then counted as rejected."""
    server._controller.handler = _DroppingHandler(server)  # used for connections from now on
    return server


class DeliveriesLock:
    """Holds a lock that blocks every write to ``deliveries`` (reads still work).

    SQLite: the database's write lock (``BEGIN IMMEDIATE``); PostgreSQL: ``LOCK TABLE
    deliveries IN EXCLUSIVE MODE``, which blocks UPDATE and SELECT … FOR UPDATE.
    """

    def __init__(self, database_url: str) -> None:
        self.url = make_url(database_url)
        self._sqlite: sqlite3.Connection | None = None
        self._engine = None
        self._conn = None

    def acquire(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            self._sqlite = sqlite3.connect(self.url.database, timeout=10, isolation_level=None,
                                           check_same_thread=False)
            self._sqlite.execute("BEGIN IMMEDIATE")
        else:
            self._engine = create_engine(self.url)
            self._conn = self._engine.connect()
            self._conn.execute(text("SET lock_timeout = '10s'"))
            self._conn.execute(text("LOCK TABLE deliveries IN EXCLUSIVE MODE"))

    def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
            self._sqlite = None
        if self._conn is not None:
            self._conn.rollback()
            self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
