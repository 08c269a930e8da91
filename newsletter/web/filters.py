"""Jinja filters for the site's templates."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Flask
from markupsafe import Markup, escape

_BLANK_LINES = re.compile(r"\n\s*\n")


def paragraphs(text: str | None) -> Markup:
    """Plain text to escaped ``<p>`` paragraphs (blank lines separate them)."""
    if not text:
        return Markup("")
    parts = [part.strip() for part in _BLANK_LINES.split(text) if part.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>").join(escape(line) for line in p.split("\n")))
        for p in parts
    )


def long_date(value: datetime) -> str:
    return f"{value:%B} {value.day}, {value:%Y}"


def iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def register(app: Flask) -> None:
    app.add_template_filter(paragraphs)
    app.add_template_filter(long_date)
    app.add_template_filter(iso)
