"""Imports every domain's models so the metadata (and Alembic) sees all tables."""

from newsletter.accounts.models import ApiToken
from newsletter.content.models import Synthesis, Topic, synthesis_topics

__all__ = ["ApiToken", "Synthesis", "Topic", "synthesis_topics"]
