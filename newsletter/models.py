"""Imports every domain's models so the metadata (and Alembic) sees all tables."""

from newsletter.accounts.models import ApiToken
from newsletter.content.models import Synthesis, Topic, synthesis_topics
from newsletter.subscribers.models import ConsentEvent, Reader, ReaderTopic, Suppression

__all__ = ["ApiToken", "ConsentEvent", "Reader", "ReaderTopic", "Suppression", "Synthesis",
           "Topic", "synthesis_topics"]
