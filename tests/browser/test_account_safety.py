"""A forwarded digest in a stranger's browser, then the reader moving their own address and
putting it back — in a real browser against the app as ``make run`` serves it (issue 26).
Every page and the email the old address gets are photographed at 375 and 1280 px
(``test-artifacts/browser/reader-3*.png``, ``email-30-*.png``); an admin's list of
sessions too (``admin-31-sessions-*.png``)."""

from __future__ import annotations

import re
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, ROOT, LiveServer

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser"
READER = "reader.safety@example.com"
NEW = "reader.safety@new.example"
STRANGER = "stranger@evil.example"


def _screenshots(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=ARTIFACTS / f"{name}-{width}.png", full_page=True)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name} scrolls sideways at {width} px ({scroll_width} px)"
    page.set_viewport_size({"width": 1280, "height": 800})


def _message(outbox: Path, to: str, subject: str, timeout: float = 15) -> EmailMessage:
    deadline = time.monotonic() + timeout
    while True:
        for path in sorted(outbox.glob("*.eml")) if outbox.is_dir() else []:
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            if message["To"] == to and subject in str(message["Subject"]):
                return message
        if time.monotonic() > deadline:
            raise AssertionError(f"no {subject!r} to {to} in {outbox}")
        time.sleep(0.1)


def _link(message: EmailMessage, prefix: str) -> str:
    text = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://[^/\s]+(" + re.escape(prefix) + r"[^\s]+)", text)
    assert match, text
    return match[1]


def _reader_and_digest_link(server: LiveServer) -> str:
    """A confirmed reader in the instance, and the preference link a digest of theirs holds."""
    from newsletter import create_app
    from newsletter.db import db
    from newsletter.wiring import reader_services
    from tests.factories_readers import make_reader

    app = create_app({"DEBUG": True, "INSTANCE_DIR": str(server.instance),
                      "BASE_URL": server.url})
    with app.app_context():
        from newsletter.content.models import Topic

        slug = db.session.scalars(db.select(Topic.slug).where(Topic.premium.is_(False))).first()
        reader = make_reader(READER, topics=(slug,))
        url = reader_services().mailer.links.manage(reader.id, in_list_mail=True)
        db.engine.dispose()
    return urlsplit(url).path


@pytest.fixture
def stranger(chromium, live_server):
    context = chromium.new_context(locale="en-US", viewport={"width": 1280, "height": 800},
                                   base_url=live_server.url)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_forwarded_digest_then_the_reader_moves_and_takes_back_the_address(
        page: Page, stranger: Page, live_server: LiveServer):
    outbox = live_server.outbox
    digest_link = _reader_and_digest_link(live_server)

    # A stranger with a forwarded digest: the preference centre, and no further.
    stranger.goto(digest_link)
    expect(stranger.get_by_text(f"Signed in as {READER}")).to_be_visible()
    expect(stranger.get_by_text("First we will email a link to")).to_be_visible()
    stranger.get_by_label("Change email address").fill(STRANGER)
    stranger.get_by_role("button", name="Save preferences").click()
    expect(stranger.get_by_text("Check your inbox to change your address")).to_be_visible()
    _screenshots(stranger, "reader-30-address-needs-own-inbox")
    expect(stranger.get_by_text(f"Signed in as {READER}")).to_be_visible()
    stranger.get_by_role("link", name="Download my data (JSON)").click()
    expect(stranger.get_by_role("heading", name="Check your inbox")).to_be_visible()
    _screenshots(stranger, "reader-31-fresh-link")

    # The reader, from the link that came to their own inbox, moves the address.
    own_link = _link(_message(outbox, READER, "subscription"), "/manage/")
    page.goto(own_link)
    page.get_by_label("Change email address").fill(NEW)
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("We sent a confirmation to the new address")).to_be_visible()
    page.goto(_link(_message(outbox, NEW, "Confirm your new address"), "/email-change/"))
    page.get_by_role("button", name="Use this address").click()
    expect(page.get_by_text(f"Signed in as {NEW}")).to_be_visible()

    # The address left is told; its email is photographed as a client would show it.
    notice = _message(outbox, READER, "moved to another address")
    html = notice.get_body(("html",)).get_content()
    assert NEW in html
    mail_view = page.context.new_page()  # blank: the site's CSP would block inline styles
    mail_view.set_content(html, wait_until="load")
    _screenshots(mail_view, "email-30-address-changed")
    mail_view.close()

    # Undo, from the old inbox: the address comes back, the other session ends.
    page.goto(_link(notice, "/email-change/undo/"))
    expect(page.get_by_role("heading", name="Keep your old address")).to_be_visible()
    _screenshots(page, "reader-32-undo")
    page.get_by_role("button", name="Yes, put my address back").click()
    expect(page.get_by_text(f"Your address is {READER} again")).to_be_visible()
    _screenshots(page, "reader-33-address-back")
    expect(page.get_by_text(f"Signed in as {READER}")).to_be_visible()
