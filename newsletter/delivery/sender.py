"""The sender: claims deliveries, hands them to relay connections, records every outcome.

Threads, in one process:
* the claimer (the caller's thread) claims batches under a lease and spreads them over the
  relays by weight; it also notices paused or cancelled editions within a second;
* one thread per relay connection composes each message (per-variant template, personal
  values, DKIM) and sends it over its own SMTP connection;
* one writer records outcomes in group commits.

Nothing lost, nothing sent twice that can be avoided: a delivery becomes ``sent`` only after
the relay accepted it, and a connection sends its next message only after the writer has
committed the previous outcome. A crash therefore leaves at most one accepted-but-unrecorded
message per connection; its lease expires and another worker sends it again — the only
duplicates possible, bounded by the number of connections.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from newsletter.db import utcnow
from newsletter.delivery import queue as dq
from newsletter.delivery.relays import RelayConfig, Throttle
from newsletter.mail import SendResult, TransportError, make_transport

log = logging.getLogger(__name__)
GATHER_SECONDS = 0.003


def worker_id() -> str:
    """This process and thread, as the owner name of the leases it takes."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


class Composer(Protocol):
    def compose(self, job: dq.Claimed) -> tuple[str, str, bytes]:
        """(envelope sender, recipient, message bytes) for one claimed delivery."""


@dataclass
class SendSettings:
    worker_id: str
    batch_size: int = 200
    lease_seconds: int = 120
    max_attempts: int = 8
    max_age: timedelta = timedelta(hours=48)
    backoff_base: float = 60.0
    backoff_cap: float = 6 * 3600.0
    idle_sleep: float = 1.0
    halt_check_interval: float = 1.0


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


def outcome_of_reply(job: dq.Claimed, result: SendResult | TransportError, now: datetime,
                     settings: SendSettings, relay: str) -> dq.SendOutcome:
    """2xx → sent; 5xx → bounced; 4xx, timeouts and drops → deferred with exponential
    backoff and jitter, or failed past the maximum attempts or age."""
    if isinstance(result, SendResult):
        return dq.SendOutcome(job.id, "sent", result.code, f"{result.code} {result.reply}", relay)
    reply = str(result)  # "451 DATA: 4.3.0 try again later", or the network failure
    if result.permanent:
        return dq.SendOutcome(job.id, "bounced", result.code, reply, relay)
    attempts = job.attempts + 1
    if attempts >= settings.max_attempts or now - job.created_at >= settings.max_age:
        return dq.SendOutcome(job.id, "failed", result.code, reply, relay)
    delay = min(settings.backoff_base * 2 ** (attempts - 1), settings.backoff_cap)
    delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
    return dq.SendOutcome(job.id, "deferred", result.code, reply, relay,
                      next_attempt_at=now + timedelta(seconds=delay))


class _Writer(threading.Thread):
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
                                            now=self.clock())
                break
            except OperationalError:
                # Busy or reconnecting database: never drop an outcome, wait and retry.
                log.exception("writing %d outcomes failed; retrying", len(batch))
                conn.rollback()
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


class _Connection(threading.Thread):
    def __init__(self, sender: Sender, relay: RelayConfig, jobs: queue.Queue, throttle: Throttle,
                 index: int):
        super().__init__(name=f"relay-{relay.name}-{index}", daemon=True)
        self.sender = sender
        self.relay = relay
        self.jobs = jobs
        self.throttle = throttle
        self.transport = None

    def run(self) -> None:
        sender = self.sender
        try:
            while True:
                try:
                    job = self.jobs.get(timeout=0.1)
                except queue.Empty:
                    if sender.draining.is_set():
                        return
                    continue
                if sender.writer.fatal is not None:
                    return
                sender.writer.submit(self._deliver(job), wait=True, job=job)
                sender.release_hold(job)
        finally:
            if self.transport is not None:
                self.transport.close()

    def _deliver(self, job: dq.Claimed) -> dq.SendOutcome:
        sender = self.sender
        halted = sender.halted.get(job.edition_id)
        if halted is not None or sender.draining.is_set() and sender.stop_now.is_set():
            status = "cancelled" if halted == "cancelled" else "released"
            return dq.SendOutcome(job.id, status, attempted=False)
        # Never hold a claimed delivery for long (its lease would expire and another worker
        # could send it too): past a short wait, put it back for when the relay has room.
        if not self.throttle.wait(sender.stop_now, max_wait=sender.settings.lease_seconds / 4):
            later = sender.clock() + timedelta(seconds=self.throttle.delay_hint)
            return dq.SendOutcome(job.id, "released", attempted=False, next_attempt_at=later)
        try:
            envelope_from, recipient, message = sender.composer.compose(job)
        except Exception as exc:  # noqa: BLE001 - a message we cannot build is a failure
            log.exception("could not compose delivery %s", job.id)
            return dq.SendOutcome(job.id, "failed", None, f"compose: {exc}"[:500], self.relay.name)
        if self.transport is None:
            self.transport = sender.transport_factory(self.relay.config)
        try:
            # Composed messages never have a line starting with "." (MessageTemplate's contract).
            result: SendResult | TransportError = self.transport.send(
                envelope_from, [recipient], message, dot_safe=True)
        except TransportError as exc:
            result = exc
            if exc.code is None:  # the connection is gone; open a new one next time
                self.transport.close()
                self.transport = None
        return outcome_of_reply(job, result, sender.clock(), sender.settings, self.relay.name)


