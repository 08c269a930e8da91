"""Coming back to a topic one has just left: the Undo on the unsubscribe page and in the
preference centre."""

from __future__ import annotations

from newsletter.content.models import Topic
from newsletter.db import db
from newsletter.subscribers.models import Reader, ReaderStatus
from newsletter.subscribers.service import Actor, ReaderServices, record_event, set_topics
from newsletter.validation import FieldError, InvalidInput


def rejoin_topic(services: ReaderServices, reader: Reader, slug: str, actor: Actor) -> Topic:
    """Undo leaving a topic: follow it again, last in the reader's order. Only an active
    reader, and only a topic offered to them. Returns the topic; raises ``InvalidInput``
    (nothing changed) otherwise. Following it already changes nothing."""
    if reader.status != ReaderStatus.ACTIVE.value:
        raise InvalidInput([FieldError("topic", "You are not subscribed any more: "
                                                "subscribe again to choose topics.")])
    topic = next((t for t in services.offered_topics(reader) if t.slug == slug), None)
    if topic is None:
        raise InvalidInput([FieldError("topic", "There is no such topic to follow.")])
    if all(link.topic_id != topic.id for link in reader.followed):
        set_topics(reader, [*reader.topics, topic])
        record_event(services, reader, "rejoin_topic", actor, detail={"topic": slug})
        db.session.commit()
    return topic
