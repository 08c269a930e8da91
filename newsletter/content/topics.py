"""Topics as owners manage them: create, rename, describe, reorder, mark premium.

A topic's slug is made once, from its first name, and never changes: it is in readers'
links, feeds and the API. Its name and description may change at any time. ``position``
orders topics everywhere readers see them; reordering renumbers every topic 1..n in one
transaction, so two owners reordering at once never leave two topics on one place.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from newsletter.content.models import TOPIC_ORDER, Topic
from newsletter.content.service import slugify, unique_slug
from newsletter.db import db
from newsletter.validation import FieldError, InvalidInput

NAME_LENGTH = 120
DESCRIPTION_LENGTH = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\x85]")


class InvalidTopic(InvalidInput):
    """The topic form has problems; ``errors`` names each."""


def _check(name: str, description: str, topic_id: int | None) -> tuple[str, str]:
    name = " ".join((name or "").split())
    description = (description or "").replace("\r\n", "\n").strip()
    errors: list[FieldError] = []
    if not name:
        errors.append(FieldError("name", "A topic needs a name."))
    elif len(name) > NAME_LENGTH:
        errors.append(FieldError("name", f"At most {NAME_LENGTH} characters."))
    elif _CONTROL.search(name):
        errors.append(FieldError("name", "Control characters are not allowed."))
    else:
        taken = db.session.scalar(select(Topic.id).where(
            func.lower(Topic.name) == name.lower()))
        if taken is not None and taken != topic_id:
            errors.append(FieldError("name", f"There is a topic called {name!r} already."))
    if len(description) > DESCRIPTION_LENGTH:
        errors.append(FieldError("description", f"At most {DESCRIPTION_LENGTH} characters."))
    elif _CONTROL.sub("", description.replace("\n", "")) != description.replace("\n", ""):
        errors.append(FieldError("description", "Control characters are not allowed."))
    if errors:
        raise InvalidTopic(errors)
    return name, description


def create_topic(name: str, description: str = "", premium: bool = False) -> Topic:
    """A new topic at the end of the order. Raises :class:`InvalidTopic`."""
    name, description = _check(name, description, None)
    base = slugify(name)
    if base == "synthesis" and "synthesis" not in name.lower():
        base = "topic"  # slugify's word for a name with nothing ASCII in it
    last = db.session.scalar(select(func.max(Topic.position))) or 0
    topic = Topic(name=name, description=description, premium=premium,
                  slug=unique_slug(Topic.slug, base), position=last + 1)
    db.session.add(topic)
    db.session.commit()
    return topic


def update_topic(topic: Topic, name: str, description: str, premium: bool) -> list[str]:
    """Rename, describe, mark premium or free; the names of the fields that changed.
    Raises :class:`InvalidTopic` (nothing changed)."""
    name, description = _check(name, description, topic.id)
    changed = [field for field, value in (("name", name), ("description", description),
                                          ("premium", premium))
               if getattr(topic, field) != value]
    topic.name, topic.description, topic.premium = name, description, premium
    db.session.commit()
    return changed


def move_topic(topic: Topic, step: int) -> bool:
    """Move a topic ``step`` places (-1 up, +1 down); whether it moved."""
    ordered = list(db.session.scalars(
        select(Topic).order_by(*TOPIC_ORDER).with_for_update()))
    index = next(i for i, t in enumerate(ordered) if t.id == topic.id)
    target = min(max(index + step, 0), len(ordered) - 1)
    if target == index:
        return False
    ordered.insert(target, ordered.pop(index))
    for position, each in enumerate(ordered, start=1):
        each.position = position
    db.session.commit()
    return True
