"""The digest email as a reader's mail client shows it: Chromium at phone and desktop-pane
widths, the 30-synthesis digest loaded as it would arrive (personal fields filled in)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from newsletter.mail import EmailRenderer
from tests.browser.conftest import ACTION_TIMEOUT_MS, ROOT
from tests.unit.test_digest_email import PERSONAL, TEMPLATES, all_syntheses, digest_context

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser"

# Every element that holds text of its own, with its computed size and whether it is shown.
_TEXT_RUNS = """() => {
  const runs = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)
      .map(n => n.textContent.trim()).join(' ').trim();
    if (!own) continue;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    runs.push({text: own.slice(0, 60), size: parseFloat(style.fontSize),
               shown: box.width > 0 && box.height > 0 && style.visibility !== 'hidden'});
  }
  return runs;
}"""


@pytest.fixture(scope="module")
def digest():
    context = digest_context()
    html, _ = EmailRenderer(TEMPLATES).render("digest", context).personalise(**PERSONAL)
    return context, html


@pytest.mark.parametrize("width", [375, 600])
def test_digest_reads_well_at_phone_and_pane_widths(chromium, digest, width):
    context, html = digest
    browser_context = chromium.new_context(viewport={"width": width, "height": 800},
                                           locale="en-US")
    browser_context.set_default_timeout(ACTION_TIMEOUT_MS)
    # The email must stand alone: nothing it shows may come from the network.
    browser_context.route("**/*", lambda route: route.abort())
    try:
        page = browser_context.new_page()
        page.set_content(html, wait_until="load")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"digest-{width}.png", full_page=True)

        scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
        assert scroll_width <= width, f"the digest scrolls sideways at {width} px " \
                                      f"({scroll_width} px wide)"

        for synthesis in all_syntheses(context):
            title = page.get_by_role("link", name=synthesis["title"], exact=True)
            expect(title).to_be_visible()
            expect(title).to_have_attribute("href", synthesis["url"])
            box = title.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, synthesis["title"]

        unsubscribe = page.get_by_role("link", name="Unsubscribe", exact=True)
        expect(unsubscribe).to_be_visible()
        expect(unsubscribe).to_have_attribute("href", PERSONAL["unsubscribe_url"])
        expect(page.get_by_role("link", name="Manage preferences", exact=True)).to_be_visible()
        expect(page.get_by_text(context["postal_address"])).to_be_visible()
        expect(page.get_by_text(context["preheader"])).to_be_hidden()

        runs = [run for run in page.evaluate(_TEXT_RUNS) if run["shown"]]
        footer_at = next(i for i, run in enumerate(runs)
                         if run["text"].startswith("You receive this"))
        body, footer = runs[:footer_at], runs[footer_at:]
        small = [run for run in body if run["size"] < 14]
        assert not small, f"body text under 14 px at {width} px: {small[:5]}"
        assert all(run["size"] >= 13 for run in footer), footer
        summaries = [run for run in body if run["text"].startswith("The European Union")]
        assert summaries and all(run["size"] >= 16 for run in summaries), summaries
    finally:
        browser_context.close()


# The colours a reader sees, computed by the browser: the page, a card, a heading, body text.
_COLOURS = """() => {
  const colour = (el, prop) => getComputedStyle(el)[prop];
  const card = document.querySelector('.nl-card');
  return {page: colour(document.querySelector('.nl-body'), 'backgroundColor'),
          card: colour(card, 'backgroundColor'),
          heading: colour(document.querySelector('h1'), 'color'),
          text: colour(document.querySelector('.nl-card td div'), 'color'),
          link: colour(document.querySelector('h3 a'), 'color')};
}"""


def _luminance(css: str) -> float:
    r, g, b = (int(v) / 255 for v in css[css.index("(") + 1:css.index(")")].split(",")[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_digest_is_designed_for_light_and_dark_mode(chromium, scheme):
    html, _ = EmailRenderer(TEMPLATES).render("digest", digest_context(count=3)
                                              ).personalise(**PERSONAL)
    browser_context = chromium.new_context(viewport={"width": 375, "height": 800},
                                           color_scheme=scheme, locale="en-US")
    browser_context.route("**/*", lambda route: route.abort())
    try:
        page = browser_context.new_page()
        page.set_content(html, wait_until="load")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"digest-{scheme}-375.png", full_page=True)
        colours = page.evaluate(_COLOURS)
        card_is_dark = _luminance(colours["card"]) < 0.05
        assert card_is_dark is (scheme == "dark"), colours
        for part in ("heading", "text", "link"):
            ratio = _contrast(colours[part], colours["card"])
            assert ratio >= 4.5, f"{scheme}: {part} {colours[part]} on {colours['card']}: " \
                                 f"contrast {ratio:.1f}"
    finally:
        browser_context.close()
