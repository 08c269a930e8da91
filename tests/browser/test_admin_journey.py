"""An editor's day in a real browser against the app served as ``make run`` serves it, but
sending through a real local SMTP server: sign in, write a special edition for one topic,
preview it, send a test, send it, pause and resume it and watch progress reach 100 %; a
viewer who cannot send; an account locked after five wrong passwords. Every admin page is
photographed at 375 and 1280 px (``test-artifacts/browser/admin-*.png``)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, ROOT, LiveServer, serve_instance
from tests.support.smtp import SMTPTestServer

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser"
TOPIC = "ai-policy-and-safety"
TOPIC_NAME = "AI policy and safety"
EXTRA_READERS = 240
VIEWER = "viewer@news.example"
VIEWER_PASSWORD = "read-only lantern orchard"  # noqa: S105
SMTP_DELAY = 0.02  # seconds per message: the edition takes a few seconds, so it can pause


@pytest.fixture(scope="module")
def smtp() -> Iterator[SMTPTestServer]:
    server = SMTPTestServer()

    def slow(received):
        time.sleep(SMTP_DELAY)
        return None

    server.reply = slow
    with server:
        yield server


def _add_readers(server: LiveServer, count: int) -> None:
    """Confirmed readers of TOPIC, written into the instance's database in this process."""
    from newsletter import create_app
    from newsletter.db import db
    from tests.factories_readers import make_reader

    app = create_app({"DEBUG": True, "INSTANCE_DIR": str(server.instance),
                      "BASE_URL": server.url})
    with app.app_context():
        for n in range(count):
            make_reader(f"reader{n:04d}@example.com", topics=(TOPIC,))
        db.engine.dispose()


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory, smtp) -> Iterator[tuple[LiveServer, str]]:
    """The instance, its demo owner's password, a viewer, and EXTRA_READERS more readers."""
    # Every test here signs in from 127.0.0.1: more than the default per-IP limit allows in
    # a minute (the limit itself is tested in tests/integration/test_admin_accounts.py).
    with serve_instance(tmp_path_factory.mktemp("admin"), NEWSLETTER_MAIL_TRANSPORT="smtp",
                        NEWSLETTER_SMTP_URL=smtp.url,
                        NEWSLETTER_ADMIN_LOGIN_LIMIT_PER_IP="1000/minute") as server:
        printed = server.newsletter("admin", "demo")
        password = re.search(r"with password (\S+)", printed)[1]
        created = subprocess.run(
            [sys.executable, "-m", "newsletter.cli", "admin", "create", VIEWER, "--role",
             "viewer"], env=server.env, cwd=ROOT, input=VIEWER_PASSWORD + "\n",
            capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        _add_readers(server, EXTRA_READERS)
        yield server, password


@pytest.fixture
def admin_page(chromium, admin_server) -> Iterator[Page]:
    server, _ = admin_server
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 800},
                                   base_url=server.url, timezone_id="Europe/Paris")
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _screenshots(page: Page, name: str) -> None:
    """Full-page screenshots at phone and desktop widths; neither may scroll sideways."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        # The whole page inside the viewport: Chromium leaves sandboxed frames (the email
        # previews) blank in a full-page shot when they start below the fold.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": width, "height": min(max(height, 800), 6000)})
        page.screenshot(path=ARTIFACTS / f"admin-{name}-{width}.png", full_page=True)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name} scrolls sideways at {width} px ({scroll_width} px)"
    page.set_viewport_size({"width": 1280, "height": 800})


def _sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _percent(page: Page) -> int:
    return int(page.locator('[data-field="percent"]').inner_text())


def _sent(page: Page) -> int:
    return int(page.locator('[data-field="sent"]').inner_text().replace(",", ""))


def test_an_editor_writes_previews_tests_sends_pauses_and_resumes(admin_page, admin_server,
                                                                  smtp):
    server, password = admin_server
    page = admin_page
    page.goto("/admin/login")
    _screenshots(page, "01-sign-in")
    _sign_in(page, "owner@example.com", password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    _screenshots(page, "02-dashboard")

    # Write: the recipient count follows the ticked topic without a reload.
    page.get_by_role("link", name="Write", exact=True).click()
    page.get_by_label("Subject").fill("Breaking: a frontier model is released")
    page.get_by_label("Body in Markdown").fill(
        "A short **breaking** note.\n\n<script>alert('x')</script>\n\n"
        "[Read the source](https://news.example/model)")
    page.get_by_label(TOPIC_NAME).check()
    count = page.locator("#recipient-count")
    expect(count).to_have_text(re.compile(r"^\d[\d,]*$"))
    recipients = int(count.inner_text().replace(",", ""))
    assert recipients >= EXTRA_READERS
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name="Edit draft")).to_be_visible()

    # The previews show the edition as readers will see it, and no script survived.
    desktop = page.frame_locator("iframe[title='Desktop preview']")
    expect(desktop.get_by_text("A short breaking note.", exact=True)).to_be_visible()
    assert "<script" not in page.frame_locator("iframe[title='Mobile preview']").locator(
        "body").inner_html()
    _screenshots(page, "03-composer")
    text_url = page.get_by_role("link", name="Text version").get_attribute("href")
    text_version = page.request.get(text_url).text()
    assert "breaking" in text_version and "<script" not in text_version

    # A test goes to one address only, marked as a test.
    before = len(smtp.messages)
    page.get_by_label("Send a test to").fill("proof@news.example")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_contain_text("proof@news.example")
    assert len(smtp.messages) == before + 1
    test_message = smtp.messages[-1]
    assert test_message.rcpt_tos == ["proof@news.example"]
    assert test_message.message["Subject"].startswith("[Test] Breaking")

    # The confirmation states the number; sending starts at once.
    page.get_by_role("link", name="Send or schedule…").click()
    expect(page.locator("#confirm-count")).to_have_text(f"{recipients:,}")
    _screenshots(page, "04-confirm-send")
    page.get_by_role("button", name=re.compile(r"^Send to ")).click()
    expect(page.get_by_role("heading", name="Progress")).to_be_visible()

    # Pause while it sends: the count stops moving short of everyone.
    pause = page.get_by_role("button", name="Pause")
    deadline = time.monotonic() + 10
    while not pause.is_visible() and time.monotonic() < deadline:
        page.reload()
    # The figures move by themselves; pause once the first messages are out.
    expect(page.locator('[data-field="sent"]')).not_to_have_text("0")
    pause.click()
    expect(page.locator("#edition-status")).to_contain_text("paused")
    time.sleep(2.5)  # messages in flight finish; the sender notices the pause within 1 s
    page.reload()
    paused_at = _sent(page)
    time.sleep(1.5)
    page.reload()
    assert 0 < _sent(page) == paused_at < recipients
    _screenshots(page, "05-edition-paused")

    # Resume; the page updates by itself until everyone has it.
    page.get_by_role("button", name="Resume").click()
    expect(page.locator('[data-field="percent"]')).to_have_text("100", timeout=60_000)
    assert _sent(page) == recipients
    _screenshots(page, "06-edition-sent")
    delivered = [m for m in smtp.messages if m.message["Subject"] ==
                 "Breaking: a frontier model is released"]
    addresses = [m.rcpt_tos[0] for m in delivered]
    assert len(addresses) == len(set(addresses)) == recipients  # everyone once, nobody twice

    # Every other page, photographed.
    for name, path in (("07-editions", "/admin/editions"), ("08-content", "/admin/content"),
                       ("09-topics", "/admin/topics"), ("10-accounts", "/admin/accounts"),
                       ("11-audit-log", "/admin/audit"), ("12-account", "/admin/account"),
                       ("15-settings", "/admin/settings"), ("16b-paid", "/admin/billing")):
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        _screenshots(page, name)
    page.goto("/admin/content")
    page.locator("table tbody tr a").first.click()
    expect(page.get_by_label("Title", exact=True)).to_be_visible()
    _screenshots(page, "08b-synthesis-edit")
    page.goto("/admin/editions")
    digest_days = page.locator("a[href*='/admin/editions/digests/']")
    if digest_days.count():
        digest_days.first.click()
    else:  # no digest has gone out on this instance yet: today's page says so
        page.goto(f"/admin/editions/digests/{time.strftime('%Y-%m-%d', time.gmtime())}")
    expect(page.locator("h1")).to_contain_text("Digest")
    _screenshots(page, "07b-digest-day")
    page.goto("/admin/audit")
    expect(page.get_by_role("main")).to_contain_text("paused edition")


IMPORTED = 10_000


def _import_file(path) -> dict[int, str]:
    """A CSV of IMPORTED good lines with broken ones among them, written to ``path``; the
    broken lines' numbers and the start of what the report must say about each."""
    lines = ["Email address,Name,Interests"]
    broken: dict[int, str] = {}
    for i in range(IMPORTED):
        lines.append(f"imported{i:05d}@example.org,Reader {i},models-and-research")
        if i % 2500 == 7:
            lines.append(f"nobody{i}@,Nobody,models-and-research")
            broken[len(lines)] = "invalid address"
        if i % 2500 == 8:
            lines.append(f"short{i}@example.org")
            broken[len(lines)] = "has 1 field; the first line has 3"
    lines.append("imported00003@example.org,Again,models-and-research")
    broken[len(lines)] = "duplicate of line 5"
    lines.append("=HYPERLINK(\"http://evil.example\"),Formula,models-and-research")
    broken[len(lines)] = "invalid address"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return broken


