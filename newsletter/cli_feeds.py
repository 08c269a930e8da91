"""``newsletter feeds``: RSS/Atom feeds whose new entries become syntheses."""

from __future__ import annotations

import click


@click.group("feeds")
def feeds_group() -> None:
    """Add, list, poll or remove the feeds polled for new syntheses."""
