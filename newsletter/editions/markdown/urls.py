"""Which URLs a Markdown body may link to or show, shared by both converters so the HTML and
the text alternative keep and drop the same links."""

from __future__ import annotations

from urllib.parse import urlsplit

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})


def allowed_url(value: str, schemes: frozenset[str]) -> bool:
    """Whether ``value`` parses as a URL whose scheme is one of ``schemes``."""
    try:
        scheme = urlsplit(value.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme in schemes
