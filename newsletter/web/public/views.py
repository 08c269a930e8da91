"""The public site: home, synthesis pages, topic pages, health."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, make_response, redirect, render_template, url_for
from sqlalchemy import text

from newsletter.billing import entitlements
from newsletter.content import service as content
from newsletter.db import db, utcnow
from newsletter.mail import brand
from newsletter.web.pagination import page_number
from newsletter.web.public.reader_sessions import current_reader
from newsletter.wiring import services

bp = Blueprint("public", __name__)
PAGE_SIZE = 20


NO_SUCH_PAGE = ("There is no page {page}: the list ends earlier. The newest syntheses are on "
                "the first page.")


@bp.get("/")
def home():
    page = page_number()
    result = content.latest_syntheses_page(page, PAGE_SIZE)
    if page > 1 and not result.syntheses:
        abort(404, NO_SUCH_PAGE.format(page=page))
    return render_template(
        "home.html",
        syntheses=result.syntheses,
        topics=content.list_topics(),
        page=page,
        has_next=result.has_next,
    )


@bp.get("/syntheses/<slug>")
def synthesis(slug: str):
    """A synthesis whole; a premium one (``billing.entitlements``) whole for a paying reader
    signed in, and as a teaser (title, summary, byline, source) with an upgrade button for
    everyone else."""
    item = content.get_visible_synthesis(slug)
    if item is None:
        abort(404, "There is no published synthesis at this address.")
    premium = entitlements.synthesis_is_premium(item)
    locked = premium and not entitlements.reader_is_paying(current_reader(), utcnow())
    response = make_response(render_template(
        "synthesis.html", synthesis=item, locked=locked, premium=premium,
        takes_payment=services().billing.takes_payment,
        related=content.related_syntheses(item, limit=3), topics=content.list_topics()))
    if premium:  # the page depends on who asks: no shared cache may keep it
        response.headers["Cache-Control"] = "private, no-store"
        response.vary.add("Cookie")
    return response


@bp.get("/topics/")
def topics():
    items = content.list_topics()
    counts = content.count_visible_by_topic(items)
    return render_template("topics.html", topics=items, counts=counts)


@bp.get("/topics/<slug>")
def topic(slug: str):
    item = content.get_topic(slug)
    if item is None:
        abort(404, "There is no topic at this address.")
    page = page_number()
    result = content.latest_syntheses_page(page, PAGE_SIZE, topic=item)
    if page > 1 and not result.syntheses:
        abort(404, NO_SUCH_PAGE.format(page=page))
    return render_template("topic.html", topic=item, syntheses=result.syntheses,
                           topics=content.list_topics(), page=page,
                           has_next=result.has_next)


@bp.get("/feeds")
def feeds():
    """What a feed is and the addresses to put in a feed reader (a person who clicks a feed
    link in a browser gets this page, not raw XML)."""
    return render_template("feeds.html", topics=content.list_topics())


@bp.get("/brand.css")
def brand_css():
    """The publication's colours and fonts as CSS variables (``mail.brand``, shared with
    the emails)."""
    response = make_response(brand.css_variables())
    response.mimetype = "text/css"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/favicon.svg")
def favicon_svg():
    """The brand's round mark as the site's icon."""
    response = make_response(brand.favicon_svg())
    response.mimetype = "image/svg+xml"
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@bp.get("/favicon.ico")
def favicon():
    # 302, not 301: browsers keep a permanent redirect for a favicon forever.
    return redirect(url_for("public.favicon_svg"), code=302)


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        return jsonify(status="error", database=type(exc).__name__), 503
    return jsonify(status="ok", database="ok")
