"""The outcome writer: one thread per sender that records what relays said, in group
commits, and never drops an outcome because the database was briefly away."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from newsletter.delivery import queue as dq

log = logging.getLogger(__name__)
GATHER_SECONDS = 0.003
# A database that is busy, restarting or unreachable, a deadlock victim, a dropped
# connection: retried with backoff, never a reason to drop an outcome or stop sending.
RETRYABLE = (OperationalError, InterfaceError)


@dataclass
class Progress:
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    failed: int = 0
    cancelled: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.sent + self.bounced + self.failed + self.cancelled


def rollback(conn) -> None:
    """Roll back after a database error; a connection that is gone is replaced on next use."""
    try:
        conn.rollback()
    except RETRYABLE:
        log.debug("rollback on a broken connection", exc_info=True)


class OutcomeWriter(threading.Thread):
    """Group commit: takes every outcome waiting, writes them in one transaction."""

    def __init__(self, engine: Engine, worker: str, clock, progress: Progress,
                 lock: threading.Lock):
        super().__init__(name="outcome-writer", daemon=True)
        self.engine = engine
        self.worker = worker
        self.clock = clock
        self.items: queue.Queue[tuple[dq.SendOutcome, threading.Event | None]] = queue.Queue()
        self.stopping = threading.Event()
        self.progress = progress
        self.lock = lock
        self.fatal: Exception | None = None
        self.connections = 1  # set by the sender: at most this many wait for a commit
        self.soft_bounces = dq.SoftBounceRule()  # set by the sender from its settings

    def submit(self, outcome: dq.SendOutcome, wait: bool, job: dq.Claimed | None = None) -> None:
        if job is not None:
            outcome.claim_id = job.claim_id
        event = threading.Event() if wait else None
        self.items.put((outcome, event))
        if event is not None:
            event.wait()

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not (self.stopping.is_set() and self.items.empty()):
                try:
                    first = self.items.get(timeout=0.1)
                except queue.Empty:
                    continue
                batch = [first]
                # Group commit: give the other connections a moment to finish their messages
                # too, so one transaction records many outcomes. Each connection waits for its
                # SMTP reply far longer than this, so throughput does not suffer.
                deadline = time.monotonic() + GATHER_SECONDS
                while len(batch) < 500:
                    if len(batch) >= self.connections and self.items.empty():
                        break
                    try:
                        batch.append(self.items.get(
                            timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                self._write(conn, batch)

    def _write(self, conn, batch) -> None:
        delay = 0.05
        while True:
            try:
                applied = dq.write_outcomes(conn, [o for o, _ in batch], worker=self.worker,
                                            now=self.clock(), soft=self.soft_bounces)
                break
            except RETRYABLE:
                # Busy or reconnecting database: never drop an outcome, wait and retry.
                log.warning("writing %d outcomes failed; retrying in %.2f s", len(batch),
                            delay, exc_info=True)
                rollback(conn)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception as exc:
                # Anything else is a bug: stop sending rather than send unrecorded mail.
                log.exception("cannot record outcomes; stopping the sender")
                self.fatal = exc
                for _, event in batch:
                    if event is not None:
                        event.set()
                return
        with self.lock:
            for outcome in applied:
                if hasattr(self.progress, outcome.status):
                    setattr(self.progress, outcome.status,
                            getattr(self.progress, outcome.status) + 1)
        for _, event in batch:
            if event is not None:
                event.set()
