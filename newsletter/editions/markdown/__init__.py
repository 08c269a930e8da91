"""Markdown bodies of editions, in two converters: :mod:`.html` (sanitised email HTML with
inline styles, and :func:`sanitise` for the web version) and :mod:`.text` (the text
alternative). Callers import the public names from here."""

from newsletter.editions.markdown.html import (
    MAX_BYTES,
    first_paragraph_text,
    render_markdown,
    sanitise,
)
from newsletter.editions.markdown.text import markdown_to_text

__all__ = ["MAX_BYTES", "first_paragraph_text", "markdown_to_text", "render_markdown",
           "sanitise"]
