"""Drafts of special editions written in the admin area: saved as often as the editor
likes, with the Markdown source kept beside its rendering, until they are sent.

A draft is changed only while it is a draft (one compare-and-set), so an edition that
started sending meanwhile is never changed under the workers.
"""

from __future__ import annotations

from sqlalchemy import delete, update

from newsletter.billing import entitlements
from newsletter.db import db
from newsletter.editions.markdown import first_paragraph_text, render_markdown
from newsletter.editions.models import Edition, EditionStatus, EditionTopic
from newsletter.editions.service import (
    EditionStateError,
    create_edition,
    tag_topics,
    validate_edition,
)
from newsletter.editions.specials import PREHEADER_LENGTH


def _body(markdown: str) -> tuple[str, str]:
    if not markdown.strip():
        return "", ""
    return render_markdown(markdown)


def save_draft(edition_id: int | None, *, subject: str, preheader: str, markdown: str,
               synthesis_ids: list[int], topics: list[str],
               tier: str = entitlements.TIER_ALL) -> Edition:
    """Create a draft (``edition_id`` None) or replace what a draft says. Raises
    ``InvalidInput`` (nothing saved) or ``EditionStateError`` (it is no longer a draft)."""
    body_html, body_text = _body(markdown)
    sections = ([{"title": "", "synthesis_ids": synthesis_ids}] if synthesis_ids else [])
    preheader = (preheader or "").strip()
    if edition_id is None:
        edition = create_edition(
            subject=subject, preheader=preheader or first_paragraph_text(
                body_html, PREHEADER_LENGTH), sections=sections, body_html=body_html,
            body_text=body_text, topics=topics, tier=tier, markdown=markdown)
        db.session.commit()  # the draft and its Markdown source, together
        return edition
    edition = db.session.get(Edition, edition_id)
    if edition is None:
        raise EditionStateError(f"no edition {edition_id}")
    subject = validate_edition(subject=subject, preheader=preheader, sections=sections,
                               has_body=bool(body_html), topics=topics, tier=tier)
    changed = db.session.execute(
        update(Edition).where(Edition.id == edition_id,
                              Edition.status == EditionStatus.DRAFT.value)
        .values(subject=subject,
                preheader=preheader or first_paragraph_text(body_html, PREHEADER_LENGTH),
                content={"sections": sections, "body_html": body_html,
                         "body_text": body_text, "markdown": markdown},
                audience={"topics": topics, "tier": tier})).rowcount
    if changed != 1:
        db.session.rollback()
        raise EditionStateError(f"edition {edition_id} is not a draft any more")
    db.session.execute(delete(EditionTopic).where(EditionTopic.edition_id == edition_id))
    tag_topics(edition_id, topics)
    db.session.commit()
    db.session.refresh(edition)
    return edition


def markdown_source(edition: Edition) -> str:
    """The Markdown the editor wrote (editions made elsewhere: their text version)."""
    content = edition.content or {}
    return content.get("markdown", content.get("body_text", ""))


def schedule(edition_id: int, send_at) -> None:
    """A draft becomes scheduled for ``send_at`` (a worker starts it when due)."""
    if send_at.tzinfo is None:
        raise EditionStateError("a scheduled time needs a timezone")
    changed = db.session.execute(
        update(Edition).where(Edition.id == edition_id,
                              Edition.status == EditionStatus.DRAFT.value)
        .values(status=EditionStatus.SCHEDULED.value, send_at=send_at)).rowcount
    db.session.commit()
    if changed != 1:
        raise EditionStateError(f"edition {edition_id} is not a draft any more")
