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
from datetime import datetime, timedelta

from sqlalchemy import Engine

from newsletter.db import utcnow
from newsletter.delivery import queue as dq
from newsletter.delivery.breaker import recorder
from newsletter.delivery.connection import (
    UNLIMITED,
    Composer,
    Connection,
    SendSettings,
    Throttle,
)
from newsletter.delivery.limits import SharedThrottle
from newsletter.delivery.outcome_writer import RETRYABLE, OutcomeWriter, Progress, rollback
from newsletter.mail import make_transport
from newsletter.mail.breaker import RelayBreaker
from newsletter.mail.relays import RelayConfig

log = logging.getLogger(__name__)


def worker_id() -> str:
    """This process and thread, as the owner name of the leases it takes."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


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
        self.writer = OutcomeWriter(engine, settings.worker_id, clock, self.progress,
                                    self._progress_lock)
        self.writer.soft_bounces = settings.soft_bounces
        self._queues = {relay.name: queue.Queue() for relay in relays}
        # Claims with deliveries still in memory (waiting or being sent): their leases are
        # renewed until every one of them has an outcome.
        self._held: dict[str, int] = {}
        self._held_lock = threading.Lock()
        # Until when each held claim's lease is known to hold (as last written), and the
        # claims given up because renewing them failed for too long.
        self._lease_until: dict[str, datetime] = {}
        self._lost: set[str] = set()
        self._weights = [relay.weight for relay in relays]
        self.breakers: dict[str, RelayBreaker] = {}

    def release_hold(self, job: dq.Claimed) -> None:
        with self._held_lock:
            left = self._held.get(job.claim_id, 0) - 1
            if left > 0:
                self._held[job.claim_id] = left
            else:
                self._held.pop(job.claim_id, None)
                self._lease_until.pop(job.claim_id, None)
                self._lost.discard(job.claim_id)

    def lease_ok(self, claim_id: str) -> bool:
        """Whether a message of this claim may still start: its lease holds for at least a
        third of a lease more (time for the throttle's short wait and one SMTP exchange).
        A claim that fails this once is given up for good: renewing it later could no
        longer prove that no other worker took its rows meanwhile."""
        margin = timedelta(seconds=self.settings.lease_seconds / 3)
        with self._held_lock:
            if claim_id in self._lost:
                return False
            until = self._lease_until.get(claim_id)
            if until is not None and self.clock() < until - margin:
                return True
            self._lost.add(claim_id)
        log.warning("claim %s: its lease could not be renewed in time; its remaining "
                    "deliveries go back to the queue unsent", claim_id)
        return False

    def hold_leases(self, claimed: list[dq.Claimed], now: datetime) -> None:
        """Record the lease each new claim holds until (written with the claim)."""
        until = now + timedelta(seconds=self.settings.lease_seconds)
        with self._held_lock:
            for claim_id in {job.claim_id for job in claimed if job.eligible}:
                self._lease_until[claim_id] = until

    def _renew(self, conn) -> None:
        """Renew the leases of the claims still held whose lease this worker knows still
        holds. One that may have run out (the process was paused, renewal kept failing) is
        given up instead: another worker may have its rows, and extending the lease in
        memory would send them twice."""
        now = self.clock()
        margin = timedelta(seconds=self.settings.lease_seconds / 3)
        with self._held_lock:
            for claim_id in self._held:
                until = self._lease_until.get(claim_id)
                if until is None or now >= until - margin:
                    self._lost.add(claim_id)
            claims = [c for c in self._held if c not in self._lost]
        dq.renew_leases(conn, claims, lease_seconds=self.settings.lease_seconds, now=now)
        until = now + timedelta(seconds=self.settings.lease_seconds)
        with self._held_lock:
            for claim_id in claims:
                if claim_id in self._lease_until and claim_id not in self._lost:
                    self._lease_until[claim_id] = until

    def _in_memory(self) -> int:
        return sum(q.qsize() for q in self._queues.values())

    def _dispatch(self, jobs: list[dq.Claimed]) -> None:
        eligible = [job for job in jobs if job.eligible]
        # Counted before any job reaches a connection, so a claim's lease stays known until
        # its last job has an outcome.
        with self._held_lock:
            for job in eligible:
                self._held[job.claim_id] = self._held.get(job.claim_id, 0) + 1
        for job in jobs:
            if not job.eligible:
                self.writer.submit(dq.SendOutcome(job.id, "cancelled", attempted=False),
                                   wait=False, job=job)
        for job in eligible:
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
            throttle: Throttle = (SharedThrottle(self.engine, relay.name, relay.rate,
                                                  relay.hourly)
                                   if relay.rate or relay.hourly else UNLIMITED)
            breaker = RelayBreaker(relay.name, record=recorder(self.engine))
            self.breakers[relay.name] = breaker
            for index in range(relay.connections):
                thread = Connection(self, relay, self._queues[relay.name], throttle, index,
                                     breaker)
                thread.start()
                threads.append(thread)
        loop = _ClaimLoop(self, edition_id)
        try:
            with self.engine.connect() as conn:
                while not stop.is_set():
                    if self.writer.fatal is not None:
                        raise RuntimeError("the outcome writer failed") from self.writer.fatal
                    try:
                        claimed, done = loop.step(conn)
                    except RETRYABLE:
                        # The database is away: jobs in memory go on while their leases
                        # hold (lease_ok); claiming and renewing are tried again.
                        rollback(conn)
                        log.warning("the delivery queue is unreachable; retrying in %.1f s",
                                    loop.backoff, exc_info=True)
                        stop.wait(loop.backoff)
                        loop.backoff = min(loop.backoff * 2, 5.0)
                        continue
                    loop.backoff = 0.1
                    if on_progress is not None:
                        on_progress(self.progress)
                    if claimed:
                        continue
                    if done:
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
            try:
                with self.engine.connect() as conn:
                    dq.finish_editions(conn, self.clock())
            except RETRYABLE:
                log.warning("could not mark finished editions sent; the next run will",
                            exc_info=True)
            if on_progress is not None:
                on_progress(self.progress)
        return self.progress


class _ClaimLoop:
    """One turn of the claimer's loop at a time: claim when the queues run low, renew the
    leases of what is held, notice halted editions, finish editions when idle."""

    def __init__(self, sender: Sender, edition_id: int | None):
        self.sender = sender
        self.edition_id = edition_id
        self.editions: set[int] = set()
        self.last_halt_check = 0.0
        self.last_renewal = time.monotonic()
        self.backoff = 0.1
        self.low_water = max(sum(r.connections for r in sender.relays) * 2,
                             sender.settings.batch_size // 2)

    def step(self, conn) -> tuple[list[dq.Claimed], bool]:
        """(what was claimed, whether a run for one edition is done)."""
        sender, settings = self.sender, self.sender.settings
        if time.monotonic() - self.last_renewal > settings.lease_seconds / 3:
            sender._renew(conn)
            self.last_renewal = time.monotonic()
        claimed: list[dq.Claimed] = []
        if sender._in_memory() < self.low_water:
            now = sender.clock()
            claimed = dq.claim(conn, worker=settings.worker_id, limit=settings.batch_size,
                               lease_seconds=settings.lease_seconds, now=now,
                               edition_id=self.edition_id)
            sender.hold_leases(claimed, now)
            self.editions.update(job.edition_id for job in claimed)
            sender._dispatch(claimed)
        if time.monotonic() - self.last_halt_check > settings.halt_check_interval:
            sender.halted = dq.halted_editions(conn, self.editions)
            self.last_halt_check = time.monotonic()
        if claimed or sender._in_memory() or not sender.writer.items.empty():
            return claimed, False
        dq.finish_editions(conn, sender.clock())
        return claimed, self.edition_id is not None
