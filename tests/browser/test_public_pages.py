"""Every public page and every kind of email, as a reader's browser shows them: at 375, 768
and 1280 px nothing scrolls sideways, and an automated accessibility scan (axe-core, through
``axe-playwright-python``) finds no serious or critical violation. Screenshots at 375 and
1280 px are kept under ``test-artifacts/browser/pages/``.

The pages come from the demo instance served as ``make run`` serves it; the reader's pages
(subscribe, confirm, preferences, unsubscribe) from a reader who subscribes there; the
emails from that instance's outbox (confirmation, welcome, sign-in link, a digest, a special
edition), opened in the browser as a mail client would show their HTML.
"""

from __future__ import annotations

import re
import time
from email import policy
from email.parser import BytesParser

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ROOT, LiveServer
from tests.browser.test_reader_journey import _newest_message

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser" / "pages"
WIDTHS = (375, 768, 1280)
KEPT = (375, 1280)
READER = "pages.browser@example.com"


def _axe():
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


def check(page: Page, name: str) -> list[str]:
    """Screenshots and the scan for the page as it stands; the problems found, in words."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.wait_for_timeout(50)
        if width in KEPT:
            page.screenshot(path=ARTIFACTS / f"{name}-{width}.png", full_page=True)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        if scroll > width:
            wide = page.evaluate("""(w) => Array.from(document.querySelectorAll('body *'))
                .filter(e => e.getBoundingClientRect().right > w + 1)
                .slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id + ' '
                + Math.round(e.getBoundingClientRect().right))""", width)
            problems.append(f"{name}: scrolls sideways at {width} px ({scroll} px wide); "
                            f"past the edge: {wide}")
        results = _axe().run(page, options={"resultTypes": ["violations"]})
        for violation in results.response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [" ".join(node["target"]) for node in violation["nodes"]][:3]
                problems.append(f"{name} at {width} px: {violation['id']} ({violation['impact']})"
                                f" on {targets}: {violation['help']}")
    page.set_viewport_size({"width": 1280, "height": 800})
    return problems


def _first_synthesis_path(page: Page) -> str:
    page.goto("/")
    return page.locator("article.card h2 a, article.card h3 a").first.get_attribute("href")


def test_every_public_page_reads_at_every_width_without_serious_problems(
        page: Page, live_server: LiveServer):
    problems: list[str] = []
    synthesis = _first_synthesis_path(page)
    visits = [
        ("home", "/"),
        ("synthesis", synthesis),
        ("topics", "/topics/"),
        ("topic", "/topics/models-and-research"),
        ("premium-topic", "/topics/analyst-briefings"),
        ("subscribe", "/subscribe"),
        ("feeds", "/feeds"),
        ("editions", "/editions"),
        ("request-link", "/preferences"),
        ("upgrade", "/upgrade"),
        ("not-found", "/no/such/page"),
        ("past-the-last-page", "/?page=9"),
    ]
    for name, path in visits:
        page.goto(path)
        expect(page.locator("h1").first).to_be_visible()
        problems += check(page, name)
    assert problems == [], "\n".join(problems)


def test_a_new_readers_pages_and_emails_read_well_without_serious_problems(
        page: Page, live_server: LiveServer):
    problems: list[str] = []
    page.goto("/subscribe")
    page.get_by_label("Email address").fill(READER)
    for topic in ("AI policy and safety", "Models and research"):
        page.locator("label.check", has_text=topic).locator("input").check()
    sent_after = time.time() - 1
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    problems += check(page, "subscribe-answer")

    confirmation = _newest_message(live_server.outbox, after=sent_after, to=READER)
    text = confirmation.get_body(preferencelist=("plain",)).get_content()
    page.goto(re.findall(re.escape(live_server.url) + r"/confirm/[^\s<>\"]+", text)[0])
    problems += check(page, "confirm")
    confirmed_after = time.time() - 1
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("status").first).to_contain_text("Your first digest comes")
    problems += check(page, "preferences-welcome")

    # Reorder with the keyboard: focus an arrow, press Enter; the row moves at once.
    first_topic = page.locator("[data-topic-order] li").first.locator("label span").first
    name = first_topic.inner_text().strip()
    down = page.get_by_role("button", name=f"Move {name} down")
    down.focus()
    page.keyboard.press("Enter")
    expect(page.locator("[data-topic-order] li").nth(1)).to_contain_text(name)
    expect(page.locator("[data-topic-order-status]")).to_contain_text(f"{name} moved down")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator("#saved")).to_contain_text("Saved: the order of your topics.")
    expect(page.locator("[data-topic-order] li").nth(1)).to_contain_text(name)
    problems += check(page, "preferences-saved")

    welcome = _newest_message(live_server.outbox, after=confirmed_after, to=READER)
    assert welcome["Subject"] == "Welcome to Modelwire"

    # A digest now, and the emails of each kind, opened as a mail client shows them.
    live_server.newsletter("digest", "--now", "--send")
    digest = _wait_for(live_server, lambda m: m["To"] == READER and m["List-Unsubscribe"])
    unsubscribe = digest["List-Unsubscribe"].strip().strip("<>")
    for kind, message in (("email-confirm", confirmation), ("email-welcome", welcome),
                          ("email-digest", digest)):
        page.goto("about:blank")  # a document of its own: the site's CSP would strip styles
        page.set_content(message.get_body(("html",)).get_content())
        problems += check(page, kind)

    page.goto(unsubscribe)
    problems += check(page, "unsubscribe")
    page.get_by_role("button", name=re.compile("Unsubscribe from everything")).click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    problems += check(page, "unsubscribed")
    assert problems == [], "\n".join(problems)


def _wait_for(server: LiveServer, wanted, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        for path in sorted(server.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime,
                           reverse=True):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            if wanted(message):
                return message
        if time.monotonic() > deadline:
            raise AssertionError("the message did not arrive")
        time.sleep(0.2)
