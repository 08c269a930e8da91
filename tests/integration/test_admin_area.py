"""The admin area: sign-in, lockout, roles, CSRF, the composer's send path and the pages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from newsletter.accounts.models import Admin, AuditEntry
from newsletter.db import db
from newsletter.delivery.models import Delivery
from newsletter.editions.models import Edition
from tests.factories_readers import make_reader
from tests.support.admins import PASSWORD, csrf, make_admin, sign_in

PAGES = ["/admin/", "/admin/editions", "/admin/editions/new", "/admin/account",
         "/admin/outbox", "/admin/accounts", "/admin/audit", "/admin/charts/readers.svg",
         "/admin/charts/joined-left.svg", "/admin/charts/topics.svg"]


def test_every_page_is_behind_sign_in(client):
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/admin/login" in response.headers["Location"]
    assert client.post("/admin/editions/1/pause").status_code in (400, 401)


def test_an_editor_signs_in_and_sees_every_page(app, client, topics):
    make_admin()
    response = sign_in(client)
    assert response.status_code == 302
    for path in PAGES[:5] + PAGES[7:]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["Cache-Control"] == "no-store" or path.endswith(".svg")
    # Owners' pages are not an editor's.
    assert client.get("/admin/accounts").status_code == 403
    assert client.get("/admin/audit").status_code == 403
    svg = client.get("/admin/charts/readers.svg")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert "kozea.github.io" not in svg.get_data(as_text=True)  # no CDN script


def test_a_wrong_password_says_nothing_about_the_address(client):
    make_admin()
    unknown = sign_in(client, "nobody@news.example")
    wrong = sign_in(client, password="not the password at all")
    assert unknown.status_code == wrong.status_code == 401
    assert "do not match" in unknown.get_data(as_text=True)
    assert "do not match" in wrong.get_data(as_text=True)


def test_five_wrong_passwords_lock_the_account_for_a_while(client):
    make_admin()
    for _ in range(4):
        assert sign_in(client, password="wrong password here").status_code == 401
    locked = sign_in(client, password="wrong password here")
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.get_data(as_text=True)
    # Even the right password does not open it until the lock ends.
    assert sign_in(client).status_code == 429
    from newsletter.accounts.admins import is_locked

    assert is_locked(db.session.scalar(select(Admin)).email)


def test_weak_passwords_are_refused_at_the_command_line(runner):
    result = runner.invoke(args=["admin", "create", "a@news.example", "--role", "owner"],
                           input="password1234\n")
    assert result.exit_code != 0 and "too common" in result.output
    result = runner.invoke(args=["admin", "create", "a@news.example", "--role", "owner"],
                           input="short\n")
    assert result.exit_code != 0 and "at least 12" in result.output
    result = runner.invoke(args=["admin", "create", "a@news.example", "--role", "owner"],
                           input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    admin = db.session.scalar(select(Admin))
    assert admin.role == "owner" and admin.password_hash.startswith("scrypt:")


def test_a_form_without_its_csrf_token_changes_nothing(client, topics):
    make_admin()
    sign_in(client)
    response = client.post("/admin/editions/new", data={"subject": "Hi", "markdown": "Body"})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(Edition.id))) == 0


def test_sign_out_everywhere_ends_every_session(app, client):
    make_admin()
    other = app.test_client()
    sign_in(client)
    sign_in(other)
    assert other.get("/admin/").status_code == 200
    client.post("/admin/logout/everywhere", data={"csrf_token": csrf(client)})
    assert other.get("/admin/").status_code == 302


def _draft(client, **fields) -> int:
    data = {"subject": "Breaking: a model", "preheader": "", "tier": "all",
            "markdown": "Hello **readers**.\n\n<script>alert(1)</script>",
            "csrf_token": csrf(client, "/admin/editions/new"), **fields}
    response = client.post("/admin/editions/new", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    return int(re.search(r"/editions/(\d+)/edit", response.headers["Location"])[1])


def test_compose_preview_and_send_with_the_count_confirmed(app, client, topics):
    make_admin()
    sign_in(client)
    make_reader("ada@example.com", topics=("ai-policy-and-safety",))
    edition_id = _draft(client, topics="ai-policy-and-safety")
    edition = db.session.get(Edition, edition_id)
    assert "<script" not in edition.content["body_html"]  # script in Markdown is removed
    assert edition.content["markdown"].startswith("Hello **readers**")  # source kept
    preview = client.get(f"/admin/editions/{edition_id}/preview.html")
    assert preview.status_code == 200 and "frame-ancestors 'self'" in \
        preview.headers["Content-Security-Policy"]
    assert "readers" in client.get(f"/admin/editions/{edition_id}/preview.txt").get_data(
        as_text=True)
    confirm = client.get(f"/admin/editions/{edition_id}/send").get_data(as_text=True)
    assert "1</strong> reader." in confirm
    token = csrf(client, f"/admin/editions/{edition_id}/send")
    # A reader joins between the confirmation and the click: the new count is shown.
    make_reader("bob@example.com", topics=("ai-policy-and-safety",))
    changed = client.post(f"/admin/editions/{edition_id}/send",
                          data={"expected": "1", "when": "now", "csrf_token": token})
    assert changed.status_code == 409
    assert "now 2 readers" in changed.get_data(as_text=True)
    assert db.session.get(Edition, edition_id).status == "draft"
    sent = client.post(f"/admin/editions/{edition_id}/send",
                       data={"expected": "2", "when": "now", "csrf_token": token})
    assert sent.status_code == 303
    assert db.session.get(Edition, edition_id).status == "sending"
    assert db.session.scalar(select(func.count(Delivery.id))) == 2
    progress = client.get(f"/admin/editions/{edition_id}/progress.json").get_json()
    assert progress["total"] == 2 and progress["open"] == 2
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"signed in", "saved draft", "sent edition"} <= actions


def test_an_edition_nobody_would_get_is_refused_with_the_reason(client, topics):
    make_admin()
    sign_in(client)
    edition_id = _draft(client, topics="ai-policy-and-safety")
    page = client.get(f"/admin/editions/{edition_id}/send")
    assert page.status_code == 400
    assert "Nobody would receive this edition" in page.get_data(as_text=True)
    refused = client.post(f"/admin/editions/{edition_id}/send",
                          data={"expected": "0", "csrf_token": csrf(client)})
    assert refused.status_code == 400
    assert db.session.get(Edition, edition_id).status == "draft"


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
def test_a_viewer_cannot_send_or_stop_anything(app, client, topics, action):
    make_admin("viewer@news.example", "viewer")
    edition = Edition(subject="S", kind="special", status="sending", content={},
                      audience={"topics": [], "tier": "all"})
    db.session.add(edition)
    db.session.commit()
    sign_in(client, "viewer@news.example")
    token = csrf(client)
    response = client.post(f"/admin/editions/{edition.id}/{action}",
                           data={"csrf_token": token, "confirm": "yes"})
    assert response.status_code == 403
    assert db.session.get(Edition, edition.id).status == "sending"
    assert client.get("/admin/editions/new").status_code == 403
    assert client.get(f"/admin/editions/{edition.id}").status_code == 200


def test_pause_and_resume_from_the_edition_page(client, topics):
    make_admin()
    edition = Edition(subject="S", kind="special", status="sending", content={},
                      audience={"topics": [], "tier": "all"})
    db.session.add(edition)
    db.session.commit()
    sign_in(client)
    token = csrf(client)
    assert client.post(f"/admin/editions/{edition.id}/pause",
                       data={"csrf_token": token}).status_code == 303
    assert db.session.get(Edition, edition.id).status == "paused"
    assert client.post(f"/admin/editions/{edition.id}/resume",
                       data={"csrf_token": token}).status_code == 303
    assert db.session.get(Edition, edition.id).status == "sending"


def test_the_outbox_viewer_shows_what_the_file_transport_wrote(app, client, topics):
    make_admin()
    sign_in(client)
    edition_id = _draft(client)
    client.post(f"/admin/editions/{edition_id}/test", data={"to": "me@example.com",
                                                            "csrf_token": csrf(client)})
    listing = client.get("/admin/outbox").get_data(as_text=True)
    assert "[Test] Breaking: a model" in listing
    name = re.search(r"/admin/outbox/([^\"/]+\.eml)", listing)[1]
    message = client.get(f"/admin/outbox/{name}").get_data(as_text=True)
    assert "List-Unsubscribe" in message and "Hello readers" in message
    assert client.get("/admin/outbox/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_a_token_from_an_earlier_session_is_stale(client, topics):
    make_admin()
    sign_in(client)
    old_token = csrf(client, "/admin/editions/new")
    client.post("/admin/logout", data={"csrf_token": old_token})
    sign_in(client)
    response = client.post("/admin/editions/new", data={
        "subject": "Hi", "markdown": "Body", "tier": "all", "csrf_token": old_token})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(Edition.id))) == 0
    fresh = csrf(client, "/admin/editions/new")
    assert fresh != old_token
    assert client.post("/admin/editions/new", data={
        "subject": "Hi", "markdown": "Body", "tier": "all", "csrf_token": fresh}
    ).status_code == 303


def test_owners_see_the_settings_with_secrets_hidden(app, client):
    app.config["SMTP_URL"] = "smtp://mailer:hunter2-relay@relay.example:587"
    app.config["POSTMARK_WEBHOOK_PASSWORD"] = "pm-webhook-secret"
    make_admin("editor@news.example", "editor")
    sign_in(client)
    assert client.get("/admin/settings").status_code == 403
    make_admin("owner@news.example", "owner")
    owner = app.test_client()
    sign_in(owner, "owner@news.example")
    page = owner.get("/admin/settings").get_data(as_text=True)
    assert "NEWSLETTER_PUBLICATION_NAME" in page and "Modelwire" in page
    assert "smtp://mailer:•••@relay.example:587" in page
    for secret in ("hunter2-relay", "pm-webhook-secret", app.config["SECRET_KEY"]):
        assert secret not in page
    assert page.count("set (hidden)") >= 3  # secret key, secret keys, webhook password


def test_an_older_synthesis_picked_for_a_draft_stays_picked(client, topics):
    from tests.factories import make_synthesis

    make_admin()
    sign_in(client)
    oldest = make_synthesis(title="An old synthesis", published_at="2020-01-01T00:00:00+00:00")
    for n in range(41):
        make_synthesis(title=f"Newer synthesis {n}")
    edition_id = _draft(client, markdown="", synthesis=str(oldest.id),
                        topics="ai-policy-and-safety")
    page = client.get(f"/admin/editions/{edition_id}/edit").get_data(as_text=True)
    assert re.search(rf'value="{oldest.id}" checked> An old synthesis', page)


def test_editors_see_account_mail_in_the_outbox_without_its_sign_in_links(app, topics):
    """Account mail's links sign a reader in as from their own inbox (billing, erasure):
    an editor reading the outbox gets them withheld; an owner gets them whole, and the
    withheld link opens nothing (issue 26, item 8)."""
    from tests.factories_readers import make_reader
    from tests.support.readers import csrf_from, send_account_mail

    reader = make_reader("ada@example.com")
    visitor = app.test_client()
    visitor.post("/preferences/link", data={"csrf_token": csrf_from(visitor, "/preferences/link"),
                                            "email": reader.email})
    send_account_mail()
    make_admin("editor@news.example", "editor")
    make_admin("owner@news.example", "owner")
    editor, owner = app.test_client(), app.test_client()
    sign_in(editor, "editor@news.example")
    sign_in(owner, "owner@news.example")
    name = re.search(r"/admin/outbox/([^\"/]+\.eml)",
                     editor.get("/admin/outbox").get_data(as_text=True))[1]

    whole = owner.get(f"/admin/outbox/{name}").get_data(as_text=True)
    link = re.search(r"https?://[^/\s\"<]+(/manage/[A-Za-z0-9_.\-]+)", whole)[1]
    assert not link.endswith("/withheld")
    for page in (editor.get(f"/admin/outbox/{name}"), editor.get(f"/admin/outbox/{name}/html")):
        body = page.get_data(as_text=True)
        assert page.status_code == 200
        assert link not in body and "/manage/withheld" in body
    assert "only owners see them" in editor.get(f"/admin/outbox/{name}").get_data(as_text=True)
    assert link.rsplit("/", 1)[1] not in editor.get(f"/admin/outbox/{name}").get_data(
        as_text=True)
    # The owner's link signs the reader in; the withheld one is only a bad link.
    assert app.test_client().get("/manage/withheld").status_code == 400
    assert app.test_client().get(link).status_code == 303
