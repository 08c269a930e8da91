"""``newsletter feeds``: RSS/Atom feeds whose new entries become syntheses."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext


@click.group("feeds")
def feeds_group() -> None:
    """Add, list, poll or remove the feeds polled for new syntheses."""


def _record_poll(feed_id: int, result) -> None:
    """A poll run by hand is audited (the worker's own polls are the system's, not)."""
    from newsletter.cli.actors import record

    record("polled feed", f"feed {feed_id}", new=result.new, skipped=result.skipped,
           errors=len(result.errors), not_modified=result.not_modified)


def _describe(result) -> str:
    if result.not_modified:
        return "not modified"
    text = f"{result.new} new, {result.skipped} skipped"
    if result.errors:
        text += f", {len(result.errors)} error(s)"
    return text


@feeds_group.command("add")
@click.argument("url")
@click.option("--topic", "topics", multiple=True, metavar="SLUG",
              help="Topic of the syntheses made from this feed (repeatable; at least one).")
@click.option("--publish/--draft", default=False, show_default=True,
              help="Publish entries as they arrive, or keep them as drafts to review.")
@click.option("--poll-now", is_flag=True,
              help="Import the feed's current entries now instead of at the worker's next poll.")
@with_appcontext
def feeds_add(url: str, topics: tuple[str, ...], publish: bool, poll_now: bool) -> None:
    """Add the RSS or Atom feed at URL (fetched once to check it)."""
    from newsletter.cli.actors import record
    from newsletter.content.feeds import add_feed_checked, poll_feed
    from newsletter.validation import InvalidInput
    from newsletter.wiring import services

    fetcher = services().feed_fetcher

    try:
        feed, check = add_feed_checked(url, list(topics), publish, fetcher)
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from None
    record("added feed", f"feed {feed.id}", url=feed.url[:300], topics=list(feed.topics),
           publish=publish)
    kind = "published syntheses" if publish else "drafts"
    click.echo(f"Feed {feed.id} added: {feed.title} ({feed.url})")
    click.echo(f"{check.entries} entries found, {check.importable} importable as {kind} "
               f"in {', '.join(feed.topics)}.")
    if poll_now:
        result = poll_feed(feed.id, fetcher=fetcher)
        _record_poll(feed.id, result)
        click.echo(f"Polled: {_describe(result)}")
        for error in result.errors:
            click.echo(f"  {error}", err=True)
    else:
        click.echo("They are imported at the next poll (`newsletter feeds poll` or the worker).")


@feeds_group.command("list")
@with_appcontext
def feeds_list() -> None:
    """List the feeds: id, state, drafts or published, topics, last poll, URL, title."""
    from newsletter.content.feeds import list_feeds

    feeds = list_feeds()
    if not feeds:
        click.echo("No feeds.")
        return
    for feed in feeds:
        state = "active" if feed.active else "inactive"
        mode = "publish" if feed.publish else "draft"
        polled = (feed.last_polled_at.isoformat(timespec="seconds") if feed.last_polled_at
                  else "never polled")
        line = (f"{feed.id}\t{state}\t{mode}\t{','.join(feed.topics)}\t{polled}\t{feed.url}"
                f"\t{feed.title}")
        if feed.last_error:
            line += f"\terror: {feed.last_error}"
        click.echo(line)


@feeds_group.command("poll")
@click.argument("feed_id", required=False, type=int)
@with_appcontext
def feeds_poll(feed_id: int | None) -> None:
    """Poll FEED_ID now, or every active feed, whatever the interval.

    Exits 1 when a feed could not be fetched or an entry was refused.
    """
    from newsletter.content.feeds import FeedNotFound, list_feeds, poll_feed
    from newsletter.wiring import services

    if feed_id is not None:
        ids = [feed_id]
    else:
        ids = [feed.id for feed in list_feeds() if feed.active]
        if not ids:
            click.echo("No active feeds.")
            return
    failed = False
    for one in ids:
        try:
            result = poll_feed(one, fetcher=services().feed_fetcher)
        except FeedNotFound as exc:
            raise click.ClickException(str(exc)) from None
        _record_poll(one, result)
        click.echo(f"feed {one}: {_describe(result)}")
        for error in result.errors:
            click.echo(f"feed {one}: {error}", err=True)
        failed = failed or bool(result.errors)
    if failed:
        sys.exit(1)


@feeds_group.command("remove")
@click.argument("url_or_id")
@with_appcontext
def feeds_remove(url_or_id: str) -> None:
    """Stop polling the feed URL_OR_ID; the syntheses it brought in stay."""
    from newsletter.cli.actors import record
    from newsletter.content.feeds import FeedNotFound, remove_feed

    try:
        feed = remove_feed(url_or_id)
    except FeedNotFound as exc:
        raise click.ClickException(str(exc)) from None
    record("removed feed", f"feed {feed.id}", url=feed.url[:300])
    click.echo(f"Feed {feed.id} removed: {feed.url}")


COMMANDS = (feeds_group,)
