"""Atom feeds for the whole site and for each topic (feedgen)."""

from __future__ import annotations

from feedgen.feed import FeedGenerator
from flask import Blueprint, Response, abort, current_app

from newsletter.content import service as content
from newsletter.content.models import Synthesis, Topic
from newsletter.web.urls import absolute_url

bp = Blueprint("feeds", __name__)
FEED_SIZE = 30


def _atom(syntheses: list[Synthesis], *, feed_id: str, title: str, subtitle: str,
          self_url: str, alternate_url: str) -> Response:
    feed = FeedGenerator()
    feed.id(feed_id)
    feed.title(title)
    feed.subtitle(subtitle)
    feed.link(href=alternate_url, rel="alternate")
    feed.link(href=self_url, rel="self")
    feed.language("en")
    feed.author({"name": current_app.config["PUBLICATION_NAME"]})
    if syntheses:
        feed.updated(max(s.updated_at or s.published_at for s in syntheses))
    # feedgen prepends entries; add oldest first so the newest stays on top.
    for synthesis in reversed(syntheses):
        url = absolute_url("public.synthesis", slug=synthesis.slug)
        entry = feed.add_entry()
        entry.id(url)
        entry.title(synthesis.title)
        entry.link(href=url, rel="alternate")
        entry.published(synthesis.published_at)
        entry.updated(synthesis.updated_at or synthesis.published_at)
        entry.summary(synthesis.summary)
        if synthesis.byline:
            entry.author({"name": synthesis.byline})
        for topic in synthesis.topics:
            entry.category(term=topic.slug, label=topic.name)
    body = feed.atom_str(pretty=True)
    return Response(body, mimetype="application/atom+xml")


@bp.get("/feed.atom")
def site_feed():
    name = current_app.config["PUBLICATION_NAME"]
    return _atom(
        content.latest_syntheses(FEED_SIZE),
        feed_id=absolute_url("feeds.site_feed"),
        title=name,
        subtitle=f"The latest AI-news syntheses from {name}",
        self_url=absolute_url("feeds.site_feed"),
        alternate_url=absolute_url("public.home"),
    )


@bp.get("/topics/<slug>/feed.atom")
def topic_feed(slug: str):
    topic: Topic | None = content.get_topic(slug)
    if topic is None:
        abort(404, "There is no topic at this address.")
    name = current_app.config["PUBLICATION_NAME"]
    return _atom(
        content.latest_syntheses(FEED_SIZE, topic=topic),
        feed_id=absolute_url("feeds.topic_feed", slug=slug),
        title=f"{topic.name} · {name}",
        subtitle=topic.description or f"{topic.name} from {name}",
        self_url=absolute_url("feeds.topic_feed", slug=slug),
        alternate_url=absolute_url("public.topic", slug=slug),
    )
