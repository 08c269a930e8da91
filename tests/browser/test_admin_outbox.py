"""The outbox viewer in a real browser against an instance served as ``make run`` serves it
(file transport): the demo owner signs in with the password ``newsletter admin demo``
printed, sends a test of a draft, and reads that message in the outbox — its HTML, its text
and its headers. Photographed at 375 and 1280 px (``test-artifacts/browser/admin-2*.png``)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, LiveServer, serve_instance
from tests.browser.test_admin_journey import TOPIC_NAME, _screenshots, _sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def file_server(tmp_path_factory) -> Iterator[tuple[LiveServer, str]]:
    with serve_instance(tmp_path_factory.mktemp("outbox")) as server:
        printed = server.newsletter("admin", "demo")
        yield server, re.search(r"with password (\S+)", printed)[1]


@pytest.fixture
def owner_page(chromium, file_server) -> Iterator[Page]:
    server, password = file_server
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 800},
                                   base_url=server.url)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        page = context.new_page()
        _sign_in(page, "owner@example.com", password)
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        yield page
    finally:
        context.close()


def test_a_test_send_is_read_in_the_outbox_with_its_html_text_and_headers(owner_page,
                                                                          file_server):
    server, _ = file_server
    page = owner_page
    page.goto("/admin/outbox")
    expect(page.get_by_role("heading", name="Outbox")).to_be_visible()
    before = len(list(server.outbox.glob("*.eml")))

    page.get_by_role("link", name="Write", exact=True).click()
    page.get_by_label("Subject").fill("A look at the outbox")
    page.get_by_label("Body in Markdown").fill("Seen **only** on this machine.")
    page.get_by_label(TOPIC_NAME).check()
    page.get_by_role("button", name="Save draft").click()
    page.get_by_label("Send a test to").fill("proof@news.example")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_contain_text("proof@news.example")
    assert len(list(server.outbox.glob("*.eml"))) == before + 1

    page.goto("/admin/outbox")
    row = page.get_by_role("row").filter(has_text="[Test] A look at the outbox")
    expect(row).to_contain_text("proof@news.example")
    _screenshots(page, "22-outbox")
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name="[Test] A look at the outbox")).to_be_visible()
    html = page.frame_locator("iframe[title=\"The message's HTML\"]")
    expect(html.get_by_text("Seen only on this machine.", exact=True)).to_be_visible()
    expect(page.locator("pre.text-part")).to_contain_text("on this machine.")
    headers = page.locator("dl.headers")
    expect(headers.locator("dt", has_text=re.compile("^To$"))).to_have_count(1)
    expect(headers).to_contain_text("proof@news.example")
    _screenshots(page, "23-outbox-message")


def test_an_editor_reads_account_mail_with_its_sign_in_link_withheld(chromium, file_server):
    """Issue 26, item 8, as an editor sees it: the confirmation a visitor asked for is in
    the outbox, its link replaced by ``…/confirm/withheld`` and a note saying why."""
    import subprocess
    import sys

    from tests.browser.conftest import ROOT

    server, _ = file_server
    editor, password = "editor.outbox@news.example", "an editor's long passphrase"
    made = subprocess.run([sys.executable, "-m", "newsletter.cli", "admin", "create", editor,
                           "--role", "editor"], env=server.env, cwd=ROOT,
                          input=password + "\n", capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 800},
                                   base_url=server.url)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto("/subscribe")
        page.get_by_label("Email").fill("visitor.outbox@example.com")
        page.locator('input[name="topic"]').first.check()
        page.get_by_role("button", name=re.compile("Subscribe")).click()
        expect(page.get_by_role("heading", name=re.compile("inbox", re.I))).to_be_visible()
        _sign_in(page, editor, password)
        row = page.get_by_role("row").filter(has_text="visitor.outbox@example.com")
        for _ in range(50):  # the web process sends account mail within its next turn (2 s)
            page.goto("/admin/outbox")
            if row.count():
                break
            page.wait_for_timeout(200)
        expect(row).to_have_count(1)
        row.get_by_role("link").click()
        expect(page.get_by_role("note")).to_contain_text("only owners see them")
        expect(page.locator("pre.text-part")).to_contain_text("/confirm/withheld")
        _screenshots(page, "24-outbox-link-withheld")
    finally:
        context.close()
