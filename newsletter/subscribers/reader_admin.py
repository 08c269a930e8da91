"""What an admin changes on one reader besides suppression (``suppression_list``),
unsubscribing (``service.unsubscribe``) and erasure (``privacy.erase_reader``): the topics.
"""

from __future__ import annotations

from newsletter.db import db
from newsletter.errors import Conflict
from newsletter.subscribers.models import Reader, ReaderStatus
from newsletter.subscribers.preferences import parse_topics
from newsletter.subscribers.service import Actor, ReaderServices, record_event, set_topics
from newsletter.validation import FieldError, InvalidInput


class ReaderErased(Conflict):
    """The reader was erased: nothing of theirs can change any more."""


def change_topics(services: ReaderServices, reader: Reader, slugs: list[str],
                  actor: Actor) -> list[list[str]] | None:
    """Set the reader's topics to ``slugs`` (topics offered to readers, at least one), in
    the site's order; return [before, after], or None when nothing changed. A change adds a
    ``preferences`` consent event. Raises ``InvalidInput`` (nothing changed) or
    :class:`ReaderErased`."""
    if reader.status == ReaderStatus.ERASED.value:
        raise ReaderErased()
    errors: list[FieldError] = []
    topics = parse_topics({"topic": list(slugs)}, services.offered_topics(reader), errors)
    if errors:
        raise InvalidInput(errors)
    before = [link.topic.slug for link in reader.followed]
    after = [topic.slug for topic in topics]
    if before == after:
        return None
    set_topics(reader, topics)
    record_event(services, reader, "preferences", actor,
                 detail={"changes": {"topics": [before, after]}})
    db.session.commit()
    return [before, after]
