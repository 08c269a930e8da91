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
    viewport = page.viewport_size
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
    page.set_viewport_size(viewport)  # as the reader had it
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
        page: Page, live_server: LiveServer, tmp_path):
    problems: list[str] = []
    page.set_viewport_size({"width": 375, "height": 740})  # the reader is on a phone
    page.goto("/subscribe")
    page.get_by_label("Email address").fill(READER)
    page.get_by_label("First name").fill("Pat")
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
    assert "Welcome to Modelwire, Pat" in welcome.get_body(("html",)).get_content()

    # A new address (its confirmation goes to it) and a sign-in link.
    asked = time.time() - 1
    page.get_by_label("Change email address").fill("pages.new@example.com")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator("#saved")).to_contain_text("your address")
    email_change = _newest_message(live_server.outbox, after=asked, to="pages.new@example.com")
    page.goto(re.findall(re.escape(live_server.url) + r"/email-change/[^\s<>\"]+",
                         email_change.get_body(("plain",)).get_content())[0])
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your new address")
    problems += check(page, "email-change")
    page.goto("/preferences")
    # A name with a control character (typed through a paste, say): refused, with the reason.
    page.evaluate("document.getElementById('first_name').value = 'Pat\\u0007'")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    problems += check(page, "preferences-error")
    page.goto("/preferences/link")
    page.get_by_label("Email address").fill(READER)
    page.get_by_role("button", name=re.compile("link")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    problems += check(page, "link-sent")
    page.goto("/confirm/not-a-real-token")
    problems += check(page, "link-problem")
    manage_link = _newest_message(live_server.outbox, after=asked, to=READER)
    assert manage_link["Subject"] == "Your Modelwire subscription"

    # A special edition, sent as an editor sends one from the command line.
    body = tmp_path / "edition.md"
    body.write_text("## What happened\n\nRules for frontier models, **binding** from March."
                    "\n\n## What to watch\n\n- Audits\n- Open weights\n")
    edition_id = live_server.newsletter(
        "edition", "create", "--subject", "Frontier rules arrive", "--markdown", str(body),
        "--topics", "ai-policy-and-safety,models-and-research").strip()
    live_server.newsletter("send", edition_id, "--quiet")
    special = _wait_for(live_server, lambda m: m["To"] == READER
                        and m["Subject"] == "Frontier rules arrive")
    assert "Hello Pat," in special.get_body(("plain",)).get_content()
    # Its web version ("view in browser"), and the topic's list of past editions.
    page.goto(re.findall(re.escape(live_server.url) + r"/editions/[^\s<>\"]+",
                         special.get_body(("plain",)).get_content())[0])
    expect(page.get_by_role("heading", level=1)).to_have_text("Frontier rules arrive")
    problems += check(page, "edition-web")
    page.goto("/topics/models-and-research/editions")
    problems += check(page, "topic-editions")

    # A digest now, and the emails of each kind, opened as a mail client shows them.
    live_server.newsletter("digest", "--now", "--send")
    digest = _wait_for(live_server, lambda m: m["To"] == READER and m["List-Unsubscribe"])
    unsubscribe = digest["List-Unsubscribe"].strip().strip("<>")
    for kind, message in (("email-confirm", confirmation), ("email-welcome", welcome),
                          ("email-digest", digest), ("email-special", special),
                          ("email-address-change", email_change),
                          ("email-sign-in-link", manage_link),
                          ("email-payment-failed", _payment_failed_email())):
        page.goto("about:blank")  # a document of its own: the site's CSP would strip styles
        page.set_content(message.get_body(("html",)).get_content())
        problems += check(page, kind)

    page.goto(unsubscribe)
    problems += check(page, "unsubscribe")
    page.get_by_role("button", name="Leave Models and research").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You left Models and research")
    problems += check(page, "left-a-topic")
    page.get_by_role("button", name="Undo: follow Models and research again").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Models and research is back")
    page.goto(unsubscribe)
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


def _payment_failed_email():
    """The failed-payment notice, built as the worker builds it (it needs Stripe to happen
    for real, so it is made here rather than by the served instance)."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from newsletter import create_app
    from newsletter.wiring import services

    app = create_app({"TESTING": True, "SECRET_KEY": "browser-" * 6,
                      "DATABASE_URL": "sqlite://", "BASE_URL": "https://news.example"})
    reader = SimpleNamespace(plan_until=datetime.now(UTC) + timedelta(days=7), topics=[],
                             first_name="Ada")
    with app.app_context():
        built = services().readers.mailer.message("payment_failed", 1, READER, reader=reader)
    return BytesParser(policy=policy.default).parsebytes(built.data)
