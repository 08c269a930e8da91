"""The publication's look, in one place: colours, fonts and the masthead mark that the site
and every email share. A change of brand is made here once — the site reads it as CSS
variables (``/brand.css``), the email templates as ``brand.<name>``, the Markdown of special
editions through its inline styles.

Colours meet WCAG AA contrast on the backgrounds they are used on (the accent is 6.6:1 on
white; the muted grey is 8.1:1 on white and 7.0:1 on the tint).
"""

from __future__ import annotations

from markupsafe import Markup

# Font stacks use single quotes inside, so they can stand in a double-quoted attribute.
SANS = ("-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, "
        "sans-serif")
SERIF = "Georgia, 'Iowan Old Style', 'Times New Roman', serif"

BRAND: dict[str, str] = {
    "ink": "#1a1a1a",          # text and headings
    "muted": "#4d4d4d",        # secondary text
    "paper": "#ffffff",        # page and card background
    "tint": "#f4f1ea",         # panels, the email's surround, the footer
    "rule": "#d9d4c7",         # dividers and borders
    "accent": "#a3271b",       # links, buttons, section labels
    "accent_dark": "#7d1d14",  # hover and pressed
    "on_accent": "#ffffff",    # text on the accent
    "focus": "#1558d6",        # the keyboard focus ring (site)
    "control": "#767676",      # borders of inputs and buttons (3:1 against white and the tint)
    "ok": "#1e7a35",           # the mark of a message that says something went well
    "sans": SANS,
    "serif": SERIF,
    "mark": "MW",              # the masthead's round mark
}

# Site CSS variable name for each token.
CSS_NAMES = {"accent_dark": "accent-dark", "on_accent": "on-accent"}


def css_variables() -> str:
    """The tokens as CSS custom properties, for the site's stylesheets."""
    lines = [f"  --{CSS_NAMES.get(name, name)}: {value};" for name, value in BRAND.items()
             if name != "mark"]
    return ":root {\n" + "\n".join(lines) + "\n}\n"


def favicon_svg() -> str:
    """The round mark as the site's icon."""
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
            f'<circle cx="32" cy="32" r="32" fill="{BRAND["ink"]}"/>'
            '<text x="32" y="41" text-anchor="middle" font-family="-apple-system, Segoe UI, '
            f'Roboto, Arial, sans-serif" font-size="24" font-weight="700" '
            f'fill="{BRAND["paper"]}">{BRAND["mark"]}</text></svg>')


def for_templates() -> dict[str, Markup]:
    """The tokens for Jinja templates that escape (MJML): trusted values, never escaped."""
    return {name: Markup(value) for name, value in BRAND.items()}  # noqa: S704 - constants