class Sender:
    def __init__(self, *, engine: Engine, relays: list[RelayConfig], composer: Composer,
                 settings: SendSettings, transport_factory=make_transport,
                 clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.relays = relays
        self.composer = composer
        self.settings = settings
        self.transport_factory = transport_factory
        self.clock = clock
        self.progress = Progress()
        self._progress_lock = threading.Lock()
        self.halted: dict[int, str] = {}
        self.draining = threading.Event()
        self.stop_now = threading.Event()
        self.writer = _Writer(engine, settings.worker_id, clock, self.progress,
                              self._progress_lock)
        self._queues = {relay.name: queue.Queue() for relay in relays}
        # Claims with deliveries still in memory (waiting or being sent): their leases are
        # renewed until every one of them has an outcome.
        self._held: dict[str, int] = {}
        self._held_lock = threading.Lock()
        self._weights = [relay.weight for relay in relays]

    def release_hold(self, job: dq.Claimed) -> None:
        with self._held_lock:
            left = self._held.get(job.claim_id, 0) - 1
            if left > 0:
                self._held[job.claim_id] = left
            else:
                self._held.pop(job.claim_id, None)

    def _in_memory(self) -> int:
        return sum(q.qsize() for q in self._queues.values())

    def _dispatch(self, jobs: list[dq.Claimed]) -> None:
        for job in jobs:
            if not job.eligible:
                self.writer.submit(dq.SendOutcome(job.id, "cancelled", attempted=False), wait=False,
                                   job=job)
                continue
            with self._held_lock:
                self._held[job.claim_id] = self._held.get(job.claim_id, 0) + 1
            relay = random.choices(self.relays, weights=self._weights)[0]  # noqa: S311
            self._queues[relay.name].put(job)

    def run(self, stop: threading.Event, *, edition_id: int | None = None,
            on_progress: Callable[[Progress], None] | None = None) -> Progress:
        """Send until ``stop`` is set — or, with ``edition_id``, until that edition has
        nothing left to send now (deferred retries due later are left to the worker)."""
        settings = self.settings
        self.writer.connections = sum(relay.connections for relay in self.relays)
        self.writer.start()
        threads = []
        for relay in self.relays:
            throttle = Throttle(relay.rate, relay.hourly)
            for index in range(relay.connections):
                thread = _Connection(self, relay, self._queues[relay.name], throttle, index)
                thread.start()
                threads.append(thread)
        in_flight_editions: set[int] = set()
        last_halt_check = 0.0
        last_renewal = time.monotonic()
        low_water = max(sum(r.connections for r in self.relays) * 2, settings.batch_size // 2)
        try:
            with self.engine.connect() as conn:
                while not stop.is_set():
                    if self.writer.fatal is not None:
                        raise RuntimeError("the outcome writer failed") from self.writer.fatal
                    claimed: list[dq.Claimed] = []
                    if self._in_memory() < low_water:
                        claimed = dq.claim(conn, worker=settings.worker_id,
                                           limit=settings.batch_size,
                                           lease_seconds=settings.lease_seconds,
                                           now=self.clock(), edition_id=edition_id)
                        in_flight_editions.update(job.edition_id for job in claimed)
                        self._dispatch(claimed)
                    if time.monotonic() - last_renewal > settings.lease_seconds / 3:
                        with self._held_lock:
                            held = list(self._held)
                        dq.renew_leases(conn, held, lease_seconds=settings.lease_seconds,
                                        now=self.clock())
                        last_renewal = time.monotonic()
                    if time.monotonic() - last_halt_check > settings.halt_check_interval:
                        self.halted = dq.halted_editions(conn, in_flight_editions)
                        last_halt_check = time.monotonic()
                    if on_progress is not None:
                        on_progress(self.progress)
                    if claimed:
                        continue
                    if self._in_memory() == 0 and self.writer.items.empty():
                        dq.finish_editions(conn, self.clock())
                        if edition_id is not None:
                            break
                    stop.wait(settings.idle_sleep if self._in_memory() == 0 else 0.05)
        finally:
            if stop.is_set():
                self.stop_now.set()  # jobs not yet sent go back to the queue, not out
            self.draining.set()
            for thread in threads:
                thread.join()
            # Jobs never taken by a connection go back to the queue for the next worker.
            for jobs in self._queues.values():
                while not jobs.empty():
                    job = jobs.get()
                    self.writer.submit(dq.SendOutcome(job.id, "released", attempted=False),
                                       wait=False, job=job)
            self.writer.stopping.set()
            self.writer.join()
            with self.engine.connect() as conn:
                dq.finish_editions(conn, self.clock())
            if on_progress is not None:
                on_progress(self.progress)
        return self.progress
