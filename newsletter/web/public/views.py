"""The public site: home, synthesis pages, topic pages, health."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, render_template, request
from sqlalchemy import text

from newsletter.content import service as content
from newsletter.db import db

bp = Blueprint("public", __name__)
PAGE_SIZE = 20


def _page() -> int:
    page = request.args.get("page", "1")
    if not page.isdigit() or not 1 <= int(page) <= 10_000:
        abort(400, "page must be a whole number from 1")
    return int(page)


@bp.get("/")
def home():
    page = _page()
    syntheses = content.latest_syntheses(PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_template(
        "home.html",
        syntheses=syntheses[:PAGE_SIZE],
        topics=content.list_topics(),
        page=page,
        has_next=len(syntheses) > PAGE_SIZE,
    )


@bp.get("/syntheses/<slug>")
def synthesis(slug: str):
    item = content.get_visible_synthesis(slug)
    if item is None:
        abort(404, "There is no published synthesis at this address.")
    related = [
        other for topic in item.topics[:1]
        for other in content.latest_syntheses(4, topic=topic) if other.id != item.id
    ][:3]
    return render_template("synthesis.html", synthesis=item, related=related,
                           topics=content.list_topics())


@bp.get("/topics/")
def topics():
    items = content.list_topics()
    counts = {topic.id: content.count_visible(topic) for topic in items}
    return render_template("topics.html", topics=items, counts=counts)


@bp.get("/topics/<slug>")
def topic(slug: str):
    item = content.get_topic(slug)
    if item is None:
        abort(404, "There is no topic at this address.")
    page = _page()
    syntheses = content.latest_syntheses(PAGE_SIZE + 1, topic=item,
                                         offset=(page - 1) * PAGE_SIZE)
    return render_template("topic.html", topic=item, syntheses=syntheses[:PAGE_SIZE],
                           topics=content.list_topics(), page=page,
                           has_next=len(syntheses) > PAGE_SIZE)


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        return jsonify(status="error", database=type(exc).__name__), 503
    return jsonify(status="ok", database="ok")
