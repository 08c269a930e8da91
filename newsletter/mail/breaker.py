"""A circuit breaker per relay: a relay that refuses connections is left alone for a while
instead of being dialled once per message, and comes back within one probe of answering.
Used by list mail (``delivery.sender``, one breaker per relay per sender) and account mail
(``subscribers.outbox``, one per process, on ``MailSetup``).

Contract:
* Only failures to reach the relay count (refused, timed out, dropped before or while it
  greeted us, TLS or authentication failing): ``TransportError.connecting``. A reply of any
  kind — even a 5xx about one message — proves the relay is up.
* After :data:`THRESHOLD` such failures in a row the breaker opens for 1 s; each failed
  probe doubles that, up to 60 s. While it is open nobody dials the relay: messages in hand
  wait (list mail: back to the queue unattempted, due at the next probe, so an outage fails
  nothing early and spends none of a delivery's attempts). When the time is up one caller
  probes with a real message; success closes the breaker, failure reopens it.
* A change of state is logged once; ``record`` (if given) is told of every change and every
  failed probe: (relay, down since or None, now, last error or None).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

log = logging.getLogger(__name__)

THRESHOLD = 3
FIRST_DELAY = 1.0
MAX_DELAY = 60.0
PROBE_TIMEOUT = 60.0

Recorder = Callable[[str, "datetime | None", datetime, "str | None"], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RelayBreaker:
    """One relay's breaker, shared by the threads that send through it."""

    def __init__(self, relay: str, *, record: Recorder | None = None,
                 threshold: int = THRESHOLD, first_delay: float = FIRST_DELAY,
                 max_delay: float = MAX_DELAY, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = _utcnow):
        self.relay = relay[:200]
        self.record = record
        self.threshold = threshold
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until: float | None = None   # None: closed
        self._delay = first_delay
        self._probing = False
        self._probe_started = 0.0
        self._down_since: datetime | None = None

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until is not None

    def admit(self) -> float | None:
        """None: go ahead (closed, or the caller is the probe). Otherwise the seconds until
        the next probe: put the message back for then."""
        with self._lock:
            if self._open_until is None:
                return None
            now = self._clock()
            left = self._open_until - now
            # A probe that never reported (its caller had nothing to send after all, or
            # died) is given up after PROBE_TIMEOUT, so the breaker cannot stay stuck.
            stale = self._probing and now - self._probe_started > PROBE_TIMEOUT
            if left <= 0 and (not self._probing or stale):
                self._probing, self._probe_started = True, now
                return None
            return max(left, 0.0) + (self._delay if self._probing else 0.0)

    def abandon(self) -> None:
        """The caller admitted as the probe sent nothing after all: let another probe."""
        with self._lock:
            self._probing = False

    def succeeded(self) -> None:
        """The relay answered."""
        with self._lock:
            self._failures = 0
            if self._open_until is None:
                return
            since = self._down_since
            self._open_until, self._probing, self._delay = None, False, self.first_delay
            self._down_since = None
        log.warning("relay %s is back after %.0f s down", self.relay,
                    (self._wall() - since).total_seconds() if since else 0.0)
        self._record(None, None)

    def failed(self, error: str) -> float:
        """The relay could not be reached; returns the seconds until it is tried again."""
        with self._lock:
            now = self._clock()
            if self._probing:
                self._probing = False
                self._delay = min(self._delay * 2, self.max_delay)
                self._open_until = now + self._delay
                retry, changed = self._delay, False
            elif self._open_until is not None:
                return max(self._open_until - now, 0.0)  # a send that began before it opened
            else:
                self._failures += 1
                if self._failures < self.threshold:
                    return 0.0
                self._delay = self.first_delay
                self._open_until = now + self._delay
                self._down_since = self._wall()
                retry, changed = self._delay, True
            since = self._down_since
        if changed:
            log.warning("relay %s is down (%s); trying again in %.0f s, then backing off up "
                        "to %.0f s", self.relay, error, retry, self.max_delay)
        self._record(since, error)
        return retry

    def _record(self, down_since: datetime | None, error: str | None) -> None:
        if self.record is None:
            return
        try:
            self.record(self.relay, down_since, self._wall(), error)
        except Exception:  # noqa: BLE001 - health reporting must never stop a send
            log.warning("relay %s: could not record its health", self.relay, exc_info=True)
