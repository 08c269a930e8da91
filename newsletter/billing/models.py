"""What billing keeps: a reader's link to their Stripe customer and any complimentary
access (:class:`BillingAccount`), each subscription's last known state
(:class:`BillingSubscription`), and the ids of the Stripe events already handled
(:class:`BillingEvent`).

The entitlement itself lives on the reader (``readers.plan`` and ``readers.plan_until``), so
the set-based statements of fan-out and digests read it without a join; the billing service
writes it from these rows whenever they change (``billing.service.refresh_plan``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base, UTCDateTime, utcnow


class BillingAccount(Base):
    """One reader's billing: their Stripe customer (made at their first checkout) and
    complimentary access granted by an owner (Ghost's "comp" members)."""

    __tablename__ = "billing_accounts"

    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"),
                                           primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    comp: Mapped[bool] = mapped_column(Boolean, default=False)
    comp_note: Mapped[str] = mapped_column(String(200), default="")
    comp_by: Mapped[str] = mapped_column(String(320), default="")
    comp_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class BillingSubscription(Base):
    """A Stripe subscription as last fetched from Stripe.

    ``sync_seq`` and ``applied_seq`` order concurrent updates without holding a lock across
    the call to Stripe: each update takes the next number before it fetches, and writes only
    if no update that fetched later has written (see ``billing.service``). ``grace_until``
    is set when a payment fails (access continues until then) and cleared when one succeeds.
    After an erasure ``reader_id`` and ``customer_id`` are gone and the amounts stay, for
    the revenue figures.
    """

    __tablename__ = "billing_subscriptions"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    reader_id: Mapped[int | None] = mapped_column(
        ForeignKey("readers.id", ondelete="SET NULL"), nullable=True)
    customer_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(30), default="unknown")
    price_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    interval: Mapped[str | None] = mapped_column(String(10), nullable=True)
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    amount: Mapped[int | None] = mapped_column(Integer, nullable=True)  # minor units
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sync_seq: Mapped[int] = mapped_column(Integer, default=0)
    applied_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_billing_subscriptions_reader_id", "reader_id"),
        Index("ix_billing_subscriptions_customer_id", "customer_id"),
        Index("ix_billing_subscriptions_status", "status"),
    )


class BillingEvent(Base):
    """A Stripe event handled: stored with the change it made, in the same transaction, so a
    replay (Stripe delivers at least once) changes nothing."""

    __tablename__ = "billing_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
