"""Markdown to the text alternative of an email.

Contract of :func:`markdown_to_text`: the Markdown source normalised — links as
``text (url)`` (a link or image whose URL is refused by :mod:`.urls` keeps only its text),
raw HTML tags removed (``<script>``/``<style>`` with their content), headings underlined,
paragraphs, list items and quotes wrapped at :data:`WIDTH` columns; code blocks and tables
are kept as they are.
"""

from __future__ import annotations

import html as html_lib
import re
import textwrap

from newsletter.editions.markdown.urls import IMAGE_SCHEMES, LINK_SCHEMES, allowed_url

__all__ = ["WIDTH", "markdown_to_text"]

WIDTH = 72

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
# Emphasis markers are for the HTML part; the text part says the words (a mail client
# shows "**this**" literally). Intra-word stars and underscores (snake_case, 2*3*4) stay.
_STRONG = re.compile(r"(?<![\w*_])(\*\*|__)(?=\S)(.+?)(?<=\S)\1(?![\w*_])")
_EMPHASIS = re.compile(r"(?<![\w*_])([*_])(?=[^\s*_])(.+?)(?<=[^\s*_])\1(?![\w*_])")
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^ {0,3}([-*_])(\s*\1){2,}\s*$")
_ITEM = re.compile(r"^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$")
_QUOTE = re.compile(r"^ {0,3}>\s?(.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _inline_text(text: str) -> str:
    def image(match: re.Match[str]) -> str:
        alt, url = match.group(1).strip(), match.group(2)
        if not allowed_url(url, IMAGE_SCHEMES):
            return alt
        return f"{alt} ({url})" if alt else url

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1).strip(), match.group(2)
        if not allowed_url(url, LINK_SCHEMES):
            return label
        shown = url.removeprefix("mailto:")
        return shown if label in (url, shown) else f"{label} ({shown})"

    def outside_code(part: str) -> str:
        part = _IMAGE.sub(image, part)
        part = _LINK.sub(link, part)
        part = _AUTOLINK.sub(lambda m: m.group(1).removeprefix("mailto:"), part)
        part = _EMPHASIS.sub(r"\2", _STRONG.sub(r"\2", part))
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
