"""Fetching a feed over HTTP(S): conditional GET, size and time limits, redirects only to
http(s) and only to addresses the guard allows (``newsletter.outbound``); the bytes go to
feedparser."""

from __future__ import annotations

import http.client
import io
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import feedparser

from newsletter.errors import Unavailable
from newsletter.outbound import PUBLIC_ONLY, AddressGuard, OutboundError, RefusedAddress, open_url

USER_AGENT = "newsletter-feeds/1.0 (RSS/Atom poller of the newsletter publication system)"
FETCH_TIMEOUT = 15.0  # seconds per socket operation
FETCH_DEADLINE = 45.0  # seconds for the whole body, so a server that drips cannot hold a poll
MAX_FEED_BYTES = 5 * 1024 * 1024
ALLOWED_HOSTS_SETTING = "NEWSLETTER_FEED_ALLOWED_HOSTS"


class FeedError(Unavailable):
    """A feed could not be fetched or is not an RSS/Atom feed; the message says why."""


@dataclass(frozen=True)
class _Response:
    body: bytes
    url: str
    content_type: str
    etag: str | None
    modified: str | None


def _refused(exc: RefusedAddress) -> FeedError:
    hint = f" (allowed only for a host named in {ALLOWED_HOSTS_SETTING})" if exc.allowable \
        else ""
    return FeedError(f"{exc}{hint}")


def fetch(url: str, etag: str | None = None, modified: str | None = None,
          timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_FEED_BYTES,
          guard: AddressGuard = PUBLIC_ONLY) -> _Response | None:
    """GET ``url``; None on 304 Not Modified. Raises ``FeedError`` with a one-line reason.

    Every hop (the URL and each redirect, at most five) goes only where ``guard`` allows:
    public addresses, or its allowed hosts; a refused hop is never sent a request.
    """
    headers = {"User-Agent": USER_AGENT,
               "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, "
                         "text/xml;q=0.9, */*;q=0.1"}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    if urlsplit(url).scheme.lower() not in {"http", "https"}:
        raise FeedError("only http:// and https:// feeds can be fetched")
    deadline = time.monotonic() + FETCH_DEADLINE
    try:
        with open_url(url, guard=guard, headers=headers, timeout=timeout) as response:
            if response.status == 304:
                return None
            if not 200 <= response.status < 300:
                raise FeedError(f"HTTP {response.status} {response.reason}".strip())
            length = response.headers.get("Content-Length")
            if length and length.isascii() and length.isdigit() and int(length) > max_bytes:
                raise FeedError(f"the feed is larger than {max_bytes // (1024 * 1024)} MB")
            chunks: list[bytes] = []
            size = 0
            # read1: whatever has arrived, so a server that drips bytes meets the deadline.
            while chunk := response.read1(65536):
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"the feed is larger than {max_bytes // (1024 * 1024)} MB")
                if time.monotonic() > deadline:
                    raise FeedError(f"the feed took longer than {FETCH_DEADLINE:.0f} s to "
                                    "download")
                chunks.append(chunk)
            body = _decode_content(b"".join(chunks), response.headers.get("Content-Encoding"),
                                   max_bytes)
            return _Response(body=body, url=response.url,
                             content_type=response.headers.get("Content-Type", ""),
                             etag=response.headers.get("ETag"),
                             modified=response.headers.get("Last-Modified"))
    except RefusedAddress as exc:
        raise _refused(exc) from None
    except OutboundError as exc:
        raise FeedError(str(exc)) from None
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise FeedError(f"cannot read {urlsplit(url).netloc}: "
                        f"{exc or type(exc).__name__}") from None
    except ValueError as exc:  # http.client's malformed responses, bad URLs
        raise FeedError(f"bad response: {exc}") from None


def _decode_content(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo a gzip/deflate Content-Encoding (never asked for, but some servers send it)."""
    encoding = (encoding or "").strip().lower()
    if encoding not in {"gzip", "x-gzip", "deflate"}:
        return body
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        inflated = zlib.decompressobj(wbits).decompress(body, max_bytes + 1)
    except zlib.error:
        raise FeedError("the feed's compressed body is corrupt") from None
    if len(inflated) > max_bytes:
        raise FeedError(f"the feed is larger than {max_bytes // (1024 * 1024)} MB")
    return inflated


def parse(response: _Response) -> Any:
    """feedparser's result; raises ``FeedError`` when the body is not RSS or Atom."""
    parsed = feedparser.parse(io.BytesIO(response.body),
                              response_headers={"content-type": response.content_type,
                                                "content-location": response.url})
    if not parsed.get("version"):
        reason = parsed.get("bozo_exception")
        detail = f" ({str(reason).splitlines()[0][:150]})" if reason else ""
        raise FeedError(f"not an RSS or Atom feed{detail}")
    return parsed


@dataclass(frozen=True)
class FeedFetcher:
    """The HTTP side of feeds, built in ``newsletter.wiring`` (:meth:`from_config`):
    :func:`fetch` with its limits and its address guard. Tests replace it to serve a feed
    without a network."""

    timeout: float = FETCH_TIMEOUT
    max_bytes: int = MAX_FEED_BYTES
    guard: AddressGuard = field(default=PUBLIC_ONLY)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeedFetcher:
        """The fetcher the settings ask for: ``FEED_ALLOWED_HOSTS`` may be private."""
        hosts: Iterable[str] = config.get("FEED_ALLOWED_HOSTS") or ()
        return cls(guard=AddressGuard.allowing(hosts))

    def fetch(self, url: str, etag: str | None = None,
              modified: str | None = None) -> _Response | None:
        return fetch(url, etag, modified, timeout=self.timeout, max_bytes=self.max_bytes,
                     guard=self.guard)
