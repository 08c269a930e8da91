"""Readers, the topics they follow, their consent history, and the suppression list."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
    select,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.content.models import Topic
from newsletter.db import Base, UTCDateTime, db, utcnow


class ReaderStatus(StrEnum):
    PENDING = "pending"            # asked to subscribe, has not confirmed: gets nothing else
    ACTIVE = "active"              # confirmed: gets list mail
    UNSUBSCRIBED = "unsubscribed"  # left everything
    ERASED = "erased"              # personal data removed; the row keeps aggregate counts


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    PAUSED = "paused"


class Stream(StrEnum):
    """A kind of list mail a reader can leave on its own (its edition kind's name)."""

    DIGEST = "digest"
    SPECIAL = "special"


# Which reader column says they get each stream of list mail.
STREAM_FIELDS = {Stream.DIGEST: "gets_digests", Stream.SPECIAL: "gets_specials"}


class MailFormat(StrEnum):
    HTML = "html"   # HTML with a text alternative
    TEXT = "text"   # text only


class ReaderTopic(Base):
    __tablename__ = "reader_topics"

    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"),
                                           primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"),
                                          primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    topic: Mapped[Topic] = relationship(lazy="joined")

    __table_args__ = (Index("ix_reader_topics_topic_id", "topic_id"),)


class Reader(Base):
    """A person on the list. Readers have no password: they act through signed links."""

    __tablename__ = "readers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True, nullable=True)
    # Keyed hash of ``email`` (the suppression list's form), so sends can check suppression
    # in set-based SQL. Kept in step by the service whenever the address changes.
    email_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # What to call them in a greeting ("Hello Ada,"); optional, erased with the address.
    first_name: Mapped[str | None] = mapped_column(String(60), nullable=True)
    # The paid tier, written by ``billing`` (the one rule is ``billing.entitlements``):
    # ``paid`` until ``plan_until`` (None: open-ended, e.g. an active subscription).
    plan: Mapped[str] = mapped_column(String(10), default="free", server_default="free")
    plan_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=ReaderStatus.PENDING.value)
    source: Mapped[str] = mapped_column(String(20), default="form")
    frequency: Mapped[str] = mapped_column(String(10), default=Frequency.DAILY.value)
    weekly_day: Mapped[int] = mapped_column(Integer, default=0)  # 0 = Monday
    paused_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    delivery_minute: Mapped[int] = mapped_column(Integer, default=7 * 60)  # local minute of day
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    format: Mapped[str] = mapped_column(String(10), default=MailFormat.HTML.value)
    # The two streams of list mail a reader may leave one at a time (``Stream``): the
    # digest of their topics, and special editions. Leaving both is leaving everything.
    gets_digests: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    gets_specials: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    pending_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # Raised when the address changes or is put back: sessions and own-inbox links made
    # before name an older version and stop working.
    address_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Digest schedule state (editions.digests): the reader's local date whose digest was last
    # handled (queued, empty or skipped), and the listing time (syntheses.listed_at) the
    # content of their last sent digest reached.
    last_digest_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    digest_covered_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    followed: Mapped[list[ReaderTopic]] = relationship(
        order_by=ReaderTopic.position, cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        CheckConstraint("delivery_minute >= 0 AND delivery_minute < 1440",
                        name="delivery_minute_range"),
        CheckConstraint("weekly_day >= 0 AND weekly_day <= 6", name="weekly_day_range"),
        Index("ix_readers_status", "status"),
        Index("ix_readers_schedule", "timezone", "delivery_minute", "frequency", "weekly_day",
              "last_digest_on"),
    )

    @property
    def topics(self) -> list[Topic]:
        return [link.topic for link in self.followed]

    @property
    def delivery_time(self) -> str:
        return f"{self.delivery_minute // 60:02d}:{self.delivery_minute % 60:02d}"

    def __repr__(self) -> str:
        return f"<Reader {self.id} {self.status}>"


class ConsentEvent(Base):
    """One subscribe, confirm, preference change, unsubscribe or erasure, as it happened.

    Rows are only ever added. Erasure blanks ``ip`` and ``user_agent`` (personal data) but
    keeps the kind, time and source, so aggregate counts survive.
    """

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    consent_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_consent_events_reader_id", "reader_id"),)


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCES = "soft_bounces"
    COMPLAINT = "complaint"
    ERASED = "erased"
    MANUAL = "manual"


class Suppression(Base):
    """An address that must never get list mail, kept only as a keyed hash."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def latest_request(reader_id: int) -> int | None:
    """The id of the reader's latest subscribe request (its consent event)."""
    return db.session.scalar(select(func.max(ConsentEvent.id)).where(
        ConsentEvent.reader_id == reader_id, ConsentEvent.kind == "subscribe"))


