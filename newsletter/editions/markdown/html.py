"""Markdown to email HTML: sanitised, with inline styles, split into sections at top-level h2.

Contract of :func:`render_markdown`:

* The source is UTF-8 text (``str``, or ``bytes`` that must decode as UTF-8), not empty,
  at most :data:`MAX_BYTES` bytes; anything else raises ``InvalidInput`` on the field
  ``markdown``.
* The HTML is Python-Markdown's output (fenced code, tables, sane lists) passed through
  ``nh3`` with an allowlist: p, h2–h4, strong, em, b, i, a[href,title], ul, ol, li,
  blockquote, code, pre, hr, br, img[src,alt,width,height], table, thead, tbody, tr, th,
  td. Raw HTML in the Markdown is sanitised like the rest: scripts and styles are removed
  with their content, unknown tags keep only their text, every other attribute (style,
  on*, class, id) is dropped. Links must be absolute http(s) or mailto URLs, images
  http(s); anything else loses its URL. Links get ``rel="noopener"``.
* Headings: ``#`` is the title level of a Markdown document, but the email's title is its
  subject, so when the document uses ``#`` every heading moves one level down (``#`` →
  h2, ``##`` → h3, …); h5 and h6 become h4. The h2s are what the email template splits
  into sections (see templates/emails/edition.mjml).
* Inline styles for email clients are added *after* sanitising, to the clean output only,
  so nothing from the source can reach a ``style`` attribute. In the output, "<" only ever
  opens a tag (text is escaped and "<"/">" are kept out of attribute values), so the
  styling here and the split at "<h2" in the email template can find tags by their name.
* The text alternative is :func:`newsletter.editions.markdown.text.markdown_to_text` of
  the same source (see that module).
"""

from __future__ import annotations

import html as html_lib
import re

import markdown as markdown_lib
import nh3

from newsletter.editions.markdown.text import markdown_to_text
from newsletter.editions.markdown.urls import IMAGE_SCHEMES, LINK_SCHEMES, allowed_url
from newsletter.mail.brand import BRAND
from newsletter.validation import FieldError, InvalidInput

__all__ = ["MAX_BYTES", "first_paragraph_text", "render_markdown", "sanitise"]

MAX_BYTES = 200 * 1024
MAX_HTML_BYTES = 80 * 1024  # the body; the layout and footer add ~10 KB
FIELD = "markdown"

ALLOWED_TAGS = frozenset({
    "p", "h2", "h3", "h4", "strong", "em", "b", "i", "a", "ul", "ol", "li", "blockquote",
    "code", "pre", "hr", "br", "img", "table", "thead", "tbody", "tr", "th", "td",
})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}}

# Added to the sanitised output; keys are the allowed tags that get a style (the brand's
# colours and fonts, as in every email).
_B = BRAND
STYLES = {
    "p": "margin:0 0 12px 0;",
    "h2": f"margin:8px 0 10px 0;font-size:22px;line-height:1.3;color:{_B['ink']};"
          f"font-family:{_B['serif']};",
    "h3": f"margin:18px 0 6px 0;font-size:18px;line-height:1.3;color:{_B['ink']};"
          f"font-family:{_B['serif']};",
    "h4": f"margin:14px 0 4px 0;font-size:16px;line-height:1.3;color:{_B['ink']};",
    "a": f"color:{_B['accent']};text-decoration:underline;",
    "ul": "margin:0 0 12px 0;padding-left:24px;",
    "ol": "margin:0 0 12px 0;padding-left:24px;",
    "li": "margin:0 0 4px 0;",
    "blockquote": f"margin:0 0 12px 0;padding:2px 0 2px 14px;border-left:4px solid {_B['rule']};"
                  f"color:{_B['muted']};",
    "code": f"font-family:Menlo,Consolas,monospace;font-size:14px;background-color:{_B['tint']};",
    "pre": f"margin:0 0 12px 0;padding:10px 12px;background-color:{_B['tint']};"
           "white-space:pre-wrap;word-wrap:break-word;font-size:14px;",
    "hr": f"border:0;border-top:1px solid {_B['rule']};margin:20px 0;",
    "img": "max-width:100%;height:auto;border:0;",
    "table": "border-collapse:collapse;margin:0 0 12px 0;",
    "th": f"border:1px solid {_B['rule']};padding:4px 8px;text-align:left;",
    "td": f"border:1px solid {_B['rule']};padding:4px 8px;text-align:left;",
}
_STYLED_TAG = re.compile(r"<(" + "|".join(STYLES) + r")(?=[\s>/])")
_HEADING_TAG = re.compile(r"<(/?)h([1-6])(?=[\s>/])", re.IGNORECASE)
_PARAGRAPH = re.compile(r"<p[^>]*>(.*?)</p>", re.DOTALL)
_ANY_TAG = re.compile(r"<[^>]+>")
_IMAGE_WITHOUT_SOURCE = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")
_LINK_WITHOUT_HREF = re.compile(r"<a(?=[\s>])(?![^>]*\shref=)[^>]*>(.*?)</a>", re.DOTALL)


def _invalid(message: str) -> InvalidInput:
    return InvalidInput([FieldError(FIELD, message)])


