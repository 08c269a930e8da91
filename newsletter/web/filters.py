"""Jinja filters for the site's templates."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Flask
from markupsafe import Markup, escape

from newsletter.mail.brand import BRAND

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


CURRENCY_SIGNS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$", "jpy": "¥"}
ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "isk", "huf", "twd", "ugx", "xaf", "xof"}


def money(amount: int | float | None, currency: str | None) -> str:
    """Minor units as a price: ``money(800, "eur")`` is ``€8``, ``money(850, "usd")``
    ``$8.50``; an unknown currency keeps its code (``8.00 CHF``)."""
    if amount is None:
        return ""
    code = (currency or "").lower()
    value = amount if code in ZERO_DECIMAL else amount / 100
    text = f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"
    sign = CURRENCY_SIGNS.get(code)
    return f"{sign}{text}" if sign else f"{text} {code.upper()}".strip()


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (("Windows", "Windows"), ("iPhone", "iPhone"), ("iPad", "iPad"),
            ("Android", "Android"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))


def user_agent_summary(value: str | None) -> str:
    """"Firefox on Linux" from a user-agent string, to recognise a browser in a list (it
    is whatever the browser claims: shown, never trusted)."""
    if not value:
        return "Unknown browser"
    name = next((label for key, label in _BROWSERS if key in value), None)
    system = next((label for key, label in _SYSTEMS if key in value), None)
    if name and system:
        return f"{name} on {system}"
    return name or system or value[:40]


def register(app: Flask) -> None:
    from newsletter.web.urls import absolute_url

    app.add_template_global(absolute_url)
    app.add_template_global(BRAND, "brand")
    app.add_template_filter(money)
    app.add_template_filter(paragraphs)
    app.add_template_filter(long_date)
    app.add_template_filter(iso)
    app.add_template_filter(user_agent_summary)
