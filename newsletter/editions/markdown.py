"""Markdown to email HTML (sanitised, with inline styles) and to a text alternative.

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
* The text alternative is the Markdown source normalised: links as ``text (url)``, raw
  HTML tags removed, headings underlined, paragraphs, list items and quotes wrapped at 72
  columns; code blocks and tables are kept as they are.
"""

from __future__ import annotations

import html as html_lib
import re
import textwrap
from urllib.parse import urlsplit

import markdown as markdown_lib
import nh3

from newsletter.validation import FieldError, InvalidInput

__all__ = ["MAX_BYTES", "first_paragraph_text", "render_markdown", "sanitise"]

MAX_BYTES = 200 * 1024
MAX_HTML_BYTES = 80 * 1024  # the body; the layout and footer add ~10 KB
WIDTH = 72
FIELD = "markdown"

ALLOWED_TAGS = frozenset({
    "p", "h2", "h3", "h4", "strong", "em", "b", "i", "a", "ul", "ol", "li", "blockquote",
    "code", "pre", "hr", "br", "img", "table", "thead", "tbody", "tr", "th", "td",
})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}}
_LINK_SCHEMES = {"http", "https", "mailto"}
_IMAGE_SCHEMES = {"http", "https"}

# Added to the sanitised output; keys are the allowed tags that get a style.
STYLES = {
    "p": "margin:0 0 12px 0;",
    "h2": "margin:8px 0 10px 0;font-size:22px;line-height:1.3;color:#111418;",
    "h3": "margin:18px 0 6px 0;font-size:18px;line-height:1.3;color:#111418;",
    "h4": "margin:14px 0 4px 0;font-size:16px;line-height:1.3;color:#111418;",
    "a": "color:#0b57d0;text-decoration:underline;",
    "ul": "margin:0 0 12px 0;padding-left:24px;",
    "ol": "margin:0 0 12px 0;padding-left:24px;",
    "li": "margin:0 0 4px 0;",
    "blockquote": "margin:0 0 12px 0;padding:2px 0 2px 14px;border-left:4px solid #d0d7de;"
                  "color:#3d444d;",
    "code": "font-family:Menlo,Consolas,monospace;font-size:14px;background-color:#f3f4f6;",
    "pre": "margin:0 0 12px 0;padding:10px 12px;background-color:#f3f4f6;"
           "white-space:pre-wrap;word-wrap:break-word;font-size:14px;",
    "hr": "border:0;border-top:1px solid #d0d7de;margin:20px 0;",
    "img": "max-width:100%;height:auto;border:0;",
    "table": "border-collapse:collapse;margin:0 0 12px 0;",
    "th": "border:1px solid #d0d7de;padding:4px 8px;text-align:left;",
    "td": "border:1px solid #d0d7de;padding:4px 8px;text-align:left;",
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


def _allowed_url(value: str, schemes: set[str]) -> bool:
    try:
        scheme = urlsplit(value.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme in schemes


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    # No "<" or ">" may remain in an attribute value (the serialiser leaves them as they
    # are there): the styling step and the email template find tags by "<tag", so the
    # only "<" in the output must be those of tags.
    if tag == "a" and name == "href":
        ok = _allowed_url(value, _LINK_SCHEMES)
        return value.replace("<", "%3C").replace(">", "%3E") if ok else None
    if tag == "img" and name == "src":
        ok = _allowed_url(value, _IMAGE_SCHEMES)
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
        url_schemes=set(_LINK_SCHEMES), strip_comments=True,
    )
    # The sanitiser's output is well-formed and links never nest, so these are exact.
    clean = _LINK_WITHOUT_HREF.sub(r"\1", clean)
    return _IMAGE_WITHOUT_SOURCE.sub("", clean)


def _shift_headings(html: str) -> str:
    offset = 1 if re.search(r"<h1[\s>]", html, re.IGNORECASE) else 0
    return _HEADING_TAG.sub(
        lambda m: f"<{m.group(1)}h{min(max(int(m.group(2)) + offset, 2), 4)}", html)


def _add_styles(clean_html: str) -> str:
    return _STYLED_TAG.sub(lambda m: f'<{m.group(1)} style="{STYLES[m.group(1)]}"', clean_html)


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


# -- text alternative -----------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?(-->|\Z)", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s(?:\"[^\"]*\"|'[^']*'|[^'\">])*)?/?>")
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
_URL = r"<?((?:[^()\s<>]|\([^()\s]*\))*)>?"
_TITLE = r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?"
_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*" + _URL + _TITLE + r"\s*\)")
_LINK = re.compile(r"\[([^\]]+)\]\(\s*" + _URL + _TITLE + r"\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>", re.IGNORECASE)
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^ {0,3}([-*_])(\s*\1){2,}\s*$")
_ITEM = re.compile(r"^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$")
_QUOTE = re.compile(r"^ {0,3}>\s?(.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _inline_text(text: str) -> str:
    def image(match: re.Match[str]) -> str:
        alt, url = match.group(1).strip(), match.group(2)
        if not _allowed_url(url, _IMAGE_SCHEMES):
            return alt
        return f"{alt} ({url})" if alt else url

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1).strip(), match.group(2)
        if not _allowed_url(url, _LINK_SCHEMES):
            return label
        shown = url.removeprefix("mailto:")
        return shown if label in (url, shown) else f"{label} ({shown})"

    def outside_code(part: str) -> str:
        part = _IMAGE.sub(image, part)
        part = _LINK.sub(link, part)
        part = _AUTOLINK.sub(lambda m: m.group(1).removeprefix("mailto:"), part)
        return html_lib.unescape(_HTML_TAG.sub("", part))

    pieces, position = [], 0
    for match in _CODE_SPAN.finditer(text):
        pieces.append(outside_code(text[position:match.start()]))
        pieces.append(match.group(0))
        position = match.end()
    pieces.append(outside_code(text[position:]))
    return "".join(pieces)