def test_an_owner_imports_ten_thousand_readers_and_finds_suppresses_and_exports_them(
        admin_page, admin_server, tmp_path):
    server, password = admin_server
    page = admin_page
    _sign_in(page, "owner@example.com", password)
    page.get_by_role("link", name="Readers", exact=True).click()
    expect(page.get_by_role("heading", name="Readers")).to_be_visible()
    page.get_by_label("Address contains").fill("reader0007")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("main")).to_contain_text("1 reader match")
    _screenshots(page, "16-readers")
    page.get_by_role("link", name="reader0007@example.com").click()
    expect(page.get_by_role("heading", name="Consent history")).to_be_visible()
    expect(page.get_by_role("heading", name="Deliveries")).to_be_visible()
    page.get_by_label("Why suppress this address?").fill("Asked us by phone to stop")
    page.get_by_role("button", name="Suppress").click()
    expect(page.get_by_role("main")).to_contain_text("Suppressed: no list mail goes")
    _screenshots(page, "17-reader")
    page.goto("/admin/readers/suppressions")
    expect(page.get_by_role("main")).to_contain_text("reader0007@example.com")
    _screenshots(page, "18-suppression-list")

    broken = _import_file(tmp_path / "conference.csv")
    page.goto("/admin/readers/import")
    _screenshots(page, "19-import-upload")
    page.get_by_label("CSV file").set_input_files(tmp_path / "conference.csv")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="2. Say which column is which")).to_be_visible()
    lines = IMPORTED + len(broken)
    expect(page.get_by_role("main")).to_contain_text(f"{lines:,} lines of readers")
    page.get_by_label("Topics (slugs or names").select_option(label="3. Interests")
    # The consent source is required: the browser stops an empty one, the server too.
    page.get_by_role("button", name=f"Import {lines:,} lines").click()
    expect(page.get_by_role("heading", name="2. Say which column is which")).to_be_visible()
    page.get_by_label("Where and how did these people agree").fill(
        "Signup sheet at the 2026 conference")
    _screenshots(page, "20-import-mapping")
    page.get_by_role("button", name=f"Import {lines:,} lines").click()
    # The worker imports it; the page follows without a reload.
    expect(page.get_by_role("heading", name="Report")).to_be_visible(timeout=120_000)
    expect(page.locator('[data-field="added"]')).to_have_text(f"{IMPORTED:,}")
    expect(page.locator('[data-field="skipped"]')).to_have_text(str(len(broken)))
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(len(broken))
    for line, reason in broken.items():
        row = rows.filter(has=page.locator("td", has_text=re.compile(rf"^{line:,}$")))
        expect(row).to_contain_text(reason)
    _screenshots(page, "21-import-report")

    page.goto("/admin/readers?q=imported0000")
    expect(page.get_by_role("main")).to_contain_text("10 readers match")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export these as CSV").click()
    exported = download.value.path().read_text().splitlines()
    assert len(exported) == 11 and exported[0].startswith("email,")
    assert all("imported0000" in line for line in exported[1:])


