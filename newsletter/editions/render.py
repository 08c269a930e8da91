"""Render an edition's variants once: MJML compiled per variant, links made trackable.

A variant's HTML and text are stored as ``PersonalTemplate`` JSON (literal segments and the
names of the personal fields between them), so every worker assembles per-reader messages
from exactly the same rendering without compiling anything.
"""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

from markupsafe import Markup

from newsletter.mail.render import PersonalTemplate

TRACKING_FIELD = "tracking_token"
# The href of an <a> tag only: text that merely looks like href="…" (a Markdown body's
# sanitised text keeps its quotes) is never rewritten.
_HREF = re.compile(r'(<a\b[^>]*?\s)href="(https?://[^"]+)"', re.IGNORECASE)


def template_to_json(template: PersonalTemplate) -> dict[str, Any]:
    return {"literals": list(template.literals), "fields": list(template.fields)}


def template_from_json(data: dict[str, Any]) -> PersonalTemplate:
    return PersonalTemplate(tuple(data["literals"]), tuple(data["fields"]))


def track_links(template: PersonalTemplate, base_url: str,
                links: dict[str, int]) -> PersonalTemplate:
    """Point every http(s) link at ``/c/<tracking_token>/<n>`` and add the open pixel.

    ``links`` maps target URL → n and is extended in place; the caller stores it as the
    edition's link table (the redirect reads targets from there, never from the request).
    Personal links (unsubscribe, preferences) are fields, not literals, so stay untouched.
    """
    base = base_url.rstrip("/")
    literals: list[str] = []
    fields: list[str] = []

    def emit_literal(text: str) -> None:
        if len(literals) > len(fields):
            literals[-1] += text
        else:
            literals.append(text)

    for index, literal in enumerate(template.literals):
        position = 0
        for match in _HREF.finditer(literal):
            target = html_lib.unescape(match.group(2))
            if target.startswith(base + "/c/") or target.startswith(base + "/o/"):
                continue
            n = links.setdefault(target, len(links) + 1)
            emit_literal(literal[position:match.start()] + match.group(1) + f'href="{base}/c/')
            fields.append(TRACKING_FIELD)
            emit_literal(f'/{n}"')
            position = match.end()
        rest = literal[position:]
        is_last = index == len(template.literals) - 1
        if is_last and "</body>" in rest:
            head, _, tail = rest.rpartition("</body>")
            emit_literal(head + f'<img src="{base}/o/')
            fields.append(TRACKING_FIELD)
            emit_literal('" width="1" height="1" alt="" style="display:block;border:0;">'
                         + "</body>" + tail)
        else:
            emit_literal(rest)
        if index < len(template.fields):
            fields.append(template.fields[index])
    if len(literals) == len(fields):
        literals.append("")
    return PersonalTemplate(tuple(literals), tuple(fields))


def synthesis_dict(synthesis, base_url: str) -> dict[str, Any]:
    """The template's view of a synthesis (plain data, so rendering needs no session)."""
    base = base_url.rstrip("/")
    return {
        "id": synthesis.id,
        "title": synthesis.title,
        "summary": synthesis.summary,
        "context": synthesis.context,
        "analysis": synthesis.analysis,
        "watch": synthesis.watch,
        "mentions": list(synthesis.mentions or []),
        "byline": synthesis.byline,
        "source_name": synthesis.source_name,
        "source_url": synthesis.source_url,
        "url": f"{base}/syntheses/{synthesis.slug}",
        "topic_names": synthesis.topic_names,
        "published_at": synthesis.published_at,
    }


def edition_context(*, config: dict[str, Any], subject: str, preheader: str,
                    sections: list[dict[str, Any]], body_html: str = "", body_text: str = "",
                    subscribed_to: str = "", web_url: str = "",
                    audience_note: str = "") -> dict[str, Any]:
    return {
        "publication": config["PUBLICATION_NAME"],
        "base_url": config["BASE_URL"].rstrip("/"),
        "postal_address": config["POSTAL_ADDRESS"],
        "subject": subject,
        "preheader": preheader,
        "sections": sections,
        "body_html": Markup(body_html),  # noqa: S704 - sanitised by the caller
        "body_text": body_text,
        "subscribed_to": subscribed_to,
        "audience_note": audience_note,
        "web_url": web_url,
    }