def _fill(text: str, first: str = "", rest: str = "") -> str:
    return textwrap.fill(" ".join(text.split()), WIDTH, initial_indent=first,
                         subsequent_indent=rest, break_long_words=False,
                         break_on_hyphens=False)


def _paragraph(lines: list[str], first: str = "", rest: str = "") -> str:
    """Wrap lines as one paragraph, keeping Markdown hard breaks (two spaces or ``\\``)."""
    pieces, current = [], []
    for line in lines:
        hard = line.endswith("  ") or line.endswith("\\")
        current.append(line.rstrip("\\ "))
        if hard:
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    out = []
    for i, piece in enumerate(pieces):
        filled = _fill(_inline_text(" ".join(piece)), first if i == 0 else rest, rest)
        out.append(filled)
    return "\n".join(line for line in out if line.strip())


def _heading(text: str, level: int) -> str:
    title = _fill(_inline_text(text))
    width = min(max(len(line) for line in title.splitlines()), WIDTH)
    return f"{title}\n{('=' if level <= 2 else '-') * width}"


def _blocks(source: str) -> list[tuple[str, list[str]]]:
    """Split the source into ("code", lines) for fenced code and ("text", lines) for the
    rest, separated at blank lines."""
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] = []
    lines = source.split("\n")
    i = 0

    def flush() -> None:
        if current:
            blocks.append(("text", current.copy()))
            current.clear()

    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(1)
            code = [line]
            i += 1
            while i < len(lines):
                code.append(lines[i])
                i += 1
                if lines[i - 1].strip().startswith(marker[0] * len(marker)) and \
                        not lines[i - 1].strip().strip(marker[0]):
                    break
            blocks.append(("code", code))
            continue
        if line.strip():
            current.append(line.rstrip("\n"))
        else:
            flush()
        i += 1
    flush()
    return blocks


