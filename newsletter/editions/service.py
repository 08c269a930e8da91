"""Edition use cases: create, render variants, pause, resume; the state machine's
transitions. Starting to send (fan-out) and cancelling (with the deliveries) are the
delivery engine's (``newsletter.delivery.service``), and so are the counts
(``newsletter.delivery.stats``).

State machine: draft → scheduled → sending → sent, plus paused (from sending, back by
resume), cancelled (from any unfinished state) and failed (rendering or fan-out failed).
Every transition is one compare-and-set UPDATE, so two workers or an operator and a worker
never both win it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from newsletter.billing import entitlements
from newsletter.content.models import Synthesis, Topic
from newsletter.content.service import slugify, unique_slug
from newsletter.db import db, utcnow
from newsletter.editions.models import (
    Edition,
    EditionKind,
    EditionLink,
    EditionStatus,
    EditionTopic,
    EditionVariant,
)
from newsletter.editions.render import (
    edition_context,
    synthesis_dict,
    template_to_json,
    track_links,
)
from newsletter.errors import Conflict
from newsletter.validation import FieldError, InvalidInput

HTML, TEXT = "html", "text"


class EditionStateError(Conflict):
    """The edition is not in a state that allows this (the message says which)."""


def transition(edition_id: int, allowed: tuple[str, ...], new: str, **values: Any) -> bool:
    result = db.session.execute(
        update(Edition).where(Edition.id == edition_id, Edition.status.in_(allowed))
        .values(status=new, **values)
    )
    db.session.commit()
    return result.rowcount == 1


def create_edition(*, subject: str, sections: list[dict[str, Any]] | None = None,
                   body_html: str = "", body_text: str = "", preheader: str = "",
                   topics: list[str] | None = None, tier: str = entitlements.TIER_ALL,
                   send_at: datetime | None = None, tracking: bool = True,
                   kind: str = EditionKind.SPECIAL.value,
                   idempotency_key: str | None = None, markdown: str | None = None,
                   request_sha256: str | None = None) -> Edition:
    """Add a draft (or scheduled, with ``send_at``) edition and flush it; the caller's use
    case commits, so what the edition says, its Markdown source (``markdown``) and the
    fingerprint of the API request that made it (``request_sha256``) are stored in one
    transaction or not at all. Raises ``InvalidInput``, or ``IntegrityError`` at the flush
    for an ``idempotency_key`` taken meanwhile.

    ``sections``: [{"title": str, "synthesis_ids": [int]}]. ``topics``: audience topic slugs
    (empty: everyone). ``tier``: "all" or "paid".
    """
    sections = sections or []
    subject = validate_edition(subject=subject, preheader=preheader, sections=sections,
                               has_body=bool(body_html or body_text), topics=topics,
                               tier=tier, send_at=send_at)
    edition = Edition(
        kind=kind, subject=subject, preheader=preheader,
        slug=unique_slug(Edition.slug,
                         f"{(send_at or utcnow()).date().isoformat()}-{slugify(subject, 60)}"),
        content={"sections": sections, "body_html": body_html, "body_text": body_text,
                 **({"markdown": markdown} if markdown is not None else {}),
                 **({"request_sha256": request_sha256} if request_sha256 else {})},
        audience={"topics": list(topics or []), "tier": tier},
        tracking=tracking, send_at=send_at, idempotency_key=idempotency_key,
        status=EditionStatus.SCHEDULED.value if send_at else EditionStatus.DRAFT.value,
    )
    db.session.add(edition)
    db.session.flush()
    tag_topics(edition.id, [*edition.audience["topics"],
                            *(section["topic"] for section in sections if section.get("topic"))])
    return edition


def validate_edition(*, subject: str, preheader: str, sections: list[dict[str, Any]],
                     has_body: bool, topics: list[str] | None, tier: str,
                     send_at: datetime | None = None) -> str:
    """Check what an edition would say; returns the subject stripped, or raises
    ``InvalidInput`` with every problem at once."""
    errors: list[FieldError] = []
    subject = (subject or "").strip()
    if not subject:
        errors.append(FieldError("subject", "is required"))
    elif len(subject) > 300 or any(ch in subject for ch in "\r\n\0"):
        errors.append(FieldError("subject", "must be one line of at most 300 characters"))
    if len(preheader) > 300 or any(ch in preheader for ch in "\r\n\0"):
        errors.append(FieldError("preheader", "must be one line of at most 300 characters"))
    if tier not in entitlements.TIERS:
        errors.append(FieldError("tier", "must be all or paid"))
    known = {t.slug for t in db.session.scalars(select(Topic))}
    for slug in topics or []:
        if slug not in known:
            errors.append(FieldError("topics", f"unknown topic {slug[:80]!r}"))
    wanted = {i for section in sections for i in section.get("synthesis_ids", [])}
    if wanted:
        found = set(db.session.scalars(select(Synthesis.id).where(Synthesis.id.in_(wanted))))
        for missing in sorted(wanted - found):
            errors.append(FieldError("sections", f"no synthesis with id {missing}"))
    if not sections and not has_body:
        errors.append(FieldError("content", "an edition needs a body or syntheses"))
    if send_at is not None and send_at.tzinfo is None:
        errors.append(FieldError("send_at", "needs a timezone"))
    if errors:
        raise InvalidInput(errors)
    return subject


def tag_topics(edition_id: int, slugs: list[str]) -> None:
    """Record the topics the edition is for (uncommitted); none means everyone."""
    for topic_id in db.session.scalars(select(Topic.id).where(Topic.slug.in_(set(slugs)))):
        db.session.add(EditionTopic(edition_id=edition_id, topic_id=topic_id))


def audience_note(topic_names: list[str]) -> str:
    """Who a special edition is for, in words true of every reader it is sent to."""
    if not topic_names:
        return ""
    if len(topic_names) == 1:
        return f"It is for readers who follow {topic_names[0]}."
    return f"It is for readers who follow any of: {', '.join(topic_names)}."


def web_url(edition: Edition, base_url: str) -> str:
    """The public web version ("view in browser"); it never carries personal links."""
    return f"{base_url.rstrip('/')}/editions/{edition.slug}" if edition.slug else ""


def edition_sections(edition: Edition, *, published_only: bool = False) -> list[dict[str, Any]]:
    """The edition's sections as ``[{"title", "syntheses": [Synthesis]}]``, in one query.
    With ``published_only`` (the web version), syntheses unpublished since are left out,
    and so are sections left empty."""
    sections = (edition.content or {}).get("sections", [])
    wanted = {i for section in sections for i in section.get("synthesis_ids", [])}
    by_id = {s.id: s for s in db.session.scalars(
        select(Synthesis).where(Synthesis.id.in_(wanted)))} if wanted else {}
    result = []
    for section in sections:
        syntheses = [by_id[i] for i in section.get("synthesis_ids", []) if i in by_id
                     and (by_id[i].is_published or not published_only)]
        if syntheses or not published_only:
            result.append({"title": section.get("title", ""), "syntheses": syntheses})
    return result


def render_variants(edition: Edition, mail) -> dict[str, EditionVariant]:
    """Compile the edition once per format and store the variants and the link table.

    Idempotent: variants that exist are returned as they are, so a restart renders nothing
    twice and every worker sends the same bytes.
    """
    existing = {v.key: v for v in db.session.scalars(
        select(EditionVariant).where(EditionVariant.edition_id == edition.id))}
    if HTML in existing and TEXT in existing:
        return existing
    variants = add_variants(edition, render_edition(edition, mail), mail.config)
    db.session.commit()
    return variants


def render_edition(edition: Edition, mail):
    """The edition compiled once (with personal placeholders), stored nowhere: what
    :func:`render_variants` stores, and what the admin's preview shows."""
    config = mail.config
    topic_names = [t.name for t in db.session.scalars(
        select(Topic).where(Topic.slug.in_(edition.audience.get("topics", []))))]
    return mail.renderer.render("edition", edition_context(
        config=config, subject=edition.subject, preheader=edition.preheader,
        sections=[{"title": section["title"],
                   "syntheses": [synthesis_dict(s, config["BASE_URL"])
                                 for s in section["syntheses"]]}
                  for section in edition_sections(edition)],
        body_html=edition.content.get("body_html", ""),
        body_text=edition.content.get("body_text", ""),
        # One rendering serves every reader: say only what is true of each of them. They
        # subscribed; if the edition has audience topics, they follow at least one.
        audience_note=audience_note(topic_names),
        web_url=web_url(edition, config["BASE_URL"]),
    ))


