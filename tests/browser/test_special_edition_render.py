"""A special edition as a reader's mail client shows it, at phone and desktop widths: the
body, and a footer that says only what is true of this reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, ROOT
from tests.support.editions import audience, send
from tests.support.readers import outbox_messages

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser"
MARKDOWN = """## What happened

Regulators in three jurisdictions published **binding** rules for frontier models this week,
and the *first* audits start in March.

## What to watch

- Whether labs publish their evaluation results
- How the audits treat open-weight releases
"""


@pytest.fixture
def special_email(app, topics):
    from newsletter.editions.specials import create_special

    [reader] = audience(1, topics=("ai-policy-and-safety",))
    edition = create_special("Frontier rules arrive", MARKDOWN,
                             topics=["ai-policy-and-safety", "models-and-research"])
    send(app, edition.id)
    [message] = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    return reader, message


@pytest.mark.parametrize("width", [375, 1280])
def test_special_edition_reads_well_and_its_footer_is_true(chromium, special_email, width):
    reader, message = special_email
    html = message.get_body(("html",)).get_content()
    context = chromium.new_context(viewport={"width": width, "height": 900}, locale="en-US")
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.route("**/*", lambda route: route.abort())
    try:
        page = context.new_page()
        page.set_content(html, wait_until="load")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"special-edition-{width}.png", full_page=True)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width
        expect(page.get_by_text("binding", exact=True)).to_be_visible()
        footer = page.get_by_text("because you subscribed to Modelwire with")
        expect(footer).to_be_visible()
        expect(footer).to_contain_text(reader.email)
        expect(footer).to_contain_text("It is for readers who follow any of: AI policy and "
                                       "safety, Models and research.")
    finally:
        context.close()
    text = message.get_body(("plain",)).get_content()
    assert "**" not in text and "binding rules" in " ".join(text.split())
