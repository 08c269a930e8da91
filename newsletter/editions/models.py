"""Editions (what is sent), their variants (one rendering per group of alike readers) and
their link tables (click tracking targets, never taken from a URL)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base, UTCDateTime, utcnow


class EditionKind(StrEnum):
    DIGEST = "digest"
    SPECIAL = "special"


class EditionStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    STARTING = "starting"    # one worker holds the start (render, fan-out) under start_claim
    SENDING = "sending"
    SENT = "sent"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Edition(Base):
    __tablename__ = "editions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default=EditionKind.SPECIAL.value)
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(12), default=EditionStatus.DRAFT.value)
    # Content by section: [{"title": str, "topic": slug|None, "synthesis_ids": [..]}] and/or
    # {"body_html": ...} for special editions.
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Audience: {"topics": [slugs] (empty = everyone), "tier": "all"|"paid"}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tracking: Mapped[bool] = mapped_column(Boolean, default=True)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    # Public web version: /editions/<slug> (no personal links, ever).
    slug: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    # Digests: the UTC send slot, and until when readers due in it may still be added (the
    # edition is not finished before then, so a late reader never lands in a sent edition).
    slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    open_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # While ``starting``: the claim of the one worker rendering and fanning out (its
    # started_at is when it claimed); another may take it over once it is stale.
    start_claim: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_editions_status_send_at", "status", "send_at"),
                      Index("ix_editions_started_at", "started_at"))


class EditionVariant(Base):
    """One rendering of an edition: HTML and text with personal placeholders, compiled once."""

    __tablename__ = "edition_variants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    format: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(300))
    # PersonalTemplate as JSON: {"literals": [...], "fields": [...]}
    html: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    text: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("edition_id", "key"),)


class EditionLink(Base):
    """The n-th tracked link of an edition; /c/<token>/<n> redirects only to these."""

    __tablename__ = "edition_links"

    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"),
                                            primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)


class EditionTopic(Base):
    """A topic an edition is for: its audience topics and its sections' topics. An edition
    with none is for everyone. Makes the per-topic archive one indexed query."""

    __tablename__ = "edition_topics"

    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"),
                                            primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"),
                                          primary_key=True)

    __table_args__ = (Index("ix_edition_topics_topic_id", "topic_id"),)
