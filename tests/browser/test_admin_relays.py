"""The dashboard when the relay is down, in a real browser: an instance served as `make run`
serves it but sending through SMTP to a relay that drops every connection; the sender's
circuit breaker opens and the dashboard says since when and why; once a real relay answers on
that port, it says so and the edition goes out. Photographed at 375 and 1280 px
(``test-artifacts/browser/admin-30-relay-*.png``)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, LiveServer, serve_instance
from tests.browser.test_admin_journey import _screenshots, _sign_in
from tests.support.smtp import Dropper, SMTPTestServer, free_port
from tests.support.worker import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def relay_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def smtp_instance(tmp_path_factory, relay_port) -> Iterator[tuple[LiveServer, str]]:
    with serve_instance(tmp_path_factory.mktemp("relays"), NEWSLETTER_MAIL_TRANSPORT="smtp",
                        NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{relay_port}?connections=2"
                        ) as server:
        printed = server.newsletter("admin", "demo")
        yield server, re.search(r"with password (\S+)", printed)[1]


def test_the_dashboard_shows_a_relay_down_and_back(chromium, smtp_instance, relay_port):
    server, password = smtp_instance
    dropper = Dropper(relay_port)
    relay = None
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 800},
                                   base_url=server.url)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        page = context.new_page()
        _sign_in(page, "owner@example.com", password)
        home = page.request.get("/").text()
        synthesis = re.search(r'href="/syntheses/([^"]+)"', home)[1]
        server.newsletter("edition", "create", "--subject", "Relay test edition",
                          "--synthesis", synthesis, "--send-at", "now")
        wait_for(lambda: dropper.connections >= 3, timeout=30, what="the sender to try")
        page.goto("/admin/")
        row = page.locator("tr", has_text="127.0.0.1:")
        expect(row.get_by_text(re.compile("down since"))).to_be_visible()
        expect(row).to_contain_text("cannot connect")
        _screenshots(page, "30-relay-down")

        dropper.stop()
        dropper = None
        relay = SMTPTestServer(port=relay_port).start()
        wait_for(lambda: len(relay.messages) >= 4, timeout=90,
                 what="the demo readers' copies once the relay answers")
        page.goto("/admin/")
        expect(page.locator("tr", has_text="127.0.0.1:").get_by_text("answering")) \
            .to_be_visible()
        _screenshots(page, "30-relay-back")
        subjects = {m.message["Subject"] for m in relay.messages}
        assert subjects == {"Relay test edition"}
        addresses = [m.rcpt_tos[0] for m in relay.messages]
        assert len(addresses) == len(set(addresses)), "nobody got it twice"
    finally:
        context.close()
        if dropper is not None:
            dropper.stop()
        if relay is not None:
            relay.stop()
