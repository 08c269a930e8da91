"""Render an email kind into HTML and text, compiling MJML once per distinct content.

Contract:

* ``EmailRenderer(templates_dir).render(name, context)`` renders ``<name>.mjml`` (Jinja,
  autoescaped) and ``<name>.txt`` (Jinja, not escaped) from ``templates_dir`` with
  ``context``, compiles the MJML to HTML and returns a :class:`RenderedEmail`.
* Values that differ per reader are never in ``context``: templates write
  ``{{ personal.<field> }}`` and the renderer prints an unguessable marker there. The
  compiled HTML and the text are split once at those markers; ``personalise(**values)``
  then only joins the pre-split segments with the values. Nothing is ever rendered twice,
  so user content that looks like template syntax (``{{ 7*7 }}``) stays literal.
* Personal fields must be printed as they are (no filters on ``personal.*``): a filter that
  alters a marker is reported as a :class:`TemplateError`.
* The compiled HTML is cached (LRU) by the SHA-256 of the MJML source, so the same
  template and content compile once per renderer; ``compile_count`` counts compilations.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import mjml
from markupsafe import Markup, escape

from newsletter.errors import Invalid
from newsletter.mail import brand

__all__ = ["EmailRenderer", "PersonalTemplate", "RenderedEmail", "TemplateError"]

TEXT_WIDTH = 72


class TemplateError(Invalid):
    """An email template could not be rendered or compiled; ``name`` says which."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"email template {name!r}: {message}")
        self.name = name


@dataclass(frozen=True, slots=True)
class PersonalTemplate:
    """A rendered document split at its personal fields.

    ``literals`` has one more item than ``fields``; the document is
    ``literals[0] + value(fields[0]) + literals[1] + ...``.
    """

    literals: tuple[str, ...]
    fields: tuple[str, ...]

    def fill(self, values: Mapping[str, str]) -> str:
        """Join the literals with ``values[field]``; raises ``KeyError`` for a missing field."""
        if not self.fields:
            return self.literals[0]
        parts: list[str] = [""] * (2 * len(self.fields) + 1)
        parts[::2] = self.literals
        parts[1::2] = [values[name] for name in self.fields]
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One email kind rendered for one content; personalise it once per reader.

    ``html_bytes_len`` is the UTF-8 size of the compiled HTML (Gmail clips above 102 KB).
    """

    name: str
    subject: str | None
    html: PersonalTemplate
    text: PersonalTemplate
    html_bytes_len: int
    fields: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", frozenset(self.html.fields + self.text.fields))

    def personalise(self, **values: str) -> tuple[str, str]:
        """Return ``(html, text)`` for one reader.

        Values are HTML-escaped in the HTML and inserted as they are in the text. Values the
        templates do not use are ignored; a missing one raises ``KeyError`` naming it.
        """
        missing = self.fields.difference(values)
        if missing:
            raise KeyError(f"missing personal value(s) for {self.name!r}: {sorted(missing)}")
        escaped = {name: str(escape(values[name])) for name in self.html.fields}
        text_values = {name: str(values[name]) for name in self.text.fields}
        return self.html.fill(escaped), self.text.fill(text_values)


class _Personal:
    """The ``personal`` object in a template: any attribute prints as a marker."""

    __slots__ = ("_nonce",)

    def __init__(self, nonce: str) -> None:
        self._nonce = nonce

    def __getattr__(self, name: str) -> str:
        # Leave dunder and private names alone so Jinja and MarkupSafe introspection
        # (``__html__`` and the like) does not receive a marker.
        if name.startswith("_"):
            raise AttributeError(name)
        return f"XP{self._nonce}Z{name.encode().hex()}X"


def _wrap(value: Any, width: int = TEXT_WIDTH, first: str = "", indent: str = "") -> str:
    """Wrap text into paragraphs of ``width`` columns; blank lines separate paragraphs.

    URLs and other long words are never broken, so links stay clickable.
    """
    paragraphs = re.split(r"\n\s*\n", str(value).strip())
    wrapped = []
    for i, paragraph in enumerate(p for p in paragraphs if p.strip()):
        wrapped.append(textwrap.fill(
            " ".join(paragraph.split()), width,
            initial_indent=first if i == 0 else indent, subsequent_indent=indent,
            break_long_words=False, break_on_hyphens=False,
        ))
    return "\n\n".join(wrapped)


def _paragraphs(value: Any) -> Markup:
    """HTML paragraphs from plain text: blank lines split paragraphs, newlines become <br>."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", str(value).strip()) if p.strip()]
    return Markup("").join(
        Markup('<p style="margin:0 0 12px 0;">{}</p>').format(
            Markup("<br>").join(escape(line) for line in p.splitlines())
        )
        for p in paragraphs
    )


