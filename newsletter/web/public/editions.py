"""The public archive of editions: the web version of each edition and the lists of them.

Which editions are public, and the lists, are :mod:`newsletter.editions.archive`'s; an
edition that is not public answers 404, as an unknown slug does. The web version is rendered
from the edition's content (its sections' syntheses, by id, and its sanitised body), never
from the variants that were mailed, so it never carries a reader's links or tokens.

Premium editions (:func:`newsletter.billing.entitlements.edition_is_premium`) show their
body to a paying reader signed in, and to everyone else their subject and an upgrade button.
"""

from __future__ import annotations

from flask import Blueprint, abort, make_response, render_template
from markupsafe import Markup

from newsletter.billing import entitlements
from newsletter.content import service as content
from newsletter.db import utcnow
from newsletter.editions import archive as editions_archive
from newsletter.editions.service import edition_sections
from newsletter.web.pagination import page_number
from newsletter.web.public.reader_sessions import current_reader
from newsletter.wiring import services

bp = Blueprint("editions", __name__)
NO_SUCH_ARCHIVE_PAGE = "There is no such page of the archive."


def _archive_page(result: editions_archive.ArchivePage, page: int, **context):
    if page > 1 and not result.entries:
        abort(404, NO_SUCH_ARCHIVE_PAGE)
    return render_template("editions/archive.html", entries=result.entries,
                           topics=content.list_topics(), page=page,
                           has_next=result.has_next, **context)


@bp.get("/editions")
def archive():
    """Every edition that went out, newest first, a page at a time."""
    page = page_number()
    return _archive_page(editions_archive.public_editions(page), page, archive_topic=None)


@bp.get("/topics/<slug>/editions")
def topic_archive(slug: str):
    """The editions a follower of the topic may have had (see
    :func:`newsletter.editions.archive.topic_editions`). Unknown topic: 404."""
    topic = content.get_topic(slug)
    if topic is None:
        abort(404, "There is no topic at this address.")
    page = page_number()
    return _archive_page(editions_archive.topic_editions(topic, page), page,
                         topic=topic, archive_topic=topic)


@bp.get("/editions/<slug>")
def edition(slug: str):
    """The web version ("view in browser") of an edition that went out."""
    entry = editions_archive.public_edition(slug)
    if entry is None:
        abort(404, "There is no edition at this address.")
    paying = entitlements.reader_is_paying(current_reader(), utcnow())
    if not entitlements.may_read(paying, premium=entry.premium):
        response = make_response(render_template(
            "editions/locked.html", entry=entry, topics=content.list_topics(),
            takes_payment=services().billing.takes_payment))
    else:
        body = editions_archive.web_body(entry.edition)
        response = make_response(render_template(
            "editions/edition.html", entry=entry,
            body=Markup(body) if body else "",  # noqa: S704 - sanitised
            sections=edition_sections(entry.edition, published_only=True),
            topics=content.list_topics()))
    if entry.premium:  # the page depends on who asks: no shared cache may keep it
        response.headers["Cache-Control"] = "private, no-store"
        response.vary.add("Cookie")
    return response
