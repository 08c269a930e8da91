"""newsletter feeds: RSS/Atom feeds served by a real HTTP server on loopback become syntheses.

The server is reached as ``localhost``, which these tests name in
``NEWSLETTER_FEED_ALLOWED_HOSTS`` as a deployment names its intranet feed server: every
other loopback or private address is refused (``test_feed_addresses``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.content.feed_fetch import USER_AGENT
from newsletter.content.feeds import poll_due, poll_feed
from newsletter.content.models import Feed, FeedEntry, Synthesis
from newsletter.db import db, utcnow
from newsletter.wiring import services

FEEDS = Path(__file__).parent.parent / "data" / "feeds"


@dataclass
class Route:
    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    status: int = 200
    send_length: bool = True
    location: str | None = None


@dataclass
class FeedServer:
    """Serves ``routes`` (path -> Route); answers 304 when If-None-Match equals the ETag.

    ``requests`` keeps (path, headers) of every request, so a test can check what was sent.
    """

    host: str = "localhost"
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def serve(self, path: str, filename: str | None = None, *, body: bytes | None = None,
              **options) -> str:
        data = body if body is not None else (FEEDS / filename).read_bytes()
        self.routes[path] = Route(body=data, **options)
        return self.url(path)


@pytest.fixture(autouse=True)
def localhost_is_allowed(app_config):
    app_config["FEED_ALLOWED_HOSTS"] = ["localhost"]


@contextlib.contextmanager
def serving_feeds() -> Iterator[FeedServer]:
    """A feed server on 127.0.0.1 (its URLs say ``localhost``) while the block runs."""
    state = FeedServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            state.requests.append((self.path, dict(self.headers)))
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            if route.etag and self.headers.get("If-None-Match") == route.etag:
                self.send_response(304)
                self.send_header("ETag", route.etag)
                self.end_headers()
                return
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            if route.location:
                self.send_header("Location", route.location)
            if route.etag:
                self.send_header("ETag", route.etag)
            if route.send_length:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            # The client stops reading an oversized body, as it should.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(route.body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def feed_server():
    with serving_feeds() as state:
        yield state


def syntheses() -> list[Synthesis]:
    db.session.expire_all()
    return list(db.session.scalars(select(Synthesis).order_by(Synthesis.published_at)))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def add(runner, url, *extra, topics=("ai-policy-and-safety",)):
    args = ["feeds", "add", url]
    for topic in topics:
        args += ["--topic", topic]
    return runner.invoke(args=[*args, *extra])


def test_rss_entries_become_drafts_that_the_site_does_not_show(runner, client, topics,
                                                                feed_server):
    url = feed_server.serve("/lab.xml", "rss20.xml")
    result = add(runner, url, topics=("ai-policy-and-safety", "Models and research"))
    assert result.exit_code == 0, result.output
    assert "Feed " in result.stdout and "added: Example Lab Notes" in result.stdout
    assert "2 entries found, 2 importable as drafts" in result.stdout
    assert syntheses() == []  # adding checks the feed; the poll imports

    poll = runner.invoke(args=["feeds", "poll"])
    assert poll.exit_code == 0, poll.output
    assert "2 new, 0 skipped" in poll.stdout

    feed = db.session.scalar(select(Feed))
    assert feed.topics == ["ai-policy-and-safety", "models-and-research"]
    first, second = syntheses()
    assert first.title == "Evaluation notes & caveats"
    assert second.title == "Open weights for the small reasoning model"
    assert second.summary == ("The lab released the weights of its small model.\n\n"
                              "Licence: Apache 2.0 & a model card.")
    assert second.source_url == "https://lab.example/posts/open-weights"
    assert second.source_name == "Example Lab Notes"
    assert second.published_at.isoformat() == "2026-11-24T08:30:00+00:00"
    assert second.external_id.startswith(f"feed-{feed.id}-") and len(second.external_id) == \
        len(f"feed-{feed.id}-") + 16
    assert {s.status for s in (first, second)} == {"draft"}
    assert [t.slug for t in second.topics] == ["ai-policy-and-safety", "models-and-research"]
    assert count(FeedEntry) == 2

    assert client.get(f"/syntheses/{second.slug}").status_code == 404
    assert second.title not in client.get("/").get_data(as_text=True)
    assert feed_server.requests[-1][1]["User-Agent"] == USER_AGENT


def test_atom_feed_with_publish_goes_on_the_site(runner, client, topics, feed_server):
    url = feed_server.serve("/atom.xml", "atom.xml", content_type="application/atom+xml")
    result = add(runner, url, "--publish", "--poll-now", topics=("models-and-research",))
    assert result.exit_code == 0, result.output
    assert "importable as published syntheses" in result.stdout
    assert "Polled: 2 new, 0 skipped" in result.stdout

    agents, scaling = syntheses()
    assert scaling.title == "Scaling laws, revisited"
    assert scaling.summary == ("A new paper revisits compute-optimal training.\n\n"
                               "- more data\n- fewer parameters")
    assert scaling.published_at.isoformat() == "2026-11-25T11:00:00+00:00"
    assert agents.summary == "Field study of deployed agents.\n\nSecond paragraph."
    assert agents.published_at.isoformat() == "2026-11-24T07:15:00+00:00"  # updated, no published
    assert {s.status for s in (agents, scaling)} == {"published"}
    page = client.get(f"/syntheses/{scaling.slug}")
    assert page.status_code == 200
    assert "Scaling laws, revisited" in page.get_data(as_text=True)
    assert "Agents in the wild" in client.get("/").get_data(as_text=True)


def test_later_polls_import_only_entries_never_seen(runner, topics, feed_server):
    url = feed_server.serve("/lab.xml", "rss20.xml")
    assert add(runner, url, "--poll-now").exit_code == 0
    assert len(syntheses()) == 2

    again = runner.invoke(args=["feeds", "poll"])
    assert again.exit_code == 0
    assert "0 new, 0 skipped" in again.stdout
    assert len(syntheses()) == 2

    # A new entry appears and an old one is edited: only the new one comes in, and the
    # edited one is left as it was imported.
    feed_server.serve("/lab.xml", "rss20_more.xml")
    feed_id = db.session.scalar(select(Feed.id))
    result = runner.invoke(args=["feeds", "poll", str(feed_id)])
    assert result.exit_code == 0, result.output
    assert f"feed {feed_id}: 1 new, 0 skipped" in result.stdout
    titles = [s.title for s in syntheses()]
    assert titles == ["Evaluation notes & caveats", "Open weights for the small reasoning model",
                      "A third post arrives"]
    assert count(FeedEntry) == 3


def test_conditional_get_and_304(app, topics, feed_server):
    from newsletter.content.feeds import add_feed

    fetcher = services(app).feed_fetcher
    url = feed_server.serve("/lab.xml", "rss20.xml", etag='"v1"')
    feed = add_feed(url, ["ai-policy-and-safety"], publish=False, fetcher=fetcher)
    assert feed.etag is None  # the check fetch must not make the first poll a 304

    first = poll_feed(feed.id, fetcher=fetcher)
    assert (first.new, first.not_modified) == (2, False)
    assert db.session.get(Feed, feed.id).etag == '"v1"'

    second = poll_feed(feed.id, fetcher=fetcher)
    assert second.not_modified and second.new == 0 and second.errors == []
    assert feed_server.requests[-1][1]["If-None-Match"] == '"v1"'
    assert db.session.get(Feed, feed.id).last_error is None

    feed_server.serve("/lab.xml", "rss20_more.xml", etag='"v2"')
    third = poll_feed(feed.id, fetcher=fetcher)
    assert (third.new, third.not_modified) == (1, False)
    assert db.session.get(Feed, feed.id).etag == '"v2"'


def test_entries_without_title_or_link_are_skipped_and_scripts_never_get_in(
        runner, topics, feed_server):
    url = feed_server.serve("/mixed.xml", "rss_mixed.xml")
    result = add(runner, url, "--poll-now")
    assert result.exit_code == 0, result.output
    assert "4 entries found, 2 importable" in result.stdout
    assert "Polled: 2 new, 2 skipped" in result.stdout

    by_title = {s.title: s for s in syntheses()}
    assert set(by_title) == {"Scripted summary", "Entry without a guid"}
    scripted = by_title["Scripted summary"]
    assert scripted.summary == "Visible text.\n\nStill visible."
    for text in (scripted.summary, scripted.title, scripted.context, scripted.analysis):
        assert "alert" not in text and "<" not in text and "javascript" not in text
        assert "color:red" not in text
    entries = set(db.session.scalars(select(FeedEntry.guid)))
    assert entries == {"mixed-3", "https://mixed.example/no-guid"}

    again = runner.invoke(args=["feeds", "poll"])
    assert "0 new, 2 skipped" in again.stdout
    assert len(syntheses()) == 2


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("case", "message"), [
    ("ftp", "url: must be an http:// or https:// URL"),
    ("long", "url: is 2001 characters long; the limit is 2000"),
    ("unknown-topic", "topics[0]: unknown topic 'crypto'"),
    ("no-topic", "topics: needs at least one topic"),
    ("unreachable", "url: refused: cannot reach localhost:"),
    ("html", "url: refused: not an RSS or Atom feed"),
    ("404", "url: refused: HTTP 404"),
    ("oversized", "url: refused: the feed is larger than 5 MB"),
    ("oversized-unannounced", "url: refused: the feed is larger than 5 MB"),
    ("redirect-to-file", "url: refused: HTTP 302"),
])
def test_bad_feeds_are_refused_with_a_clear_message_and_nothing_stored(
        runner, topics, feed_server, case, message):
    feed_topics: tuple[str, ...] = ("ai-policy-and-safety",)
    big = b"<rss version='2.0'><channel><title>x</title>" + b" " * (5 * 1024 * 1024) + \
        b"</channel></rss>"
    if case == "ftp":
        url = "ftp://lab.example/feed.xml"
    elif case == "long":
        url = "https://lab.example/" + "a" * 1981
    elif case == "unknown-topic":
        url, feed_topics = feed_server.serve("/lab.xml", "rss20.xml"), ("crypto",)
    elif case == "no-topic":
        url, feed_topics = feed_server.serve("/lab.xml", "rss20.xml"), ()
    elif case == "unreachable":
        url = f"http://localhost:{_unused_port()}/feed.xml"
    elif case == "html":
        url = feed_server.serve("/", "not_a_feed.html", content_type="text/html")
    elif case == "404":
        url = feed_server.url("/missing.xml")
    elif case == "oversized":
        url = feed_server.serve("/big.xml", body=big)
    elif case == "oversized-unannounced":
        url = feed_server.serve("/big.xml", body=big, send_length=False)
    else:
        url = feed_server.serve("/moved.xml", body=b"", status=302,
                                location=f"file://{FEEDS / 'rss20.xml'}")
    result = add(runner, url, topics=feed_topics)
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert count(Feed) == 0
    assert count(Synthesis) == 0


def test_a_feed_cannot_be_added_twice(runner, topics, feed_server):
    url = feed_server.serve("/lab.xml", "rss20.xml")
    assert add(runner, url).exit_code == 0
    again = add(runner, f"  {url} ")
    assert again.exit_code == 1
    assert "url: is already added (feed " in again.output
    assert count(Feed) == 1


def test_redirects_between_http_urls_are_followed(runner, topics, feed_server):
    target = feed_server.serve("/new-home.xml", "rss20.xml")
    url = feed_server.serve("/old.xml", body=b"", status=301, location=target)
    result = add(runner, url, "--poll-now")
    assert result.exit_code == 0, result.output
    assert "Polled: 2 new, 0 skipped" in result.stdout
    assert db.session.scalar(select(Feed.url)) == url


def test_list_and_remove(runner, topics, feed_server):
    assert runner.invoke(args=["feeds", "list"]).stdout.strip() == "No feeds."
    lab = feed_server.serve("/lab.xml", "rss20.xml")
    atom = feed_server.serve("/atom.xml", "atom.xml")
    assert add(runner, lab, "--poll-now").exit_code == 0
    assert add(runner, atom, "--publish", topics=("models-and-research",)).exit_code == 0
    lab_id, atom_id = db.session.scalars(select(Feed.id).order_by(Feed.id))

    lines = runner.invoke(args=["feeds", "list"]).stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{lab_id}\tactive\tdraft\tai-policy-and-safety\t2026-")
    assert lines[0].endswith(f"\t{lab}\tExample Lab Notes")
    assert lines[1].startswith(f"{atom_id}\tactive\tpublish\tmodels-and-research\tnever polled")

    removed = runner.invoke(args=["feeds", "remove", lab])
    assert removed.exit_code == 0, removed.output
    assert f"Feed {lab_id} removed: {lab}" in removed.stdout
    removed = runner.invoke(args=["feeds", "remove", str(atom_id)])
    assert removed.exit_code == 0, removed.output
    assert count(Feed) == 0 and count(FeedEntry) == 0
    assert len(syntheses()) == 2  # what a feed brought in stays

    missing = runner.invoke(args=["feeds", "remove", "42"])
    assert missing.exit_code == 1
    assert "no feed '42'" in missing.output
    assert runner.invoke(args=["feeds", "poll", "42"]).exit_code == 1


def test_poll_due_respects_the_interval_and_survives_a_dead_feed(app, topics, feed_server):
    from newsletter.content.feeds import add_feed

    fetcher = services(app).feed_fetcher
    assert poll_due(utcnow(), timedelta(minutes=30), fetcher) == 0  # no feeds: nothing to do
    lab = add_feed(feed_server.serve("/lab.xml", "rss20.xml"), ["ai-policy-and-safety"],
                   fetcher=fetcher)
    dead = add_feed(feed_server.serve("/dead.xml", "atom.xml"), ["models-and-research"],
                    fetcher=fetcher)
    feed_server.routes["/dead.xml"] = Route(body=b"gone", status=500)
    lab_id, dead_id = lab.id, dead.id

    now = utcnow()
    every = timedelta(minutes=30)
    assert poll_due(now, every, fetcher) == 2
    assert len(syntheses()) == 2
    dead = db.session.get(Feed, dead_id)
    assert dead.last_error == "HTTP 500 Internal Server Error"
    assert dead.last_polled_at == now

    assert poll_due(now + timedelta(minutes=29), every, fetcher) == 0
    feed_server.serve("/dead.xml", "atom.xml")
    assert poll_due(now + timedelta(minutes=30), every, fetcher) == 2
    assert db.session.get(Feed, dead_id).last_error is None
    assert len(syntheses()) == 4

    db.session.get(Feed, lab_id).active = False
    db.session.commit()
    assert poll_due(now + timedelta(hours=2), every, fetcher) == 1


def test_poll_command_reports_a_failing_feed_and_exits_1(runner, topics, feed_server):
    url = feed_server.serve("/lab.xml", "rss20.xml")
    assert add(runner, url).exit_code == 0
    feed_server.routes["/lab.xml"] = Route(body=b"<html>maintenance</html>",
                                           content_type="text/html")
    result = runner.invoke(args=["feeds", "poll"])
    assert result.exit_code == 1
    assert "not an RSS or Atom feed" in result.output
    listing = runner.invoke(args=["feeds", "list"]).stdout
    assert "error: not an RSS or Atom feed" in listing


def test_workers_polling_together_fetch_a_feed_once(app, app_config, topics, feed_server):
    from newsletter.content.feeds import add_feed
    from tests.support.threads import at_once

    fetcher = services(app).feed_fetcher
    add_feed(feed_server.serve("/lab.xml", "rss20.xml"), ["ai-policy-and-safety"],
             fetcher=fetcher)
    before = len(feed_server.requests)
    now = utcnow()
    polled = at_once(app_config, lambda: poll_due(now, timedelta(minutes=30), fetcher))
    assert sorted(polled) == [0, 0, 1]
    assert len(feed_server.requests) - before == 1
    assert len(syntheses()) == 2


def test_a_server_that_drips_bytes_meets_the_download_deadline(app, monkeypatch):
    import socket
    import threading
    import time

    from newsletter.content import feed_fetch

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(30)
    stop = threading.Event()

    def drip():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                     b"Content-Length: 100000\r\n\r\n")
        while not stop.is_set():
            try:
                conn.sendall(b"<")
            except OSError:
                break
            time.sleep(0.1)
        conn.close()

    threading.Thread(target=drip, daemon=True).start()
    monkeypatch.setattr(feed_fetch, "FETCH_DEADLINE", 1.0)
    started = time.monotonic()
    try:
        with pytest.raises(feed_fetch.FeedError, match="took longer than"):
            services(app).feed_fetcher.fetch(
                f"http://localhost:{listener.getsockname()[1]}/drip.xml")
    finally:
        stop.set()
        listener.close()
    assert time.monotonic() - started < 5  # one byte every 0.1 s would take 10,000 s