# A sentence ends at . ! or ? (maybe closed by a quote or bracket) before a space and a
# capital or digit; "U.S. Senate" and "J. Smith" do not end one (a lone capital before the dot).
_SENTENCE_END = re.compile(
    r"(?<!\b[A-Z])[.!?][\"'\u201d\u2019)\]]?(?= +[\"'\u201c\u2018(]?[A-Z0-9])")


def _excerpt(value: Any, length: int = 280) -> str:
    """The opening of ``value`` (white space collapsed), cut at a sentence end.

    Text of at most ``length`` characters is returned whole. Otherwise the cut falls after
    the last sentence that ends within ``length``; when none does, after the first
    sentence if it ends within twice ``length``; `` …`` follows. Only a first sentence
    longer than that is cut after its last whole word within ``length`` (``…`` follows; a
    trailing comma or dash is dropped). ``None`` or blank gives "".
    """
    text = " ".join(str(value or "").split())
    if len(text) <= length:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, 2 * length)]
    within = [end for end in ends if end <= length - 2]
    if within:
        return f"{text[:within[-1]]} …"
    if ends:
        return f"{text[:ends[0]]} …"
    window = text[:length]  # its last character gives way to the ellipsis
    cut = window[:-1] if window.endswith(" ") or " " not in window else window.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:\u2013\u2014-") + "…"


def _longdate(value: date | datetime) -> str:
    return f"{value.day} {value:%B %Y}"


def _join_words(values: Iterable[Any]) -> str:
    """``["a", "b", "c"]`` → ``"a, b and c"``."""
    items = [str(v) for v in values]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


class EmailRenderer:
    """Renders the email templates under ``templates_dir``; safe to share between threads."""

    def __init__(self, templates_dir: Path, cache_size: int = 256) -> None:
        self.templates_dir = Path(templates_dir)
        self.cache_size = cache_size
        self.compile_count = 0
        self._nonce = secrets.token_hex(8)
        self._marker = re.compile(f"XP{self._nonce}Z([0-9a-f]+)X")
        self._cache: OrderedDict[str, tuple[PersonalTemplate, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.templates_dir),
            autoescape=jinja2.select_autoescape(enabled_extensions=("mjml",), default=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters.update(
            wrap=_wrap, paragraphs=_paragraphs, longdate=_longdate, join_words=_join_words,
            excerpt=_excerpt,
        )
        self._env.globals["brand"] = brand.for_templates()

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Render the email kind ``name``; raises :class:`TemplateError` on any failure."""
        if "personal" in context:
            raise TemplateError(name, "'personal' is provided by the renderer, not the context")
        full_context = {**context, "personal": _Personal(self._nonce)}
        source = self._render_jinja(name, f"{name}.mjml", full_context)
        text = self._render_jinja(name, f"{name}.txt", full_context)
        html, html_len = self._compiled(name, source)
        return RenderedEmail(
            name=name,
            subject=context.get("subject"),
            html=html,
            text=self._split(name, text),
            html_bytes_len=html_len,
        )

    def _render_jinja(self, name: str, template: str, context: Mapping[str, Any]) -> str:
        try:
            return self._env.get_template(template).render(context)
        except jinja2.TemplateError as exc:
            raise TemplateError(name, f"{template}: {exc}") from exc

    def _compiled(self, name: str, source: str) -> tuple[PersonalTemplate, int]:
        key = hashlib.sha256(source.encode()).hexdigest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        try:
            html = mjml.mjml2html(source, fonts={}, include_loader=self._load_include)
        except ValueError as exc:
            raise TemplateError(name, f"MJML compilation failed: {exc}") from exc
        entry = (self._split(name, html), len(html.encode()))
        with self._lock:
            self.compile_count += 1
            self._cache[key] = entry
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return entry

    def _load_include(self, path: str) -> str:
        """Load an ``<mj-include>`` file: a bare MJML fragment, filled with the brand's
        tokens only (``brand.*``; no per-email value reaches it)."""
        root = self.templates_dir.resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"mj-include outside the templates folder: {path}")
        return self._env.from_string(target.read_text(encoding="utf-8")).render()

    def _split(self, name: str, document: str) -> PersonalTemplate:
        pieces = self._marker.split(document)
        literals = tuple(pieces[::2])
        fields = tuple(bytes.fromhex(hexname).decode() for hexname in pieces[1::2])
        if any(self._nonce in literal.lower() for literal in literals):
            raise TemplateError(
                name, "a personal.* value was altered by a filter; print personal fields as-is"
            )
        return PersonalTemplate(literals, fields)
