"""One relay connection of the sender: a thread that takes claimed deliveries, composes
each message (per-variant template, personal values, DKIM), sends it over its own SMTP
connection, and hands the outcome — the send policy's verdict on the reply — to the
sender's outcome writer, waiting for it to be committed before the next message (the
delivery guarantee in ``delivery.sender``). A relay that is down is not dialled (its
circuit breaker, ``mail.breaker``): the message goes back to the queue for the next probe.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from newsletter.delivery import queue as dq
from newsletter.mail import SendResult, TransportError
from newsletter.mail.breaker import RelayBreaker
from newsletter.mail.policy import judge_reply, retry_delay
from newsletter.mail.relays import RelayConfig

if TYPE_CHECKING:
    from newsletter.delivery.sender import Sender

log = logging.getLogger(__name__)


class Throttle(Protocol):
    delay_hint: float

    def wait(self, stop: threading.Event | None = None,
             max_wait: float | None = None) -> bool: ...


class _Unlimited:
    """A relay without limits: every message may go at once."""

    delay_hint = 0.0

    def wait(self, stop: threading.Event | None = None, max_wait: float | None = None) -> bool:
        return True


UNLIMITED = _Unlimited()


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
    soft_bounces: dq.SoftBounceRule = dq.SoftBounceRule()


def outcome_of_reply(job: dq.Claimed, result: SendResult | TransportError, now: datetime,
                     settings: SendSettings, relay: str) -> dq.SendOutcome:
    """The send policy's verdict (``mail.policy.judge_reply``) as an outcome: sent; bounced
    (hard or soft, by the enhanced status); or deferred with exponential backoff and
    jitter — failed past the maximum attempts or age."""
    if isinstance(result, SendResult):
        return dq.SendOutcome(job.id, "sent", result.code, f"{result.code} {result.reply}", relay)
    reply = str(result)  # "451 DATA: 4.3.0 try again later", or the network failure
    verdict = judge_reply(result.code, result.reply)
    if verdict.outcome == "bounced":
        return dq.SendOutcome(job.id, "bounced", result.code, reply, relay,
                              bounce=verdict.bounce)
    attempts = job.attempts + 1
    if attempts >= settings.max_attempts or now - job.created_at >= settings.max_age:
        return dq.SendOutcome(job.id, "failed", result.code, reply, relay)
    delay = retry_delay(attempts, base=settings.backoff_base, cap=settings.backoff_cap)
    return dq.SendOutcome(job.id, "deferred", result.code, reply, relay,
                          next_attempt_at=now + timedelta(seconds=delay))


class Connection(threading.Thread):
    def __init__(self, sender: Sender, relay: RelayConfig, jobs: queue.Queue, throttle: Throttle,
                 index: int, breaker: RelayBreaker):
        super().__init__(name=f"relay-{relay.name}-{index}", daemon=True)
        self.sender = sender
        self.relay = relay
        self.jobs = jobs
        self.throttle = throttle
        self.breaker = breaker
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
                try:
                    outcome = self._deliver(job)
                except Exception:  # noqa: BLE001 - never leave a held job without an outcome
                    log.exception("delivery %s: unexpected error; it goes back to the queue",
                                  job.id)
                    outcome = dq.SendOutcome(job.id, "released", attempted=False)
                try:
                    sender.writer.submit(outcome, wait=True, job=job)
                finally:
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
        if not sender.lease_ok(job.claim_id):  # before taking a relay slot for it
            return dq.SendOutcome(job.id, "released", attempted=False)
        # Never hold a claimed delivery for long (its lease would expire and another worker
        # could send it too): past a short wait, put it back for when the relay has room.
        if not self.throttle.wait(sender.stop_now, max_wait=sender.settings.lease_seconds / 4):
            later = sender.clock() + timedelta(seconds=self.throttle.delay_hint)
            return dq.SendOutcome(job.id, "released", attempted=False, next_attempt_at=later)
        # A lease that could not be renewed may run out while this message is on the wire;
        # then another worker may claim and send it too. Give it back unsent instead.
        if not sender.lease_ok(job.claim_id):
            return dq.SendOutcome(job.id, "released", attempted=False)
        # A relay that is down is not dialled: the message waits for the next probe.
        wait = self.breaker.admit()
        if wait is not None:
            return self._later(job, wait)
        try:
            envelope_from, recipient, message = sender.composer.compose(job)
        except Exception as exc:  # noqa: BLE001 - a message we cannot build is a failure
            self.breaker.abandon()
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
            if exc.code is None or exc.connecting:  # the connection is gone; a new one next
                self.transport.close()
                self.transport = None
            if exc.connecting:
                # Nothing was said about this message: it keeps its attempts and goes back
                # for when the relay is tried again.
                return self._later(job, self.breaker.failed(str(exc)))
        self.breaker.succeeded()
        return outcome_of_reply(job, result, sender.clock(), sender.settings, self.relay.name)

    def _later(self, job: dq.Claimed, seconds: float) -> dq.SendOutcome:
        later = self.sender.clock() + timedelta(seconds=max(seconds, 0.0))
        return dq.SendOutcome(job.id, "released", attempted=False, next_attempt_at=later)