def test_a_viewer_sees_the_edition_but_cannot_send_or_pause(admin_page, admin_server):
    page = admin_page
    _sign_in(page, VIEWER, VIEWER_PASSWORD)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("link", name="Write", exact=True)).to_have_count(0)
    page.goto("/admin/editions")
    page.get_by_role("link", name="Breaking: a frontier model is released").click()
    expect(page.get_by_role("heading", name="Progress")).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    # Forcing the request from the page does not help: the server refuses the role.
    status = page.evaluate("""async () => {
        const r = await fetch('/admin/editions/new');
        return r.status; }""")
    assert status == 403
    page.goto("/admin/editions/new")
    expect(page.locator("body")).to_contain_text("may not")
    _screenshots(page, "13-viewer-refused")


def test_five_wrong_passwords_lock_the_account(admin_page):
    page = admin_page
    for attempt in range(5):
        _sign_in(page, VIEWER, f"not the password {attempt}")
    expect(page.get_by_role("alert")).to_contain_text("Try again in 15 minutes")
    _sign_in(page, VIEWER, VIEWER_PASSWORD)  # the right password waits for the lock too
    expect(page.get_by_role("alert")).to_contain_text("Try again in 15 minutes")
    _screenshots(page, "14-locked")


def test_the_account_page_lists_the_browsers_and_signs_one_out(chromium, admin_page,
                                                              admin_server):
    server, password = admin_server
    other = chromium.new_context(base_url=server.url, user_agent=(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"))
    try:
        phone = other.new_page()
        _sign_in(phone, "owner@example.com", password)
        expect(phone).to_have_url(re.compile(r"/admin/?$"))
        page = admin_page
        _sign_in(page, "owner@example.com", password)
        page.goto("/admin/account")
        rows = page.locator("table.sessions tbody tr")
        expect(rows.filter(has_text="Safari on iPhone")).to_have_count(1)
        expect(rows.filter(has_text="this browser")).to_have_count(1)
        _screenshots(page, "31-sessions")
        rows.filter(has_text="Safari on iPhone").get_by_role("button", name="Sign out").click()
        expect(page.get_by_text("That browser is signed out.")).to_be_visible()
        phone.goto("/admin/settings")
        expect(phone).to_have_url(re.compile(r"/admin/login"))
    finally:
        other.close()


def test_an_owner_creates_a_token_with_the_least_scope_and_sees_its_secret_once(admin_page,
                                                                               admin_server):
    _, password = admin_server
    page = admin_page
    _sign_in(page, "owner@example.com", password)
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens", exact=True)).to_be_visible()
    page.get_by_role("textbox", name="Name").fill("cms")
    # Only ingest is ticked when nobody chose.
    expect(page.locator('input[name="scope"]:checked')).to_have_count(1)
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_label("Secret").input_value()
    assert secret.startswith("nl_") and len(secret) > 40
    _screenshots(page, "32-token-created")
    page.goto("/admin/tokens")
    assert secret not in page.content()  # shown once
    expect(page.locator("table tbody tr", has_text="cms")).to_contain_text("syntheses:write")
