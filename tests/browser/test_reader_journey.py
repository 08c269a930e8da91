"""A reader's whole journey in a real browser: from a synthesis page to the preference centre
and out again, checking at each step what the person sees (and what arrives by email)."""

from __future__ import annotations

import re
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ROOT, LiveServer

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser"
WIDTHS = (375, 1280)
READER = "reader.browser@example.com"
BROWSER_ZONE = "Asia/Shanghai"  # the context's timezone_id (see conftest)
# Roles whose elements a person operates and which therefore need an accessible name.
CONTROL_ROLES = {"textbox", "searchbox", "checkbox", "radio", "combobox", "listbox",
                 "spinbutton", "slider", "button", "switch", "menuitem"}


def _screenshots(page: Page, name: str) -> None:
    """Full-page screenshots at phone and desktop widths; neither may scroll sideways."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=ARTIFACTS / f"{name}-{width}.png", full_page=True)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name} scrolls sideways at {width} px ({scroll_width} px)"
    page.set_viewport_size({"width": 1280, "height": 800})


def _newest_message(outbox: Path, after: float, timeout: float = 10,
                    to: str = READER) -> EmailMessage:
    """The newest message to ``to`` written after ``after``, waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        files = [f for f in outbox.glob("*.eml") if f.stat().st_mtime >= after] \
            if outbox.is_dir() else []
        messages = [(f.stat().st_mtime_ns, BytesParser(policy=policy.default)
                     .parsebytes(f.read_bytes())) for f in files]
        mine = [(when, m) for when, m in messages if m["To"] == to]
        if mine:
            return max(mine, key=lambda item: item[0])[1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no new message in {outbox} after {timeout} s")
        time.sleep(0.1)


def _unnamed_controls(page: Page, scope_selector: str) -> list[str]:
    """Controls inside ``scope_selector`` whose accessible name, as Chromium computes it for
    screen readers, is empty."""
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        scope = cdp.send("DOM.querySelector", {"nodeId": root, "selector": scope_selector})
        assert scope["nodeId"], f"{scope_selector} is not on the page"
        scope_dom = cdp.send("DOM.describeNode", {"nodeId": scope["nodeId"]})["node"]
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        by_id = {node["nodeId"]: node for node in nodes}
        stack = [node["nodeId"] for node in nodes
                 if node.get("backendDOMNodeId") == scope_dom["backendNodeId"]]
        assert stack, f"{scope_selector} is not in the accessibility tree"
        unnamed = []
        while stack:
            node = by_id.get(stack.pop())
            if node is None:
                continue
            stack.extend(node.get("childIds", []))
            role = node.get("role", {}).get("value")
            if node.get("ignored") or role not in CONTROL_ROLES:
                continue
            if not str(node.get("name", {}).get("value", "")).strip():
                html = cdp.send("DOM.getOuterHTML",
                                {"backendNodeId": node["backendDOMNodeId"]})["outerHTML"]
                unnamed.append(f"{role}: {html[:200]}")
        return unnamed
    finally:
        cdp.detach()


def test_reader_subscribes_confirms_sets_preferences_and_unsubscribes(
        page: Page, live_server: LiveServer):
    # The home page, then the newest synthesis.
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("The AI news that matters")
    first_card = page.locator("article.card").first
    title = first_card.get_by_role("heading").inner_text()
    first_card.get_by_role("link", name=title).click()
    expect(page).to_have_url(re.compile(r"/syntheses/[\w-]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    _screenshots(page, "01-synthesis")

    # The compact form on the synthesis page: its topics come pre-ticked.
    box = page.get_by_role("complementary", name="Get the daily digest")
    expect(box).to_be_visible()
    # text_content, not inner_text: the tags are upper-cased by CSS only.
    page_topics = [t.strip() for t in page.locator(".synthesis__header a.tag").all_text_contents()]
    assert page_topics, "the synthesis page shows no topic"
    offered = [name.strip() for name in box.locator("label.check").all_text_contents()]
    pre_ticked = [name for name in page_topics if name in offered]
    assert pre_ticked, f"none of the page's topics {page_topics} is offered in {offered}"
    for name in offered:
        checkbox = box.get_by_label(name, exact=True)
        if name in pre_ticked:
            expect(checkbox).to_be_checked()
        else:
            expect(checkbox).not_to_be_checked()
    extra = next(name for name in offered if name not in pre_ticked)
    box.get_by_label("Email address").fill(READER)
    box.get_by_label(extra, exact=True).check()
    sent_after = time.time() - 1
    box.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    _screenshots(page, "02-subscribe-answer")

    # The confirmation email, as it landed in the outbox.
    message = _newest_message(live_server.outbox, after=sent_after)
    assert message["To"] == READER
    assert message["Subject"] == "Confirm your subscription to Modelwire"
    text = message.get_body(preferencelist=("plain",)).get_content()
    links = re.findall(re.escape(live_server.url) + r"/confirm/[^\s<>\"]+", text)
    assert links, f"no confirm link to {live_server.url} in the text part:\n{text}"

    # Confirm: a button (not the GET) subscribes and signs in.
    page.goto(links[0])
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
    expect(page.locator("main")).to_contain_text(READER)
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page).to_have_url(re.compile(r"/preferences\?welcome=1$"))
    expect(page.get_by_role("status").first).to_contain_text("You are subscribed.")
    expect(page.locator("main")).to_contain_text(f"Signed in as {READER}")

    # What was chosen on the synthesis page, and the browser's timezone, were kept.
    for name in pre_ticked + [extra]:
        expect(page.get_by_role("checkbox", name=name, exact=True)).to_be_checked()
    timezone = page.get_by_label("Timezone", exact=True)
    expect(timezone).to_have_value(BROWSER_ZONE)
    # The server stored it (not only the page's script choosing a default).
    expect(page.locator("#timezone option[selected]")).to_have_attribute("value", BROWSER_ZONE)
    _screenshots(page, "03-preferences")

    # Change topics, timezone and delivery time, then save.
    dropped = pre_ticked[0]
    added = next(name for name in offered if name not in pre_ticked and name != extra)
    page.get_by_role("checkbox", name=dropped, exact=True).uncheck()
    page.get_by_role("checkbox", name=added, exact=True).check()
    # The timezone list narrows as the reader types a place.
    page.get_by_role("searchbox", name="Search the timezones").fill("new york")
    expect(page.locator('#timezone option[value="Europe/Paris"]')).to_be_hidden()
    timezone.select_option("America/New_York")
    page.get_by_label("Delivery time").select_option("06:30")
    expect(page.locator("#delivery_time option:checked")).to_have_text("6:30 AM")  # en-US
    page.get_by_role("button", name="Save preferences").click()
    saved = page.locator("#saved")
    expect(saved).to_contain_text("Saved: your topics, the delivery time (now 6:30 AM), "
                                  "the timezone (now New York).")
    expect(saved).to_contain_text(f"You left {dropped}.")
    expect(saved.get_by_role("button", name="Undo")).to_be_visible()

    page.goto("/preferences")
    expect(page.get_by_role("checkbox", name=dropped, exact=True)).not_to_be_checked()
    for name in (extra, added):
        expect(page.get_by_role("checkbox", name=name, exact=True)).to_be_checked()
    expect(page.get_by_label("Timezone", exact=True)).to_have_value("America/New_York")
    expect(page.get_by_label("Delivery time")).to_have_value("06:30")
    for name in offered:
        expect(page.get_by_role("button", name=f"Move {name} down")).to_be_visible()
    first = page.locator("[data-topic-order] li").first.locator("label span").first
    expect(page.get_by_role("button", name=f"Move {first.inner_text().strip()} up")
           ).to_be_disabled()
    assert _unnamed_controls(page, "main") == [], "controls without an accessible name"

    # Both streams of list mail are shown, and ticked.
    digest_box = page.get_by_role("checkbox", name="The digest of your topics")
    specials_box = page.get_by_role("checkbox", name=re.compile(r"^Special editions"))
    expect(digest_box).to_be_checked()
    expect(specials_box).to_be_checked()

    # A special edition arrives; its one-click link leaves special editions only.
    body = live_server.instance / "journey-special.md"
    body.write_text("## What happened\n\nA special edition for the journey.\n")
    sent_after = time.time() - 1
    edition_id = live_server.newsletter("edition", "create", "--subject", "Journey special",
                                        "--markdown", str(body)).strip()
    live_server.newsletter("send", edition_id, "--quiet")
    special = _newest_message(live_server.outbox, after=sent_after)
    assert special["Subject"] == "Journey special"
    unsubscribe_url = special["List-Unsubscribe"].strip().strip("<>")
    assert unsubscribe_url.startswith(live_server.url + "/u/")
    page.goto(unsubscribe_url)
    expect(page.get_by_role("button", name="Stop special editions")).to_be_visible()
    expect(page.get_by_role("button", name="Unsubscribe from everything")).to_be_visible()
    _screenshots(page, "04-unsubscribe-a-stream")
    page.get_by_role("button", name="Stop special editions").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You stopped special editions")
    page.goto("/preferences")
    expect(page.get_by_role("checkbox", name="The digest of your topics")).to_be_checked()
    expect(page.get_by_role("checkbox", name=re.compile(r"^Special editions"))
           ).not_to_be_checked()

    # Unsubscribe from everything: the link leads to a page with a button.
    page.get_by_role("link", name="Unsubscribe from everything").click()
    expect(page).to_have_url(re.compile(r"/u/[^/]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe")
    page.get_by_role("button", name="Unsubscribe from everything").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    _screenshots(page, "05-unsubscribed")

    # The preference centre now says so, and offers no preference form.
    page.goto("/preferences")
    expect(page.get_by_role("status")).to_contain_text("You are unsubscribed.")
    expect(page.get_by_role("button", name="Save preferences")).to_have_count(0)


@pytest.mark.parametrize("path", ["/subscribe", "/"], ids=["subscribe-page", "compact-form"])
def test_tab_from_email_reaches_the_first_topic(page: Page, path: str):
    page.goto(path)
    page.get_by_label("Email address").focus()
    page.keyboard.press("Tab")
    first_topic = page.get_by_role("group", name="Topics").get_by_role("checkbox").first
    expect(first_topic).to_be_focused()
    assert _unnamed_controls(page, "main") == [], "controls without an accessible name"