def _decode(source: str | bytes) -> str:
    if isinstance(source, bytes):
        if len(source) > MAX_BYTES:
            raise _invalid(f"is larger than {MAX_BYTES // 1024} KB")
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid(f"is not UTF-8 text (invalid byte at position {exc.start})") from None
    elif not isinstance(source, str):
        raise _invalid("must be text")
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8, smuggled in
        raise _invalid("is not UTF-8 text") from None
    if size > MAX_BYTES:
        raise _invalid(f"is larger than {MAX_BYTES // 1024} KB")
    source = source.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    source = source.replace("\0", "")
    if not source.strip():
        raise _invalid("is empty: write the edition's body in Markdown")
    return source


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    # No "<" or ">" may remain in an attribute value (the serialiser leaves them as they
    # are there): the styling step and the email template find tags by "<tag", so the
    # only "<" in the output must be those of tags.
    if tag == "a" and name == "href":
        ok = allowed_url(value, LINK_SCHEMES)
        return value.replace("<", "%3C").replace(">", "%3E") if ok else None
    if tag == "img" and name == "src":
        ok = allowed_url(value, IMAGE_SCHEMES)
        return value.replace("<", "%3C").replace(">", "%3E") if ok else None
    if tag == "img" and name in {"width", "height"}:
        return value if value.isdigit() and len(value) <= 4 else None
    return value.replace("<", "").replace(">", "")


def sanitise(html: str) -> str:
    """``html`` reduced to the allowlist above, without any inline style (the web version
    uses this, so the site's stylesheet applies and its CSP holds). A link or image whose
    URL was refused keeps only its text (links) or disappears (images)."""
    clean = nh3.clean(
        html, tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute, link_rel="noopener",
        url_schemes=set(LINK_SCHEMES), strip_comments=True,
    )
    # The sanitiser's output is well-formed and links never nest, so these are exact.
    clean = _LINK_WITHOUT_HREF.sub(r"\1", clean)
    return _IMAGE_WITHOUT_SOURCE.sub("", clean)


def _shift_headings(html: str) -> str:
    offset = 1 if re.search(r"<h1[\s>]", html, re.IGNORECASE) else 0
    return _HEADING_TAG.sub(
        lambda m: f"<{m.group(1)}h{min(max(int(m.group(2)) + offset, 2), 4)}", html)


# The email's content width (600 px less 24 px of padding each side). Outlook for Windows
# ignores max-width and shows an image at its own size: every image gets a width
# attribute no larger than this, and its height follows (height:auto).
IMAGE_WIDTH = 552
_IMG_TAG = re.compile(r"<img\b[^>]*>")
_SIZE_ATTRIBUTE = re.compile(r'\s(width|height)="(\d+)"')


def _sized_image(match: re.Match) -> str:
    tag = match.group(0)
    sizes = dict(_SIZE_ATTRIBUTE.findall(tag))
    width = min(int(sizes.get("width") or IMAGE_WIDTH), IMAGE_WIDTH) or IMAGE_WIDTH
    tag = _SIZE_ATTRIBUTE.sub("", tag)  # a fixed height would distort a narrowed image
    return tag.replace("<img", f'<img width="{width}"', 1)


def _add_styles(clean_html: str) -> str:
    styled = _STYLED_TAG.sub(lambda m: f'<{m.group(1)} style="{STYLES[m.group(1)]}"',
                             clean_html)
    return _IMG_TAG.sub(_sized_image, styled)


_TAG = re.compile(r"<(/?)([a-z][a-z0-9]*)\b[^>]*>")
_VOID = frozenset({"br", "hr", "img"})


def _top_level_h2_only(clean_html: str) -> str:
    """An h2 inside anything (a quote, a list, a table) becomes an h3: the email starts a
    section at each h2, so only top-level ones may stay h2. ``clean_html`` is the
    sanitiser's well-formed output."""
    out: list[str] = []
    stack: list[str] = []
    position = 0
    for match in _TAG.finditer(clean_html):
        closing, name = match.group(1), match.group(2)
        tag = match.group(0)
        if closing:
            renamed = stack.pop() if stack else name
            if renamed != name:
                tag = f"</{renamed}>"
        elif name not in _VOID and not tag.endswith("/>"):
            renamed = "h3" if name == "h2" and stack else name
            if renamed != name:
                tag = "<h3" + tag[3:]
            stack.append(renamed)
        out.append(clean_html[position:match.start()] + tag)
        position = match.end()
    out.append(clean_html[position:])
    return "".join(out)


def render_markdown(source: str | bytes) -> tuple[str, str]:
    """Return ``(html, text)`` for an email body written in Markdown; see the module
    docstring. Raises ``InvalidInput`` (field ``markdown``) for unusable input."""
    source = _decode(source)
    try:
        converted = markdown_lib.markdown(
            source, extensions=["fenced_code", "tables", "sane_lists"], output_format="html")
        text = markdown_to_text(source)
    except RecursionError:
        raise _invalid("nests quotes or lists too deeply") from None
    clean = _top_level_h2_only(sanitise(_shift_headings(converted)).strip())
    if not _ANY_TAG.sub("", clean).strip() and "<img" not in clean:
        raise _invalid("has no content once unsafe HTML is removed")
    html = _add_styles(clean)
    size = len(html.encode("utf-8"))
    if size > MAX_HTML_BYTES:
        raise _invalid(f"makes {size // 1024} KB of HTML; at most {MAX_HTML_BYTES // 1024} KB "
                       "fit in an email (Gmail clips a message above 102 KB, hiding the "
                       "unsubscribe link)")
    return html, text


def first_paragraph_text(html: str, limit: int = 140) -> str:
    """The text of the first non-empty paragraph of ``html`` on one line, at most ``limit``
    characters (cut at a word, with an ellipsis) — a preheader for an edition."""
    for match in _PARAGRAPH.finditer(html):
        text = " ".join(html_lib.unescape(_ANY_TAG.sub("", match.group(1))).split())
        if text:
            break
    else:
        text = " ".join(html_lib.unescape(_ANY_TAG.sub(" ", html)).split())
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-") + "…"

