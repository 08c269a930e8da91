"""One delivery per (edition, reader), every attempt at it, and what came back afterwards."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base, UTCDateTime, utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class DeliveryStatus(StrEnum):
    QUEUED = "queued"          # waiting for a worker
    CLAIMED = "claimed"        # a worker holds it under a lease
    SENT = "sent"              # accepted by a relay (2xx) or written to the outbox: not "delivered"
    DEFERRED = "deferred"      # a transient failure; tried again at next_attempt_at
    BOUNCED = "bounced"        # refused for good (5xx or a hard-bounce report); address suppressed
    FAILED = "failed"          # gave up after too many attempts or too long
    CANCELLED = "cancelled"    # the edition was cancelled, or the reader left before it went out


OPEN_STATUSES = (DeliveryStatus.QUEUED.value, DeliveryStatus.CLAIMED.value,
                 DeliveryStatus.DEFERRED.value)


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("edition_variants.id", ondelete="CASCADE"))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    relay_reply: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    first_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    opens: Mapped[int] = mapped_column(Integer, default=0)
    machine_opens: Mapped[int] = mapped_column(Integer, default=0)
    first_clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("edition_id", "reader_id"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_deliveries_edition_id_status", "edition_id", "status"),
        Index("ix_deliveries_reader_id", "reader_id"),
        # The dashboard's send rate: messages accepted in the last minute and hour.
        Index("ix_deliveries_sent_at", "sent_at"),
    )


class DeliveryAttempt(Base):
    """One try at handing a delivery to a relay, with the relay's exact answer."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    outcome: Mapped[str] = mapped_column(String(10))
    code: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    message: Mapped[str] = mapped_column(String(500), default="")
    relay: Mapped[str] = mapped_column(String(100), default="")
    worker: Mapped[str] = mapped_column(String(80), default="")

    __table_args__ = (Index("ix_delivery_attempts_delivery_id", "delivery_id"),)


class BounceEvent(Base):
    """A bounce or complaint about an address (from SMTP, a DSN, an ARF or a webhook)."""

    __tablename__ = "bounce_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True)
    kind: Mapped[str] = mapped_column(String(20))    # hard_bounce, soft_bounce, complaint
    source: Mapped[str] = mapped_column(String(20))  # smtp, dsn, arf, ses, postmark, ...
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    detail: Mapped[str] = mapped_column(String(500), default="")

    __table_args__ = (Index("ix_bounce_events_email_hash_occurred_at", "email_hash",
                            "occurred_at"),)


class ProcessedEvent(Base):
    """Report and webhook ids already handled, so a replay changes nothing."""

    __tablename__ = "processed_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("source", "event_id"),)


class TrackingEvent(Base):
    """Open and click detail (counts live on the delivery); prunable."""

    __tablename__ = "tracking_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))      # open, click
    link: Mapped[int | None] = mapped_column(Integer, nullable=True)
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)

    __table_args__ = (Index("ix_tracking_events_delivery_id", "delivery_id"),)


class RelayState(Base):
    """One relay's shared message spacing: the next free send slot for every worker."""

    __tablename__ = "relay_state"

    relay: Mapped[str] = mapped_column(String(200), primary_key=True)
    next_slot_at: Mapped[float] = mapped_column(Float, default=0.0)  # Unix time, seconds
    # The circuit breaker's view (``delivery.breaker``): since when the relay refuses
    # connections (None: it answers), when a worker last tried it, and what it said.
    down_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)


class RelayMinute(Base):
    """Messages one relay was allowed in one minute (Unix time // 60), by every worker: the
    hourly cap counts the last 61 of them."""

    __tablename__ = "relay_minutes"

    relay: Mapped[str] = mapped_column(String(200), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)


class WorkerBeat(Base):
    """A worker's heartbeat: written every few seconds by its scheduler, so the dashboard
    can tell a live worker from one that stopped (rows older than a day are pruned)."""

    __tablename__ = "worker_beats"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
