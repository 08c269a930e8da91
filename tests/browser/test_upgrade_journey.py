"""The paid tier in a real browser: a reader meets a premium teaser, upgrades, pays on
(a stand-in for) Stripe Checkout, comes back to the success page with a signed webhook
already in, and reads the whole synthesis.

The app is served as ``make run`` serves it, pointed at a real local Stripe-compatible
server (localstripe) through the test front (``tests/support/stripe.py``), which stands in
for Checkout — the one part of Stripe that cannot run here — and sends the signed
``checkout.session.completed`` to the app over HTTP.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, serve_instance
from tests.browser.test_reader_journey import _newest_message, _screenshots
from tests.support import stripe as fake

pytestmark = pytest.mark.browser

READER = "upgrade.browser@example.com"
PREMIUM_STORY = {
    "external_id": "browser-premium-1",
    "title": "Briefing: the compute bill for frontier training, line by line",
    "summary": "A public summary that everyone may read.",
    "context": "Context for paying readers only.",
    "analysis": "The analyst take for paying readers only.",
    "watch": "What to watch, for paying readers.",
    "byline": "Modelwire analysts",
    "source_name": "Example Source",
    "source_url": "https://example.com/compute-bill",
    "topics": ["analyst-briefings"],
    "status": "published",
}


@pytest.fixture(scope="module")
def paid_server(tmp_path_factory, stripe_server):
    stripe_server.reset()
    tmp = tmp_path_factory.mktemp("paid")
    settings = {f"NEWSLETTER_{key}": (",".join(value) if isinstance(value, list) else value)
                for key, value in fake.settings(stripe_server).items()}
    with serve_instance(tmp, **settings) as server:
        stripe_server.webhook_url = f"{server.url}/hooks/stripe"
        story = tmp / "premium.json"
        story.write_text(json.dumps([PREMIUM_STORY]))
        server.newsletter("import", str(story))
        try:
            yield server
        finally:
            stripe_server.webhook_url = None


@pytest.fixture
def reader_page(chromium, paid_server):
    context = chromium.new_context(timezone_id="Europe/Paris", locale="en-GB",
                                   viewport={"width": 1280, "height": 800},
                                   base_url=paid_server.url)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _subscribe_and_confirm(page: Page, server) -> None:
    page.goto("/subscribe")
    page.get_by_label("Email address").fill(READER)
    page.locator("label.check", has_text="AI policy and safety").locator("input").check()
    sent_after = time.time() - 1
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    message = _newest_message(server.outbox, after=sent_after, to=READER)
    text = message.get_body(preferencelist=("plain",)).get_content()
    page.goto(re.findall(re.escape(server.url) + r"/confirm/[^\s<>\"]+", text)[0])
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("status").first).to_contain_text("You are subscribed.")


def test_a_reader_upgrades_from_a_teaser_and_reads_the_whole_story(
        reader_page: Page, paid_server, stripe_server):
    page = reader_page
    _subscribe_and_confirm(page, paid_server)

    # The preference centre says Free, and shows the premium topic locked.
    expect(page.locator(".plan-box")).to_contain_text("Free")
    expect(page.locator(".topic-row--locked")).to_contain_text("Analyst briefings")
    _screenshots(page, "paid-01-preferences-free")

    # A premium synthesis: the summary, then a teaser instead of the analysis.
    page.goto("/topics/analyst-briefings")
    page.get_by_role("link", name=PREMIUM_STORY["title"]).click()
    story_url = page.url
    expect(page.get_by_role("heading", level=1)).to_contain_text("compute bill")
    expect(page.locator("main")).to_contain_text("A public summary that everyone may read.")
    expect(page.locator("main")).not_to_contain_text("The analyst take for paying readers only.")
    expect(page.get_by_role("heading", name="The rest is for paying readers")).to_be_visible()
    _screenshots(page, "paid-02-premium-teaser")

    # The plans, priced from Stripe.
    page.get_by_role("link", name="Upgrade to read it").click()
    expect(page).to_have_url(re.compile(r"/upgrade$"))
    expect(page.locator(".plans")).to_contain_text("€8 a month")
    expect(page.locator(".plans")).to_contain_text("€80 a year")
    _screenshots(page, "paid-03-plans")

    # Off to Checkout, with exactly our parameters.
    page.get_by_role("button", name="Upgrade monthly").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Stripe Checkout (test)")
    [session] = stripe_server.calls("POST", "/v1/checkout/sessions")
    assert session.form["mode"] == "subscription"
    assert session.form["line_items[0][price]"] == "price_monthly"
    assert session.form["success_url"] == (
        f"{paid_server.url}/billing/success?session_id={{CHECKOUT_SESSION_ID}}")
    assert session.headers["idempotency-key"]

    # Pay: the signed webhook reaches the app before the browser is sent back.
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome to the paid plan")
    assert stripe_server.delivered == [("checkout.session.completed", 200)]
    _screenshots(page, "paid-04-success")

    # The premium topic can be chosen now; the plan says it renews.
    page.get_by_role("link", name="Choose your topics").click()
    expect(page.locator(".plan-box")).to_contain_text("Paid (monthly)")
    expect(page.locator(".plan-box")).to_contain_text("Renews on")
    page.get_by_role("checkbox", name=re.compile("Analyst briefings")).check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("checkbox", name=re.compile("Analyst briefings"))).to_be_checked()
    expect(page.get_by_role("button", name="Manage billing")).to_be_visible()
    _screenshots(page, "paid-05-preferences-paid")

    # And the whole synthesis.
    page.goto(story_url)
    expect(page.locator("main")).to_contain_text("The analyst take for paying readers only.")

    # Manage billing hands over to Stripe's portal.
    page.goto("/preferences")
    page.get_by_role("button", name="Manage billing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Stripe billing portal (test)")
    [portal] = stripe_server.calls("POST", "/v1/billing_portal/sessions")
    assert portal.form["return_url"] == f"{paid_server.url}/preferences"


def test_a_visitor_sees_the_plans_and_is_asked_to_sign_in(reader_page: Page, paid_server):
    page = reader_page
    page.goto("/upgrade")
    expect(page.get_by_role("button", name="Email me a sign-in link")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Analyst briefings")
    _screenshots(page, "paid-06-plans-visitor")

