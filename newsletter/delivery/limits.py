"""Relay limits for every worker together: messages per second and the hourly cap of one
relay hold across any number of worker processes on any number of machines, because the
slots are handed out by the database they share.

A worker reserves a few send slots at a time (about a fifth of a second's worth) in one
short transaction that locks the relay's row in ``relay_state``: the slots continue from
the relay's ``next_slot_at``, evenly spaced at the relay's rate, and the minute's count in
``relay_minutes`` grows by as many. A message starts at its slot, or less than half a slot
late (later, the slot is dropped), so no second ever holds more than ``rate + 1``. The
hourly cap counts the last 61 minutes, so no sliding hour ever holds more than the cap. A
slot a worker reserved but did not use (it stopped, or was half a slot late) is lost,
never given twice: limits are never exceeded, at the price of a little unused capacity.
Clocks are the workers' own (Unix time); keep the machines' clocks in sync (NTP), as for
leases.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
RESERVE_SECONDS = 0.2        # how much of a second's rate one reservation takes
HOURLY_CHUNK = 10            # most permits one reservation takes when only a cap applies
HOUR_BUCKETS = 61            # minutes counted for the cap: covers any sliding hour

_ENSURE = ("INSERT INTO relay_state (relay, next_slot_at) VALUES (:relay, 0) "
           "ON CONFLICT (relay) DO NOTHING")
# -- name: relay-lock
# Contract: the first write of a reservation: it locks the relay's row (PostgreSQL) or takes
# the write lock (SQLite), so reservations for one relay happen one at a time.
_LOCK = "UPDATE relay_state SET next_slot_at = next_slot_at WHERE relay = :relay"
_NEXT = "SELECT next_slot_at FROM relay_state WHERE relay = :relay"
_SET_NEXT = "UPDATE relay_state SET next_slot_at = :next WHERE relay = :relay"
_RECENT = ("SELECT minute, sent FROM relay_minutes WHERE relay = :relay AND minute > :since "
           "ORDER BY minute")
_COUNT = ("INSERT INTO relay_minutes (relay, minute, sent) VALUES (:relay, :minute, :n) "
          "ON CONFLICT (relay, minute) DO UPDATE SET sent = relay_minutes.sent + :n")
_PRUNE = "DELETE FROM relay_minutes WHERE relay = :relay AND minute <= :before"


class SharedThrottle:
    """One relay's limits across every worker: ``wait`` blocks until this worker's next
    slot. Shared by one sender's connection threads."""

    def __init__(self, engine: Engine, relay: str, rate: float, hourly: int, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.engine = engine
        self.relay = relay[:200]
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.hourly = hourly
        self._clock = clock
        self._sleep = sleep
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()
        self._local = threading.local()  # delay_hint is per calling thread

    @property
    def delay_hint(self) -> float:
        """How far away the next slot was when this thread's last ``wait`` said no."""
        return getattr(self._local, "delay_hint", 0.0)

    @delay_hint.setter
    def delay_hint(self, value: float) -> None:
        self._local.delay_hint = value

    def wait(self, stop: threading.Event | None = None, max_wait: float | None = None) -> bool:
        """Block until this worker's next slot; False if ``stop`` was set meanwhile, or if
        the next slot is more than ``max_wait`` seconds away (``delay_hint`` says how far)."""
        self.delay_hint = 0.0
        while True:
            with self._lock:
                slot = self._take(max_wait)
            if slot is not None:
                break
            if max_wait is not None:
                return False
            # No limit on the wait: wait for room (in steps, so ``stop`` is heard).
            if stop is not None:
                if stop.wait(min(max(self.delay_hint, 0.05), 1.0)):
                    return False
            else:
                self._sleep(max(self.delay_hint, 0.05))
        while (delay := slot - self._clock()) > 0:
            if stop is not None and stop.wait(min(delay, 1.0)):
                return False
            if stop is None:
                self._sleep(min(delay, 1.0))
        return True

    def _take(self, max_wait: float | None) -> float | None:
        now = self._clock()
        # A slot missed by half an interval or more is gone: using it later would bunch
        # sends (so a message starts within half a slot of its own, and no second holds
        # more than rate + 1). Without a rate, a permit keeps for a minute: the cap counts
        # 61 minutes, so a permit used within its minute's next one is still counted.
        late = self.interval / 2 if self.interval else 60.0
        while self._slots and now - self._slots[0] >= late:
            self._slots.popleft()
        if not self._slots:
            try:
                self._reserve(now, max_wait)
            except SQLAlchemyError:
                log.warning("relay %s: cannot reach the shared limits; holding back",
                            self.relay, exc_info=True)
                self.delay_hint = 1.0
                return None
        if not self._slots:
            return None
        wait = self._slots[0] - now
        if max_wait is not None and wait > max_wait:
            self.delay_hint = wait
            return None
        return self._slots.popleft()

    def _reserve(self, now: float, max_wait: float | None) -> None:
        """Reserve the next few slots in one transaction (see the module docstring)."""
        if self.interval:
            want = max(1, math.ceil(RESERVE_SECONDS / self.interval))
        else:  # a small cap is taken one by one, so a worker never hoards a big share
            want = max(1, min(HOURLY_CHUNK, self.hourly // 100))
        params = {"relay": self.relay}
        with self.engine.connect() as conn:
            conn.execute(text(_ENSURE), params)
            conn.commit()
            conn.execute(text(_LOCK), params)
            start = max(now, conn.execute(text(_NEXT), params).scalar_one() or 0.0)
            if max_wait is not None and start - now > max_wait:
                self.delay_hint = start - now
                conn.rollback()
                return
            minute = int(now // 60)
            if self.hourly:
                recent = conn.execute(text(_RECENT), {**params,
                                                      "since": minute - HOUR_BUCKETS}).all()
                used = sum(row.sent for row in recent)
                if used >= self.hourly:
                    # Room again once the oldest counted minute leaves the window.
                    self.delay_hint = (recent[0].minute + HOUR_BUCKETS) * 60 - now
                    conn.rollback()
                    return
                want = min(want, self.hourly - used)
            slots = [start + i * self.interval for i in range(want)]
            if self.interval:
                conn.execute(text(_SET_NEXT), {**params, "next": start + want * self.interval})
            if self.hourly:
                conn.execute(text(_COUNT), {**params, "minute": minute, "n": want})
                conn.execute(text(_PRUNE), {**params, "before": minute - 2 * HOUR_BUCKETS})
            conn.commit()
        self._slots.extend(slots)