def request_ended(reader_id: int, request_id: int | None) -> str | None:
    """Why subscribe request ``request_id`` no longer stands, or None when it does.

    It stands while every event of the reader's since is the same request made again (same
    topics, name and timezone) or its confirmation: asking twice and clicking the first
    email works. ``"superseded"``: a later request asked for something else. ``"changed"``: anything
    else happened since (an unsubscribe, a change of preferences, an erasure)."""
    if request_id is None:
        return None if latest_request(reader_id) is None else "superseded"
    rows = db.session.execute(select(ConsentEvent.id, ConsentEvent.kind, ConsentEvent.detail)
                              .where(ConsentEvent.reader_id == reader_id,
                                     ConsentEvent.id >= request_id)
                              .order_by(ConsentEvent.id)).all()
    if not rows or rows[0].id != request_id or rows[0].kind != "subscribe":
        return "superseded"
    topics = sorted((rows[0].detail or {}).get("topics") or [])
    for row in rows[1:]:
        detail = row.detail or {}
        if row.kind == "subscribe" and (detail.get("changed")
                                        or sorted(detail.get("topics") or []) != topics):
            return "superseded"
    if any(row.kind not in ("subscribe", "confirm") for row in rows[1:]):
        return "changed"
    return None


class AccountMailKind(StrEnum):
    CONFIRM = "confirm"            # confirm a subscription request
    MANAGE_LINK = "manage_link"    # a sign-in link to the preference centre
    EMAIL_CHANGE = "email_change"  # confirm a new address
    EMAIL_CHANGED = "email_changed"  # to the old address: it changed; a link undoes it
    PAYMENT_FAILED = "payment_failed"  # a payment failed: paid access continues for a while
    WELCOME = "welcome"            # just confirmed: what they chose, when the first digest comes


class AccountMailStatus(StrEnum):
    QUEUED = "queued"    # waiting for its first try, or for a retry after a transient failure
    SENDING = "sending"  # claimed by a worker until ``lease_until``
    SENT = "sent"        # accepted by the relay (not *delivered*)
    FAILED = "failed"    # refused for good, or out of tries
    DROPPED = "dropped"  # no longer wanted when its turn came (confirmed, superseded, erased)


class AccountMail(Base):
    """One account email waiting to go, or its record once it went (subscribers.outbox).

    The request that asks for it only adds this row, in its own transaction, so the answer
    does the same work whether or not the address is known, and a relay that is down loses
    nothing: the worker sends it, and retries.
    """

    __tablename__ = "account_mail"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    to_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # confirm only
    status: Mapped[str] = mapped_column(String(10), default=AccountMailStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        Index("ix_account_mail_due", "status", "next_attempt_at"),
        Index("ix_account_mail_reader_id", "reader_id"),
    )


class ImportStatus(StrEnum):
    """Where a CSV import of readers stands (``subscribers.imports``)."""

    UPLOADED = "uploaded"  # the file is stored; its columns are not mapped yet
    QUEUED = "queued"      # mapped, waiting for a worker (or the request, when small)
    RUNNING = "running"    # claimed by one worker until ``lease_until``
    DONE = "done"          # every line handled; the file is deleted, the report stays
    FAILED = "failed"      # stopped by an error the report names


class ImportJob(Base):
    """One CSV import of readers: the uploaded file (kept in the row, so a worker on any
    machine can read it, and deleted once done), its column mapping, its progress and its
    counts. The lines it skipped are :class:`ImportProblem` rows."""

    __tablename__ = "reader_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[int | None] = mapped_column(
        ForeignKey("admins.id", ondelete="SET NULL"), nullable=True)
    admin_email: Mapped[str] = mapped_column(String(320))  # who, still readable if gone
    filename: Mapped[str] = mapped_column(String(200), default="")
    # Deferred: loaded only by the code that reads the file, never by lists and pages.
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    encoding: Mapped[str] = mapped_column(String(10), default="utf-8")
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    has_header: Mapped[bool] = mapped_column(Boolean, default=True)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    consent_source: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(10), default=ImportStatus.UPLOADED.value)
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_reader_imports_status", "status"),)


class ImportProblem(Base):
    """A line of an import that was skipped, and why."""

    __tablename__ = "reader_import_problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("reader_imports.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(String(120), default="")
    reason: Mapped[str] = mapped_column(String(200))

    __table_args__ = (Index("ix_reader_import_problems_job_id_line", "job_id", "line"),)
