"""Imports every domain's models so the metadata (and Alembic) sees all tables."""

from newsletter.accounts.models import Admin, ApiToken, AuditEntry
from newsletter.billing.models import BillingAccount, BillingEvent, BillingSubscription
from newsletter.content.models import Feed, FeedEntry, Synthesis, Topic, synthesis_topics
from newsletter.delivery.models import (
    BounceEvent,
    Delivery,
    DeliveryAttempt,
    ProcessedEvent,
    RelayMinute,
    RelayState,
    TrackingEvent,
    WorkerBeat,
)
from newsletter.editions.models import Edition, EditionLink, EditionTopic, EditionVariant
from newsletter.subscribers.models import ConsentEvent, Reader, ReaderTopic, Suppression

__all__ = [
    "Admin", "ApiToken", "AuditEntry", "BillingAccount", "BillingEvent",
    "BillingSubscription", "BounceEvent", "ConsentEvent", "Delivery",
    "DeliveryAttempt", "Edition",
    "EditionLink", "EditionTopic", "EditionVariant", "Feed", "FeedEntry", "ProcessedEvent",
    "Reader", "ReaderTopic", "RelayMinute", "RelayState", "Suppression", "Synthesis", "Topic",
    "TrackingEvent", "WorkerBeat",
    "synthesis_topics",
]
