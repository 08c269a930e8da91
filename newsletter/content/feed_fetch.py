"""Fetching a feed over HTTP(S): conditional GET, size and time limits, http(s)-only
redirects; the bytes go to feedparser."""

from __future__ import annotations

import http.client
import io
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import feedparser

USER_AGENT = "newsletter-feeds/1.0 (RSS/Atom poller of the newsletter publication system)"
FETCH_TIMEOUT = 15.0  # seconds per socket operation
FETCH_DEADLINE = 45.0  # seconds for the whole body, so a server that drips cannot hold a poll
MAX_FEED_BYTES = 5 * 1024 * 1024


class FeedError(Exception):
    """A feed could not be fetched or is not an RSS/Atom feed; the message says why."""


@dataclass(frozen=True)
class _Response:
    body: bytes
    url: str
    content_type: str
    etag: str | None
    modified: str | None


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme.lower() not in {"http", "https"}:
            raise urllib.error.HTTPError(newurl, code, "redirect to a non-HTTP URL refused",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_HttpOnlyRedirects)


def fetch(url: str, etag: str | None = None, modified: str | None = None,
           timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_FEED_BYTES) -> _Response | None:
    """GET ``url``; None on 304 Not Modified. Raises ``FeedError`` with a one-line reason."""
    headers = {"User-Agent": USER_AGENT,
               "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, "
                         "text/xml;q=0.9, */*;q=0.1"}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    if urlsplit(url).scheme.lower() not in {"http", "https"}:
        raise FeedError("only http:// and https:// feeds can be fetched")
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
    deadline = time.monotonic() + FETCH_DEADLINE
    try:
        with _opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
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
            return _Response(body=body, url=response.geturl(),
                             content_type=response.headers.get("Content-Type", ""),
                             etag=response.headers.get("ETag"),
                             modified=response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None
        raise FeedError(f"HTTP {exc.code} {exc.reason}".strip()) from None
    except urllib.error.URLError as exc:
        raise FeedError(f"cannot reach {urlsplit(url).netloc}: {exc.reason}") from None
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
    """The HTTP side of feeds, built in ``newsletter.wiring``: :func:`fetch` with its
    limits. Tests replace it to serve a feed without a network."""

    timeout: float = FETCH_TIMEOUT
    max_bytes: int = MAX_FEED_BYTES

    def fetch(self, url: str, etag: str | None = None,
              modified: str | None = None) -> _Response | None:
        return fetch(url, etag, modified, timeout=self.timeout, max_bytes=self.max_bytes)