def _text_block(lines: list[str]) -> list[str]:
    """Normalise one blank-line separated block of Markdown into text chunks."""
    if all(line.startswith(("    ", "\t")) for line in lines):
        return ["\n".join(lines)]  # indented code
    if len(lines) >= 2 and _TABLE_RULE.match(lines[1]) and "|" in lines[0]:
        return ["\n".join(_inline_text(line).rstrip() for line in lines)]
    out: list[str] = []
    para: list[str] = []
    quote: list[str] = []
    items: list[str] = []  # wrapped list items of the current list, one chunk together
    item: tuple[str, str, list[str]] | None = None  # (indent, marker, lines)

    def flush_item() -> None:
        nonlocal item
        if item:
            indent, marker, item_lines = item
            pad = " " * (len(marker) + 1)
            items.append(_paragraph(item_lines, f"{indent}{marker} ", f"{indent}{pad}"))
            item = None

    def flush() -> None:
        flush_item()
        if items:
            out.append("\n".join(items))
            items.clear()
        if para:
            out.append(_paragraph(para))
            para.clear()
        if quote:
            inner = "\n\n".join(chunk for chunk in _markdown_chunks("\n".join(quote)))
            out.append("\n".join(f"> {line}".rstrip() for line in inner.split("\n")))
            quote.clear()

    for line in lines:
        atx = _ATX.match(line)
        quoted = _QUOTE.match(line)
        listed = _ITEM.match(line)
        if quote and not quoted and line.strip():
            quote.append(line)  # lazy continuation of the quote
            continue
        if atx:
            flush()
            out.append(_heading(atx.group(2), len(atx.group(1))))
        elif _RULE.match(line) and not (para and _SETEXT.match(line)):
            flush()
            out.append("-" * 20)
        elif para and _SETEXT.match(line):
            text = " ".join(para)
            para.clear()
            flush()
            out.append(_heading(text, 1 if line.strip().startswith("=") else 2))
        elif quoted:
            if not quote:
                flush()
            quote.append(quoted.group(1))
        elif listed:
            if not items and not item:
                flush()
            flush_item()
            item = (listed.group(1).replace("\t", "    "), listed.group(2), [listed.group(3)])
        elif item:
            item[2].append(line.lstrip())
        else:
            para.append(line.lstrip())
    flush()
    return out


def _markdown_chunks(source: str) -> list[str]:
    chunks: list[str] = []
    for kind, lines in _blocks(source):
        if kind == "code":
            chunks.append("\n".join(lines))
        else:
            chunks.extend(chunk for chunk in _text_block(lines) if chunk.strip())
    return chunks


def _without_scripts(source: str) -> str:
    """Remove raw <script>/<style> elements and comments outside code (fenced blocks and
    code spans keep them as written)."""
    out: list[str] = []
    run: list[str] = []
    fence: str | None = None

    def flush_run() -> None:
        if not run:
            return
        text = "\n".join(run)
        spans: list[str] = []

        def keep(match: re.Match[str]) -> str:
            spans.append(match.group(0))
            return f"\0{len(spans) - 1}\0"

        text = _CODE_SPAN.sub(keep, text)
        text = _COMMENT.sub("", _SCRIPT_OR_STYLE.sub("", text))
        out.append(re.sub(r"\0(\d+)\0", lambda m: spans[int(m.group(1))], text))
        run.clear()

    for line in source.split("\n"):
        opening = _FENCE.match(line)
        if fence is None and opening:
            flush_run()
            fence = opening.group(1)
            out.append(line)
        elif fence is not None:
            out.append(line)
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = None
        else:
            run.append(line)
    flush_run()
    return "\n".join(out)


def markdown_to_text(source: str) -> str:
    """The text alternative of a Markdown document (see the module docstring)."""
    text = "\n\n".join(_markdown_chunks(_without_scripts(source)))
    return re.sub(r"\n{3,}", "\n\n", text).strip()
