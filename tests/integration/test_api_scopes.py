"""API token scopes: a token does only what its scopes say (ingest syntheses unless told
otherwise), a call outside them is 403 and changes nothing; scopes chosen in
``newsletter api-token create --scope`` and on the owners' API tokens page; tokens that
existed before scopes keep every scope (migration 0014)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.accounts import scopes
from newsletter.accounts.audit import AdminActor
from newsletter.accounts.models import ApiToken, AuditEntry
from newsletter.accounts.scopes import Scope
from newsletter.accounts.service import create_token
from newsletter.db import db, utcnow
from newsletter.delivery.models import Delivery
from newsletter.editions.models import Edition
from newsletter.subscribers.models import ConsentEvent, Reader
from tests.factories import synthesis_payload
from tests.factories_readers import make_reader
from tests.support.admins import csrf, signed_in
from tests.support.editions import audience
from tests.support.readers import outbox_messages

CONSENT = {"obtained_at": "2026-11-01T10:00:00Z", "wording_version": "cms-2026-10"}


def bearer(name: str, *granted: Scope) -> dict[str, str]:
    """The headers of a new token called ``name``: ``granted``, or ingest only."""
    token = create_token(name, granted or scopes.DEFAULT, actor=AdminActor(None, "tests"))
    return {"Authorization": f"Bearer {token.secret}"}


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def entries_by(name: str) -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEntry).where(
        AuditEntry.actor == f"api token {name}")))


def forbidden(response, scope_text: str) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.json == {"error": "forbidden",
                             "message": f"this token lacks the {scope_text} scope"}


@pytest.fixture
def readers(topics):
    return audience(3)


def breaking(**fields) -> dict:
    return {"subject": "Breaking: the rules are out", "markdown": "The rules are out.",
            "topics": ["ai-policy-and-safety"], **fields}


def later() -> str:
    return (utcnow() + timedelta(hours=2)).replace(microsecond=0).isoformat()


# -- an ingest-only token (what `api-token create NAME` gives) ----------------------------

def test_an_ingest_token_ingests_and_lists_syntheses(client, topics):
    headers = bearer("ingest")
    created = client.post("/api/v1/syntheses", json=synthesis_payload(), headers=headers)
    assert created.status_code == 201, created.json
    assert client.get("/api/v1/syntheses?status=all", headers=headers).status_code == 200
    [entry] = entries_by("ingest")
    assert (entry.action, entry.target, entry.admin_id) == (
        "created synthesis", f"synthesis {created.json['synthesis']['id']}", None)


def test_an_ingest_token_cannot_schedule_an_edition_to_every_reader(client, readers, app):
    headers = bearer("ingest")
    for payload in (breaking(send_at=later()), breaking(send_at="now-ish"),
                    breaking(topics=[], send_at=later())):
        forbidden(client.post("/api/v1/editions", json=payload, headers=headers),
                  "editions:draft or editions:send")
    forbidden(client.post("/api/v1/editions", json=breaking(), headers=headers),
              "editions:draft or editions:send")
    assert count(Edition) == 0 and count(Delivery) == 0
    assert entries_by("ingest") == []
    assert outbox_messages(Path(app.config["OUTBOX_DIR"])) == []


def test_an_ingest_token_cannot_read_add_or_erase_readers(client, topics, app):
    reader = make_reader("lin@example.com")
    events = count(ConsentEvent)
    headers = bearer("ingest")
    read = client.get(f"/api/v1/subscribers/{reader.id}", headers=headers)
    forbidden(read, "readers:read")
    assert "lin@example.com" not in read.get_data(as_text=True)
    forbidden(client.delete(f"/api/v1/subscribers/{reader.id}", headers=headers),
              "readers:write")
    forbidden(client.post("/api/v1/subscribers", headers=headers, json={
        "email": "new@example.com", "topics": ["ai-policy-and-safety"]}), "readers:add")
    db.session.expire_all()
    kept = db.session.get(Reader, reader.id)
    assert (kept.email, kept.status) == ("lin@example.com", "active"), "still there"
    assert count(Reader) == 1 and count(ConsentEvent) == events
    assert outbox_messages(Path(app.config["OUTBOX_DIR"])) == [], "no confirmation mail"
    assert entries_by("ingest") == []


def test_ids_of_missing_things_are_403_too_so_scopes_are_no_oracle(client, topics):
    headers = bearer("ingest")
    forbidden(client.get("/api/v1/subscribers/999999", headers=headers), "readers:read")
    forbidden(client.get("/api/v1/editions/999999", headers=headers),
              "editions:draft or editions:send")


# -- each scope allows its own ------------------------------------------------------------

def test_editions_draft_makes_drafts_and_may_not_schedule(client, readers):
    headers = bearer("drafts", Scope.EDITIONS_DRAFT)
    draft = client.post("/api/v1/editions", json=breaking(), headers=headers)
    assert draft.status_code == 201, draft.json
    assert draft.json["status"] == "draft"
    assert client.get(f"/api/v1/editions/{draft.json['id']}", headers=headers).status_code == 200
    # Checked before the payload: a past send_at is refused for the scope, not the date.
    for send_at in (later(), "2001-01-01T00:00:00Z", "now"):
        forbidden(client.post("/api/v1/editions", json=breaking(send_at=send_at),
                              headers=headers), "editions:send")
    assert count(Edition) == 1 and count(Delivery) == 0
    assert [e.action for e in entries_by("drafts")] == ["saved draft"]
    forbidden(client.post("/api/v1/syntheses", json=synthesis_payload(), headers=headers),
              "syntheses:write")


def test_editions_send_schedules_and_is_not_drafts(client, readers):
    headers = bearer("sender", Scope.EDITIONS_SEND)
    when = later()
    scheduled = client.post("/api/v1/editions", json=breaking(send_at=when), headers=headers)
    assert scheduled.status_code == 201, scheduled.json
    assert (scheduled.json["status"], scheduled.json["send_at"]) == ("scheduled", when)
    forbidden(client.post("/api/v1/editions", json=breaking(), headers=headers),
              "editions:draft")
    assert count(Edition) == 1
    [entry] = entries_by("sender")
    assert (entry.action, entry.target) == ("scheduled edition",
                                            f"edition {scheduled.json['id']}")
    assert entry.detail["recipients"] == 3


def test_an_idempotent_replay_is_held_to_the_same_scope(client, readers):
    sender = bearer("sender", Scope.EDITIONS_SEND)
    payload = breaking(send_at=later())
    key = {"Idempotency-Key": "article-1"}
    assert client.post("/api/v1/editions", json=payload,
                       headers={**sender, **key}).status_code == 201
    drafts = bearer("drafts", Scope.EDITIONS_DRAFT)
    forbidden(client.post("/api/v1/editions", json=payload, headers={**drafts, **key}),
              "editions:send")


def test_readers_read_reads_and_may_not_erase(client, topics):
    reader = make_reader("lin@example.com")
    headers = bearer("crm", Scope.READERS_READ)
    got = client.get(f"/api/v1/subscribers/{reader.id}", headers=headers)
    assert (got.status_code, got.json["email"]) == (200, "lin@example.com")
    forbidden(client.delete(f"/api/v1/subscribers/{reader.id}", headers=headers),
              "readers:write")
    assert db.session.get(Reader, reader.id).status == "active"
    assert entries_by("crm") == [], "reading is not audited as a change"


def test_readers_write_erases_in_one_commit_with_its_audit_entry(client, topics):
    reader = make_reader("lin@example.com")
    headers = bearer("privacy-desk", Scope.READERS_WRITE)
    forbidden(client.get(f"/api/v1/subscribers/{reader.id}", headers=headers), "readers:read")
    assert client.delete(f"/api/v1/subscribers/{reader.id}", headers=headers).status_code == 204
    db.session.expire_all()
    assert db.session.get(Reader, reader.id).status == "erased"
    [entry] = entries_by("privacy-desk")
    assert (entry.action, entry.target, entry.ip) == ("erased reader", f"reader {reader.id}",
                                                      "127.0.0.1")
    assert "lin@" not in str(entry.detail) + entry.target


def test_an_erasure_that_fails_leaves_no_audit_entry(client, topics, monkeypatch):
    from newsletter.billing.gateway import BillingUnavailable
    from newsletter.subscribers import privacy

    def stripe_down(*args, **kwargs):
        raise BillingUnavailable("down")

    monkeypatch.setattr(privacy, "erase_reader", stripe_down)
    reader = make_reader("lin@example.com")
    headers = bearer("privacy-desk", Scope.READERS_WRITE)
    assert client.delete(f"/api/v1/subscribers/{reader.id}", headers=headers).status_code == 503
    assert entries_by("privacy-desk") == []


def test_readers_add_adds_and_reads_nothing(client, topics, app):
    existing = make_reader("lin@example.com", topics=("models-and-research",))
    headers = bearer("signup-form", Scope.READERS_ADD)
    created = client.post("/api/v1/subscribers", headers=headers, json={
        "email": "grace@example.com", "topics": ["ai-policy-and-safety"], "consent": CONSENT})
    assert created.status_code == 201, created.json
    assert created.json["subscriber"] == {"id": created.json["subscriber"]["id"]}
    again = client.post("/api/v1/subscribers", headers=headers, json={
        "email": "lin@example.com", "topics": ["ai-policy-and-safety"], "consent": CONSENT})
    assert (again.status_code, again.json) == (
        200, {"outcome": "exists", "subscriber": {"id": existing.id}}), \
        "an address already active shows nothing of the reader"
    pending = client.post("/api/v1/subscribers", headers=headers, json={
        "email": "ivy@example.com", "topics": ["ai-policy-and-safety"]})
    assert pending.status_code == 202
    assert [(e.action, e.target) for e in entries_by("signup-form")] == [
        ("added reader", f"reader {created.json['subscriber']['id']}"),
        ("asked a reader to confirm", "reader")]

    both = bearer("crm", Scope.READERS_ADD, Scope.READERS_READ)
    shown = client.post("/api/v1/subscribers", headers=both, json={
        "email": "lin@example.com", "topics": ["ai-policy-and-safety"], "consent": CONSENT})
    assert shown.json["subscriber"]["email"] == "lin@example.com"


def test_every_api_route_declares_its_scopes(app):
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")]
    assert len(rules) >= 7
    for rule in rules:
        declared = getattr(app.view_functions[rule.endpoint], "required_scopes", None)
        assert declared and declared <= set(Scope), rule.endpoint


def test_a_route_must_name_a_scope():
    from newsletter.web.api.auth import require_token

    with pytest.raises(TypeError):
        require_token()
    with pytest.raises(TypeError):
        require_token("readers:read")


# -- the command line -----------------------------------------------------------------------

def test_create_gives_ingest_only_unless_told(runner, client, topics):
    plain = runner.invoke(args=["api-token", "create", "ingest-bot"])
    assert plain.exit_code == 0, plain.output
    assert "created with scopes syntheses:write" in plain.stderr
    token = db.session.scalar(select(ApiToken).where(ApiToken.name == "ingest-bot"))
    assert token.scopes == ["syntheses:write"]
    headers = {"Authorization": f"Bearer {plain.stdout.strip()}"}
    forbidden(client.post("/api/v1/editions", json=breaking(), headers=headers),
              "editions:draft or editions:send")

    chosen = runner.invoke(args=["api-token", "create", "newsroom", "--scope", "editions:send",
                                 "--scope", "editions:draft", "--scope", "editions:send"])
    assert chosen.exit_code == 0, chosen.output
    db.session.expire_all()
    assert db.session.scalar(select(ApiToken.scopes).where(ApiToken.name == "newsroom")) == [
        "editions:draft", "editions:send"]

    listing = runner.invoke(args=["api-token", "list"]).stdout
    assert re.search(r"^ingest-bot\t.*\tactive\tsyntheses:write\t", listing, re.M)
    assert re.search(r"^newsroom\t.*\tactive\teditions:draft editions:send\t", listing, re.M)


def test_an_unknown_scope_is_refused_and_nothing_is_created(runner, app):
    result = runner.invoke(args=["api-token", "create", "cms", "--scope", "syntheses:write",
                                 "--scope", "readers:delete"])
    assert result.exit_code == 1
    assert "unknown scope 'readers:delete'; the scopes are syntheses:write, " in result.output
    assert count(ApiToken) == 0 and count(AuditEntry) == 0


def test_the_help_lists_each_scope_with_what_it_allows(runner, app):
    text = runner.invoke(args=["api-token", "create", "--help"]).output
    for scope in Scope:
        assert scope.value in text
    assert "Without it: syntheses:write only" in " ".join(text.split())


def test_create_and_revoke_are_audited_as_the_command_line(runner, app):
    assert runner.invoke(args=["api-token", "create", "cms", "--scope",
                               "readers:read"]).exit_code == 0
    assert runner.invoke(args=["api-token", "revoke", "cms"]).exit_code == 0
    again = runner.invoke(args=["api-token", "revoke", "cms"])
    assert again.exit_code == 0 and "revoked already" in again.output
    created, revoked = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))
    assert (created.action, created.target, created.detail) == (
        "created api token", "api token cms", {"scopes": ["readers:read"]})
    assert revoked.action == "revoked api token"
    for entry in (created, revoked):
        assert re.fullmatch(r"command line \(.+@.+\)", entry.actor), entry.actor
        assert entry.admin_id is None


# -- the owners' page ----------------------------------------------------------------------

def test_only_owners_see_and_use_the_tokens_page(app, topics):
    create_token("cms", actor=AdminActor(None, "tests"))
    token_id = db.session.scalar(select(ApiToken.id))
    for role in ("viewer", "editor"):
        other = signed_in(app, role)
        assert "API tokens" not in other.get("/admin/").get_data(as_text=True)
        assert other.get("/admin/tokens").status_code == 403
        form = {"csrf_token": csrf(other), "name": "mole", "scope": list(Scope)}
        assert other.post("/admin/tokens", data=form).status_code == 403
        assert other.post(f"/admin/tokens/{token_id}/revoke",
                          data={"csrf_token": form["csrf_token"]}).status_code == 403
    assert count(ApiToken) == 1
    assert db.session.get(ApiToken, token_id).revoked_at is None
    owner = signed_in(app, "owner")
    assert 'href="/admin/tokens"' in owner.get("/admin/").get_data(as_text=True)


def test_the_page_lists_tokens_with_their_scopes_never_a_secret(app, client, topics):
    secret = create_token("cms", actor=AdminActor(None, "tests")).secret
    create_token("newsroom", [Scope.EDITIONS_SEND], actor=AdminActor(None, "tests"))
    owner = signed_in(app, "owner")
    client.get("/api/v1/syntheses", headers={"Authorization": f"Bearer {secret}"})
    page = owner.get("/admin/tokens").get_data(as_text=True)
    rows = re.findall(r"<tr><td>(cms|newsroom)</td><td><code>(nl_[^<]*)…</code></td>\s*"
                      r"<td>([^<]*)</td>\s*<td>([^<]*)</td><td>([^<]*)</td>\s*<td>([^<]*)</td>",
                      page)
    assert [(r[0], r[2].strip(), r[5]) for r in rows] == [
        ("cms", "syntheses:write", "active"), ("newsroom", "editions:send", "active")]
    assert rows[0][1] == secret[:8] and rows[0][4] != "never" and rows[1][4] == "never"
    assert secret not in page
    # The new-token form has the least ticked.
    ticked = re.findall(r'name="scope" value="([^"]+)" checked', page)
    assert ticked == ["syntheses:write"]
    assert all(f'value="{scope.value}"' in page for scope in Scope)


def test_an_owner_creates_a_token_and_sees_its_secret_once(app, client, readers):
    owner = signed_in(app, "owner")
    response = owner.post("/admin/tokens", data={
        "csrf_token": csrf(owner, "/admin/tokens"), "name": "newsroom",
        "scope": ["editions:draft", "editions:send"]})
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    secret = re.search(r'id="secret" type="text" readonly value="(nl_[^"]+)"', page)[1]
    assert "it is not shown again" in page
    assert response.headers["Cache-Control"] == "no-store"
    token = db.session.scalar(select(ApiToken).where(ApiToken.name == "newsroom"))
    assert token.scopes == ["editions:draft", "editions:send"]
    assert secret not in owner.get("/admin/tokens").get_data(as_text=True), "shown once"

    headers = {"Authorization": f"Bearer {secret}"}
    assert client.post("/api/v1/editions", json=breaking(send_at=later()),
                       headers=headers).status_code == 201
    forbidden(client.get(f"/api/v1/subscribers/{readers[0].id}", headers=headers),
              "readers:read")
    [entry] = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "created api token"))
    assert (entry.actor, entry.target, entry.detail, entry.ip) == (
        "owner@news.example", "api token newsroom",
        {"scopes": ["editions:draft", "editions:send"]}, "127.0.0.1")


@pytest.mark.parametrize("form,problem", [
    ({"name": "cms"}, "a token needs at least one scope"),
    ({"name": "cms", "scope": ["readers:read", "everything"]}, "unknown scope 'everything'"),
    ({"name": "bad name", "scope": ["readers:read"]}, "a token name is 1-100 characters"),
    ({"name": "", "scope": ["readers:read"]}, "a token name is 1-100 characters"),
    ({"name": "x" * 101, "scope": ["readers:read"]}, "a token name is 1-100 characters"),
])
def test_a_bad_form_creates_nothing_and_says_why(app, form, problem):
    owner = signed_in(app, "owner")
    response = owner.post("/admin/tokens", data={"csrf_token": csrf(owner), **form})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert problem in page.replace("&#39;", "'")
    assert "nl_" not in page
    assert count(ApiToken) == 0
    if "readers:read" in form.get("scope", []):
        assert 'value="readers:read" checked' in page, "the choice is kept"


def test_a_taken_name_creates_nothing(app):
    create_token("cms", actor=AdminActor(None, "tests"))
    owner = signed_in(app, "owner")
    response = owner.post("/admin/tokens", data={"csrf_token": csrf(owner), "name": "cms",
                                                 "scope": ["readers:write"]})
    assert response.status_code == 400
    assert count(ApiToken) == 1


def test_revoking_from_the_page(app, client, topics):
    secret = create_token("cms", actor=AdminActor(None, "tests")).secret
    token_id = db.session.scalar(select(ApiToken.id))
    owner = signed_in(app, "owner")
    token = csrf(owner)
    response = owner.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert (response.status_code, response.headers["Location"]) == (303, "/admin/tokens")
    assert client.get("/api/v1/syntheses",
                      headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    page = owner.get("/admin/tokens").get_data(as_text=True)
    assert "Token cms revoked" in page and "revoked 20" in page
    assert f"/admin/tokens/{token_id}/revoke" not in page, "no button for a revoked token"
    assert owner.post(f"/admin/tokens/{token_id}/revoke",
                      data={"csrf_token": token}).status_code == 303
    assert [e.action for e in db.session.scalars(select(AuditEntry).where(
        AuditEntry.actor == "owner@news.example", AuditEntry.action != "signed in"))] == [
        "revoked api token"], "revoking twice is one change"
    assert owner.post("/admin/tokens/99999/revoke", data={"csrf_token": token}
                      ).status_code == 404


def test_head_options_and_no_csrf_change_nothing(app):
    create_token("cms", actor=AdminActor(None, "tests"))
    token_id = db.session.scalar(select(ApiToken.id))
    owner = signed_in(app, "owner")
    form = {"name": "mole", "scope": ["readers:write"]}
    assert owner.head("/admin/tokens", data=form).status_code == 200
    assert owner.open("/admin/tokens", method="OPTIONS", data=form).status_code == 200
    assert owner.head(f"/admin/tokens/{token_id}/revoke").status_code == 405
    assert owner.post("/admin/tokens", data=form).status_code == 400, "no CSRF token"
    assert owner.post(f"/admin/tokens/{token_id}/revoke").status_code == 400
    assert count(ApiToken) == 1
    assert db.session.get(ApiToken, token_id).revoked_at is None


# -- tokens made before scopes ----------------------------------------------------------

def test_the_migration_keeps_existing_tokens_working_with_every_scope(tmp_path):
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    from tests.support.migrations import app_on_an_empty_database

    app = app_on_an_empty_database(tmp_path)
    with app.app_context():
        upgrade(revision="0013")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO api_tokens (name, token_hash, prefix, created_at) "
                              "VALUES ('cms', :h, 'nl_abcde', '2026-01-01 00:00:00')"),
                         {"h": "0" * 64})
        upgrade(revision="0014")
        db.session.remove()
        token = db.session.scalar(select(ApiToken))
        assert token.scopes == [
            "syntheses:write", "editions:draft", "editions:send", "readers:add",
            "readers:read", "readers:write"] == [s.value for s in scopes.ALL]
        [entry] = db.session.scalars(select(AuditEntry))
        assert (entry.actor, entry.action, entry.target) == (
            "migration 0014", "kept every scope", "api token cms")
        db.session.remove()
        downgrade(revision="0013")
        with db.engine.connect() as conn:
            columns = [row[1] for row in conn.execute(text("PRAGMA table_info(api_tokens)"))]
        assert "scopes" not in columns
        db.engine.dispose()