def add_variants(edition: Edition, rendered, config) -> dict[str, EditionVariant]:
    """Add the HTML and text variants of a rendering (and its link table) to the session,
    uncommitted, so a caller can make them part of a larger transaction."""
    html = rendered.html
    if edition.tracking and config.get("TRACKING", True):
        links: dict[str, int] = {}
        html = track_links(html, config["BASE_URL"], links)
        db.session.add_all(EditionLink(edition_id=edition.id, n=n, url=url)
                           for url, n in links.items())
    variants = {
        HTML: EditionVariant(edition_id=edition.id, key=HTML, format=HTML,
                             subject=edition.subject, html=template_to_json(html),
                             text=template_to_json(rendered.text)),
        TEXT: EditionVariant(edition_id=edition.id, key=TEXT, format=TEXT,
                             subject=edition.subject, html=None,
                             text=template_to_json(rendered.text)),
    }
    db.session.add_all(variants.values())
    db.session.flush()
    return variants


def pause(edition_id: int) -> None:
    if not transition(edition_id, (EditionStatus.SENDING.value,), EditionStatus.PAUSED.value):
        raise EditionStateError(f"edition {edition_id} is not sending")


def resume(edition_id: int) -> None:
    """Back to sending; deliveries already sent are never touched, so nobody gets it twice."""
    if not transition(edition_id, (EditionStatus.PAUSED.value,), EditionStatus.SENDING.value):
        raise EditionStateError(f"edition {edition_id} is not paused")
