"""Topics and syntheses: what the publication writes and readers follow."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.db import Base, UTCDateTime, utcnow


class SynthesisStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


synthesis_topics = Table(
    "synthesis_topics",
    Base.metadata,
    Column("synthesis_id", ForeignKey("syntheses.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="RESTRICT"), primary_key=True),
    Index("ix_synthesis_topics_topic_id", "topic_id"),
)


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    premium: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)

    def __repr__(self) -> str:
        return f"<Topic {self.slug}>"


# The one order of topics, everywhere they are listed: the editor's position, then the id
# (positions tie only in data made before topics could be reordered).
TOPIC_ORDER = (Topic.position, Topic.id)


class Synthesis(Base):
    """One published piece: a summary of a source article plus the analyst's context and take."""

    __tablename__ = "syntheses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text)
    context: Mapped[str] = mapped_column(Text, default="")
    analysis: Mapped[str] = mapped_column(Text, default="")
    watch: Mapped[str] = mapped_column(Text, default="")
    mentions: Mapped[list[str]] = mapped_column(JSON, default=list)
    byline: Mapped[str] = mapped_column(String(200), default="")
    source_name: Mapped[str] = mapped_column(String(200))
    source_url: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(20), default=SynthesisStatus.PUBLISHED.value)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When it became visible to readers: set once, the first time it is published, to the
    # later of that moment and ``published_at``. Only moves forward (unlike published_at,
    # which a back-dated entry or a late draft can set in the past), so digests select by it.
    listed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    topics: Mapped[list[Topic]] = relationship(
        secondary=synthesis_topics, order_by=TOPIC_ORDER, lazy="selectin"
    )

    __table_args__ = (Index("ix_syntheses_status_published_at", "status", "published_at"),
                      Index("ix_syntheses_listed_at", "listed_at"))

    @property
    def topic_names(self) -> list[str]:
        return [topic.name for topic in self.topics]

    @property
    def is_published(self) -> bool:
        return self.status == SynthesisStatus.PUBLISHED.value

    def __repr__(self) -> str:
        return f"<Synthesis {self.external_id}>"


class Feed(Base):
    """An RSS or Atom feed the publication writes elsewhere; new entries become syntheses."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)  # topic slugs
    publish: Mapped[bool] = mapped_column(Boolean, default=False)  # False: entries are drafts
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    etag: Mapped[str | None] = mapped_column(String(300), nullable=True)
    modified: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FeedEntry(Base):
    """An entry already seen in a feed (by its id or link), so a poll never imports it twice."""

    __tablename__ = "feed_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(500))
    synthesis_id: Mapped[int | None] = mapped_column(
        ForeignKey("syntheses.id", ondelete="SET NULL"), nullable=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("feed_id", "guid"),)
