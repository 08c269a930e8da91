"""Special editions written in Markdown: the use case the CLI and the admin area call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from newsletter.billing import entitlements
from newsletter.editions.markdown import first_paragraph_text, render_markdown
from newsletter.editions.models import Edition, EditionKind
from newsletter.editions.service import create_edition

PREHEADER_LENGTH = 140


def create_special(subject: str, markdown: str | bytes, topics: list[str] | None = None,
                   tier: str = entitlements.TIER_ALL, send_at: datetime | None = None,
                   preheader: str = "",
                   *, sections: list[dict[str, Any]] | None = None, tracking: bool = True,
                   idempotency_key: str | None = None) -> Edition:
    """Create a special edition whose body is ``markdown``; a draft, or scheduled with
    ``send_at`` (the worker starts it when due).

    The Markdown becomes the sanitised, styled ``content["body_html"]`` and its text
    alternative ``content["body_text"]``; the source is kept as ``content["markdown"]``
    (as the composer and the API keep it), so an editor can open the edition later. The
    edition is added and flushed: the caller commits. Without a ``preheader`` one is taken
    from the first paragraph (at most 140 characters). ``sections`` (synthesis cards after
    the body) are optional.

    Raises ``InvalidInput``: field ``markdown`` for an empty, oversized or non-UTF-8 body,
    otherwise whatever ``create_edition`` rejects (subject, topics, tier, send_at…).
    """
    body_html, body_text = render_markdown(markdown)
    source = markdown.decode("utf-8") if isinstance(markdown, bytes) else markdown
    source = source.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    preheader = (preheader or "").strip() or first_paragraph_text(body_html, PREHEADER_LENGTH)
    return create_edition(
        subject=subject, sections=sections or [], body_html=body_html, body_text=body_text,
        preheader=preheader, topics=topics, tier=tier, send_at=send_at, tracking=tracking,
        kind=EditionKind.SPECIAL.value, idempotency_key=idempotency_key, markdown=source,
    )
