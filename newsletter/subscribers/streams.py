"""The two streams of list mail a reader can leave one at a time (digests, special
editions): the unsubscribe link that names one, and leaving it."""

from __future__ import annotations

from newsletter.db import db
from newsletter.subscribers.models import STREAM_FIELDS, Reader, ReaderStatus, Stream
from newsletter.subscribers.service import (
    Actor,
    LinkNoLongerValid,
    ReaderServices,
    get_reader,
    record_event,
    unsubscribe,
)
from newsletter.subscribers.tokens import Purpose


def unsubscribe_link(services: ReaderServices, token: str) -> tuple[Reader, Stream | None]:
    """The reader an unsubscribe link names and the stream it was sent in (None: a link
    for everything, such as one sent before streams)."""
    payload = services.tokens.read(Purpose.UNSUBSCRIBE, token)
    reader = get_reader(payload["r"])
    if reader is None:
        raise LinkNoLongerValid("this subscription no longer exists")
    stream = payload.get("s")
    return reader, Stream(stream) if stream in {s.value for s in Stream} else None


def leave_stream(services: ReaderServices, reader: Reader, stream: Stream,
                 actor: Actor) -> bool:
    """Stop one stream of list mail (digests or special editions); True if that changed
    something (idempotent). Leaving the last stream the reader gets leaves everything.

    Deliveries of that stream already queued are not sent: the claim checks the stream.
    """
    if reader.status != ReaderStatus.ACTIVE.value:
        return unsubscribe(services, reader, actor)
    if not getattr(reader, STREAM_FIELDS[stream]):
        return False
    other = STREAM_FIELDS[Stream.SPECIAL if stream == Stream.DIGEST else Stream.DIGEST]
    if not getattr(reader, other):
        return unsubscribe(services, reader, actor)
    setattr(reader, STREAM_FIELDS[stream], False)
    record_event(services, reader, "unsubscribe_stream", actor, detail={"stream": stream.value})
    db.session.commit()
    return True
