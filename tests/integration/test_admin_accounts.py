"""Admin accounts and sessions, end to end: readers and admins kept apart by the one
user_loader, sessions bound to their browser and their age, owners' actions refused to
editors (the list read from the roles and the views, not written by hand), owners managing
accounts (each change audited with the client's address), the per-IP sign-in limit, the
lockout ending, changing one's password, and OPTIONS and HEAD on every admin route."""

from __future__ import annotations

import inspect
import io
import itertools
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine
from flask import session
from sqlalchemy import func, select
from werkzeug.routing import AnyConverter, IntegerConverter
from werkzeug.security import generate_password_hash

from newsletter.accounts.audit import AdminActor
from newsletter.accounts.models import Admin, AdminSession, ApiToken, AuditEntry
from newsletter.accounts.roles import GRANTS, Permission, Role
from newsletter.accounts.service import create_token
from newsletter.content.models import Topic
from newsletter.db import db, utcnow
from newsletter.editions.models import Edition
from newsletter.subscribers.models import Reader, Suppression
from tests.factories import make_synthesis
from tests.factories_readers import links, make_reader
from tests.support.admins import PASSWORD, browser, csrf, make_admin, sign_in
from tests.support.readers import csrf_from

NEW_PASSWORD = "a different and longer passphrase"  # noqa: S105
OWNER_IP = "203.0.113.7"


@pytest.fixture
def login_limit() -> str:
    """The per-IP sign-in limit; these tests sign in more often than a person would, so it
    is high except where a test parametrizes it."""
    return "1000/minute"


@pytest.fixture
def app_config(app_config, login_limit):
    app_config["ADMIN_LOGIN_LIMIT_PER_IP"] = login_limit
    return app_config


# -- helpers -------------------------------------------------------------------------------

def signed_in(app, email: str, **kwargs):
    client = browser(app, **kwargs)
    response = sign_in(client, email)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 200
    return client


def goes_to_login(response) -> bool:
    return (response.status_code in (302, 303)
            and urlsplit(response.headers["Location"]).path == "/admin/login")


def locked_out(client) -> bool:
    """The browser is no admin's: the dashboard sends it to the sign-in page."""
    return goes_to_login(client.get("/admin/"))


def admin_named(email: str) -> Admin | None:
    db.session.expire_all()
    return db.session.scalar(select(Admin).where(Admin.email == email))


def audit_entries(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                   .order_by(AuditEntry.id)))


def snapshot() -> dict:
    """Every row of every table."""
    db.session.expire_all()
    state = {}
    for table in db.metadata.sorted_tables:
        state[table.name] = [tuple(row) for row in db.session.execute(
            select(table).order_by(*table.primary_key.columns))]
    return state


def flashed(client) -> str:
    return client.get("/admin/account").get_data(as_text=True)


def reader_signs_in(client, reader: Reader) -> None:
    """Follow the preference-centre link of the reader's email."""
    url = links().manage(reader.id)
    response = client.get(url.split("news.example", 1)[1])
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/preferences")


def reader_shown(client) -> str | None:
    """The address the preference centre says is signed in, if any."""
    html = client.get("/preferences").get_data(as_text=True)
    match = re.search(r"Signed in as <strong>([^<]+)</strong>", html)
    return match[1] if match else None


def admin_with_id(admin_id: int, email: str, role: str = "owner") -> Admin:
    """An admin whose id is ``admin_id`` (to match a reader's)."""
    admin = Admin(id=admin_id, email=email, role=role,
                  password_hash=generate_password_hash(PASSWORD, method="scrypt"))
    db.session.add(admin)
    db.session.commit()
    return admin


def admin_rules(app):
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")]
    assert len(rules) > 20
    return rules


def urls_of(rule, values: dict, every_id: int | None = None) -> list[str]:
    """Every URL of ``rule``: each choice of an ``any(...)`` part, ids from ``every_id``
    when given, the rest from ``values`` (a part with no value fails the test, so a new
    route gets one)."""
    choices = []
    for name, converter in rule._converters.items():
        if isinstance(converter, AnyConverter):
            choices.append([(name, item) for item in sorted(converter.items)])
        elif every_id is not None and isinstance(converter, IntegerConverter):
            choices.append([(name, every_id)])
        else:
            assert name in values, f"no value for <{name}> of {rule.rule}"
            choices.append([(name, values[name])])
    return [rule.build(dict(combo))[1] for combo in itertools.product(*choices)]


# -- 1. readers and admins, one user_loader -------------------------------------------------

def test_a_signed_in_reader_gets_nothing_from_the_admin_area(app, topics):
    reader = make_reader()
    admin_with_id(reader.id, "owner@news.example")  # admin N and reader N both exist
    client = browser(app)
    reader_signs_in(client, reader)
    assert reader_shown(client) == "ada@example.com"
    for rule in admin_rules(app):
        if "GET" not in rule.methods or rule.endpoint in ("admin.login", "admin.login_code"):
            continue
        for url in urls_of(rule, {"name": "x", "day": "2026-01-01"}, every_id=reader.id):
            response = client.get(url)
            if rule.rule.endswith(".json"):
                assert response.status_code == 401, url
            else:
                assert goes_to_login(response), url
            assert b"owner@news.example" not in response.data, url
    # A POST with the reader's own valid CSRF token does not act as an admin either.
    token = csrf_from(client, "/preferences")
    before = snapshot()
    for url, data in [("/admin/accounts", {"email": "mole@news.example", "role": "owner",
                                           "password": NEW_PASSWORD}),
                      ("/admin/topics", {"name": "Taken over", "description": "x"}),
                      (f"/admin/readers/{reader.id}/erase", {"confirm_email": reader.email})]:
        assert client.post(url, data={"csrf_token": token, **data}).status_code == 401, url
    assert snapshot() == before
    assert reader_shown(client) == "ada@example.com"  # and the reader is still signed in


def test_admin_n_and_reader_n_are_never_taken_for_each_other(app, topics):
    from newsletter.accounts import sessions
    from newsletter.web.logins import SESSION_KEY, AdminLogin, load_user
    from newsletter.web.public.reader_sessions import ReaderLogin

    reader = make_reader()
    admin = admin_with_id(reader.id, "owner@news.example")
    n = reader.id

    # In the browser: the admin sees no reader's preferences, the reader no admin page.
    admin_browser = signed_in(app, "owner@news.example")
    assert reader_shown(admin_browser) is None
    assert "Email me a link" in admin_browser.get("/preferences").get_data(as_text=True)
    reader_browser = browser(app)
    reader_signs_in(reader_browser, reader)
    assert locked_out(reader_browser)

    # The loader itself, with a session that has every kind's marks in it.
    with app.test_request_context("/", headers={"User-Agent": "Firefox/128.0 (test)"}):
        session["reader_signed_in_at"] = time.time()
        session["reader_address"] = reader.address_version
        session[SESSION_KEY] = sessions.open_session(admin, sessions.Browser(None, None))
        db.session.commit()
        as_admin = load_user(f"admin:{n}")
        as_reader = load_user(f"reader:{n}")
        assert isinstance(as_admin, AdminLogin) and as_admin.admin.id == n
        assert not isinstance(as_admin, ReaderLogin)
        assert isinstance(as_reader, ReaderLogin) and as_reader.reader.id == n
        assert not isinstance(as_reader, AdminLogin)
        # Ids without their kind, or of the wrong shape, load nobody.
        for user_id in (str(n), f"admin:{n + 1}", f"admin:{n}:1", f"admin:{n}:{n}:0",
                        f"reader:{n}:0",
                        f"Admin:{n}:0", f"reader: {n}", f"admin:{n}:0 ", "admin::0"):
            assert load_user(user_id) is None, user_id


def test_signing_in_as_one_kind_ends_the_other(app, topics):
    reader = make_reader()
    admin_with_id(reader.id, "owner@news.example")
    client = browser(app)

    assert sign_in(client, "owner@news.example").status_code == 302
    assert client.get("/admin/accounts").status_code == 200
    reader_signs_in(client, reader)
    assert reader_shown(client) == "ada@example.com"
    assert locked_out(client)
    assert client.get("/admin/accounts").status_code == 302

    assert sign_in(client, "owner@news.example").status_code == 302
    assert client.get("/admin/accounts").status_code == 200
    assert reader_shown(client) is None


# -- 2. sessions: their browser, their age, their account ----------------------------------

def test_a_copied_session_cookie_works_until_that_browser_signs_out(app):
    """The cookie is the key, whatever browser shows it (the user agent is anyone's to
    copy, so it decides nothing); signing out deletes the session it names."""
    make_admin("owner@news.example", "owner")
    laptop = signed_in(app, "owner@news.example", agent="Firefox/128.0 (the owner's laptop)")
    cookie = laptop.get_cookie("session").value

    thief = browser(app, ip="198.51.100.9", agent="curl/8.5.0")
    thief.set_cookie("session", cookie)
    assert thief.get("/admin/accounts").status_code == 200
    assert laptop.post("/admin/logout", data={"csrf_token": csrf(laptop)}).status_code == 302
    assert locked_out(thief)
    token = csrf(thief, "/admin/login")
    assert thief.post("/admin/accounts", data={
        "csrf_token": token, "email": "mole@news.example", "role": "owner",
        "password": NEW_PASSWORD}).status_code in (400, 401)
    assert admin_named("mole@news.example") is None


def test_a_session_older_than_the_limit_is_refused(app):
    hours = app.config["ADMIN_SESSION_HOURS"]
    make_admin("owner@news.example", "owner")
    client = signed_in(app, "owner@news.example")
    start = time.time()
    with time_machine.travel(start + hours * 3600 - 120, tick=False):
        assert client.get("/admin/").status_code == 200
    with time_machine.travel(start + hours * 3600 + 60, tick=False):
        assert locked_out(client)
        assert client.get("/admin/audit").status_code == 302
        # Signing in again works.
        assert sign_in(client, "owner@news.example").status_code == 302
        assert client.get("/admin/").status_code == 200


def test_disabling_an_admin_ends_their_open_sessions(app):
    make_admin("owner@news.example", "owner")
    editor = make_admin("editor@news.example", "editor")
    owner = signed_in(app, "owner@news.example")
    first = signed_in(app, "editor@news.example")
    second = signed_in(app, "editor@news.example", ip="198.51.100.20", agent="Safari/17")
    token = csrf(first, "/admin/editions/new")

    response = owner.post(f"/admin/accounts/{editor.id}",
                          data={"csrf_token": csrf(owner), "change": "disable"})
    assert response.status_code == 303
    assert locked_out(first) and locked_out(second)
    refused = first.post("/admin/editions/new", data={"csrf_token": token, "subject": "Hi",
                                                      "markdown": "Body", "tier": "all"})
    assert refused.status_code in (400, 401)
    assert db.session.scalar(select(func.count(Edition.id))) == 0
    assert sign_in(browser(app), "editor@news.example").status_code == 401
    # Enabled again, the account signs in afresh; the sessions ended stay ended.
    assert owner.post(f"/admin/accounts/{editor.id}", data={
        "csrf_token": csrf(owner), "change": "enable"}).status_code == 303
    assert locked_out(first) and locked_out(second)
    assert signed_in(app, "editor@news.example").get("/admin/editions/new").status_code == 200


# -- 3. owners' actions, refused to editors -------------------------------------------------

OWNER_ONLY = GRANTS[Role.OWNER] - GRANTS[Role.EDITOR]
_MAY_IN_VIEW = re.compile(r"\bmay\(\s*g\.admin\.role\s*,\s*Permission\.([A-Z_]+)\s*\)")


def permissions_of(view) -> tuple[set[Permission], set[Permission]]:
    """What ``view`` asks for: through ``@requires`` (every method), and inside its body
    (``may(g.admin.role, Permission.X)``, which guards what a POST changes)."""
    whole = set()
    while True:
        names = inspect.getclosurevars(view).nonlocals
        if isinstance(names.get("permission"), Permission) and callable(names.get("view")):
            whole.add(names["permission"])
            view = names["view"]
        else:
            break
    inside = {Permission[name] for name in _MAY_IN_VIEW.findall(inspect.getsource(view))}
    return whole, inside


def owner_only_requests(app) -> list[tuple[str, object]]:
    """(method, rule) of every request only an owner may make, read from the views."""
    found = []
    for rule in admin_rules(app):
        whole, inside = permissions_of(app.view_functions[rule.endpoint])
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if whole & OWNER_ONLY or (method != "GET" and inside & OWNER_ONLY):
                found.append((method, rule))
    return found


@pytest.fixture
def owners_world(app, topics):
    make_admin("owner@news.example", "owner")
    make_admin("editor@news.example", "editor")
    former = make_admin("former@news.example", "viewer")
    former.disabled_at = utcnow()
    db.session.commit()
    reader = make_reader()
    create_token("cms", actor=AdminActor(None, "tests"))
    return {"admin_id": former.id, "topic_id": topics[1].id, "reader_id": reader.id,
            "reader_email": reader.email,
            "token_id": db.session.scalar(select(ApiToken.id))}


def forms_for(endpoint: str, world: dict) -> list[dict]:
    """Forms that make each owner's action change something (the test checks they do when
    an owner sends them)."""
    return {
        "admin.accounts": [{"email": "mole@news.example", "role": "owner",
                            "password": NEW_PASSWORD}],
        "admin.account_change": [{"change": "role", "role": "owner"}, {"change": "enable"},
                                 {"change": "disable"}],
        "admin.topics": [{"name": "Taken over", "description": "By an editor.",
                          "premium": "on"}],
        "admin.topic_change": [{"name": "Renamed by an editor", "description": "x",
                                "premium": "on"}, {"move": "up"}],
        "admin.reader_erase": [{"confirm_email": world["reader_email"]}],
        "admin.reader_comp": [{"action": "grant", "note": "an editor's friend"}],
        "admin.api_tokens": [{"name": "mole", "scope": ["readers:read", "readers:write"]}],
    }.get(endpoint, [{"name": "Taken over", "email": "mole@news.example",
                      "role": "owner", "change": "role", "confirm": "yes"}])


def test_the_owner_only_list_is_read_from_the_code(app):
    found = {(method, rule.rule) for method, rule in owner_only_requests(app)}
    assert {("GET", "/admin/accounts"), ("POST", "/admin/accounts"),
            ("POST", "/admin/accounts/<int:admin_id>"), ("POST", "/admin/topics"),
            ("POST", "/admin/topics/<int:topic_id>"),
            ("POST", "/admin/readers/<int:reader_id>/erase"),
            ("POST", "/admin/readers/<int:reader_id>/comp"),
            ("GET", "/admin/audit"), ("GET", "/admin/settings")} <= found
    # What an editor may do is not on it.
    assert ("GET", "/admin/topics") not in found
    assert ("POST", "/admin/editions/new") not in found
    assert ("POST", "/admin/readers/<int:reader_id>/suppress") not in found


def test_an_editor_gets_403_for_every_owners_action_and_nothing_changes(app, owners_world):
    editor = signed_in(app, "editor@news.example")
    token = csrf(editor)
    requests = owner_only_requests(app)
    before = snapshot()
    for method, rule in requests:
        for url in urls_of(rule, owners_world):
            if method == "GET":
                assert editor.get(url).status_code == 403, url
                continue
            for form in forms_for(rule.endpoint, owners_world):
                response = editor.open(url, method=method, data={"csrf_token": token, **form})
                assert response.status_code == 403, (method, url, form)
                assert snapshot() == before, (method, url, form)
    assert admin_named("editor@news.example").role == "editor"
    assert editor.get("/admin/").status_code == 200  # still signed in, still an editor

    # The same requests from an owner do what they say: the 403s above were the check.
    owner = signed_in(app, "owner@news.example")
    token = csrf(owner)
    for method, rule in requests:
        for url in urls_of(rule, owners_world):
            if method == "GET":
                assert owner.get(url).status_code == 200, url
                continue
            for form in forms_for(rule.endpoint, owners_world):
                before = snapshot()
                response = owner.open(url, method=method, data={"csrf_token": token, **form})
                # A new token's answer is the page with its secret, shown once: no redirect.
                assert response.status_code in (
                    (201,) if rule.endpoint == "admin.api_tokens" else (302, 303)), (
                    method, url, form)
                assert snapshot() != before, (method, url, form)


# -- 4. owners manage accounts --------------------------------------------------------------

def test_an_owner_adds_changes_disables_and_enables_an_admin(app):
    owner_admin = make_admin("owner@news.example", "owner")
    owner = signed_in(app, "owner@news.example", ip=OWNER_IP)
    token = csrf(owner, "/admin/accounts")

    for weak, message in (("password1234", "too common"), ("short", "at least 12"),
                          ("Newcomer rules, no doubt", "must not contain your address")):
        refused = owner.post("/admin/accounts", data={
            "csrf_token": token, "email": "newcomer@news.example", "role": "editor",
            "password": weak})
        assert refused.status_code == 400, weak
        page = refused.get_data(as_text=True)
        assert message in page, weak
        assert 'value="newcomer@news.example"' in page  # the address is kept in the form
    assert admin_named("newcomer@news.example") is None
    assert audit_entries("added admin") == []

    added = owner.post("/admin/accounts", data={
        "csrf_token": token, "email": "NewComer@News.example ", "role": "editor",
        "password": NEW_PASSWORD}, follow_redirects=True)
    assert added.status_code == 200
    assert "newcomer@news.example can now sign in as editor." in added.get_data(as_text=True)
    new = admin_named("newcomer@news.example")
    assert new is not None and new.role == "editor" and new.disabled_at is None

    newcomer = browser(app, ip="198.51.100.30")
    assert sign_in(newcomer, "newcomer@news.example", NEW_PASSWORD).status_code == 302
    assert newcomer.get("/admin/editions/new").status_code == 200
    assert newcomer.get("/admin/accounts").status_code == 403

    def change(**form):
        return owner.post(f"/admin/accounts/{new.id}", data={"csrf_token": token, **form})

    assert change(change="role", role="viewer").status_code == 303
    assert admin_named("newcomer@news.example").role == "viewer"
    assert newcomer.get("/admin/editions/new").status_code == 403  # at once
    assert change(change="role", role="sultan").status_code == 400
    assert admin_named("newcomer@news.example").role == "viewer"

    assert change(change="disable").status_code == 303
    assert admin_named("newcomer@news.example").disabled_at is not None
    assert locked_out(newcomer)
    assert sign_in(newcomer, "newcomer@news.example", NEW_PASSWORD).status_code == 401
    listing = owner.get("/admin/accounts").get_data(as_text=True)
    assert re.search(r"newcomer@news\.example</td><td>viewer</td><td>disabled", listing)

    assert change(change="enable").status_code == 303
    assert admin_named("newcomer@news.example").disabled_at is None
    assert sign_in(newcomer, "newcomer@news.example", NEW_PASSWORD).status_code == 302
    assert newcomer.get("/admin/").status_code == 200

    # An owner's own account is changed elsewhere.
    assert owner.post(f"/admin/accounts/{owner_admin.id}", data={
        "csrf_token": token, "change": "disable"}).status_code == 400
    assert admin_named("owner@news.example").disabled_at is None

    expected = [("added admin", {"role": "editor"}),
                ("changed role", {"before": "editor", "after": "viewer"}),
                ("disabled admin", {}), ("enabled admin", {})]
    for action, detail in expected:
        entries = audit_entries(action)
        assert len(entries) == 1, action
        entry = entries[0]
        assert entry.ip == OWNER_IP, action
        assert (entry.actor, entry.admin_id) == ("owner@news.example", owner_admin.id)
        assert entry.target == "newcomer@news.example", action
        assert entry.detail == detail, action
    # The owner reads them on the audit page.
    audit_page = owner.get("/admin/audit").get_data(as_text=True)
    for action, _ in expected:
        assert action in audit_page
    assert OWNER_IP in audit_page


# -- 5. the per-IP sign-in limit ------------------------------------------------------------

@pytest.mark.parametrize("login_limit", ["3/minute"])
def test_too_many_attempts_from_one_address_are_refused_even_with_the_password(app):
    make_admin("owner@news.example", "owner")
    client = browser(app, ip="198.51.100.66")
    for _ in range(3):
        assert sign_in(client, "owner@news.example", "not the password at all") \
            .status_code == 401
    over = sign_in(client, "owner@news.example")
    assert over.status_code == 429
    assert "Too many sign-in attempts from here" in over.get_data(as_text=True)
    assert locked_out(client)
    assert audit_entries("signed in") == []
    assert client.get("/admin/login").status_code == 200  # the page still shows

    # The limit is per address: the owner elsewhere signs in, and the account is not locked.
    elsewhere = browser(app, ip="198.51.100.67")
    assert sign_in(elsewhere, "owner@news.example").status_code == 302
    assert elsewhere.get("/admin/").status_code == 200


# -- 6. the lockout ends -------------------------------------------------------------------

def test_the_lockout_ends_after_fifteen_minutes(app):
    make_admin("owner@news.example", "owner")
    client = browser(app)
    for _ in range(4):
        assert sign_in(client, "owner@news.example", "wrong password here").status_code == 401
    assert sign_in(client, "owner@news.example", "wrong password here").status_code == 429
    assert sign_in(client, "owner@news.example").status_code == 429
    assert locked_out(client)
    start = time.time()
    with time_machine.travel(start + 14 * 60):
        assert sign_in(client, "owner@news.example").status_code == 429
        assert locked_out(client)
    with time_machine.travel(start + 16 * 60):
        assert sign_in(client, "owner@news.example").status_code == 302
        assert client.get("/admin/").status_code == 200
        from newsletter.accounts.admins import is_locked

        assert not is_locked("owner@news.example")


# -- 7. changing one's password ------------------------------------------------------------

def change_password(client, current: str, new: str):
    return client.post("/admin/account/password",
                       data={"csrf_token": csrf(client), "current": current, "new": new})


def test_a_new_password_replaces_the_old_and_signs_out_other_browsers(app):
    make_admin("owner@news.example", "owner")
    here = signed_in(app, "owner@news.example", ip=OWNER_IP)
    there = signed_in(app, "owner@news.example", ip="198.51.100.40", agent="Safari/17")
    response = change_password(here, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert "Password changed; every other browser is signed out." in flashed(here)
    assert here.get("/admin/").status_code == 200  # this browser stays signed in
    assert locked_out(there)
    entry = audit_entries("changed password")[0]
    assert (entry.actor, entry.ip) == ("owner@news.example", OWNER_IP)

    fresh = browser(app)
    assert sign_in(fresh, "owner@news.example", PASSWORD).status_code == 401
    assert sign_in(fresh, "owner@news.example", NEW_PASSWORD).status_code == 302
    # The browser that changed it can still act (its CSRF token and session are good).
    assert here.post("/admin/logout", data={"csrf_token": csrf(here)}).status_code == 302


@pytest.mark.parametrize("new, message", [
    ("password1234", "too common"), ("short", "at least 12"),
    ("owner-owner-owner-owner", "must not contain your address")])
def test_a_weak_new_password_is_refused_with_the_reason(app, new, message):
    make_admin("owner@news.example", "owner")
    here = signed_in(app, "owner@news.example")
    there = signed_in(app, "owner@news.example", agent="Safari/17")
    response = change_password(here, PASSWORD, new)
    assert response.status_code == 302
    assert message in flashed(here)
    assert here.get("/admin/").status_code == 200
    assert there.get("/admin/").status_code == 200  # nobody was signed out
    assert audit_entries("changed password") == []
    assert sign_in(browser(app), "owner@news.example", new).status_code == 401
    assert sign_in(browser(app), "owner@news.example", PASSWORD).status_code == 302


def test_a_wrong_current_password_changes_nothing(app):
    make_admin("owner@news.example", "owner")
    here = signed_in(app, "owner@news.example")
    there = signed_in(app, "owner@news.example", agent="Safari/17")
    response = change_password(here, "not my password at all", NEW_PASSWORD)
    assert response.status_code == 302
    assert "Your current password is not right." in flashed(here)
    assert there.get("/admin/").status_code == 200
    assert audit_entries("changed password") == []
    assert sign_in(browser(app), "owner@news.example", NEW_PASSWORD).status_code == 401
    assert sign_in(browser(app), "owner@news.example", PASSWORD).status_code == 302


# -- 8. OPTIONS and HEAD on every admin route -----------------------------------------------

@pytest.fixture
def every_kind_of_row(app, topics):
    """An owner signed in, and one of each record an admin URL can name."""
    make_admin("owner@news.example", "owner")
    other = make_admin("other@news.example", "editor")
    owner = signed_in(app, "owner@news.example")
    reader = make_reader()
    synthesis = make_synthesis()
    edition = Edition(subject="A draft", kind="special", status="draft",
                      content={"sections": [], "body_html": "<p>Hi</p>", "body_text": "Hi",
                               "markdown": "Hi"},
                      audience={"topics": [], "tier": "all"})
    db.session.add(edition)
    db.session.commit()
    token = csrf(owner)
    assert owner.post("/admin/readers/suppressions/add", data={
        "csrf_token": token, "email": "gone@example.com"}).status_code == 303
    suppression_id = db.session.scalar(select(func.max(Suppression.id)))
    uploaded = owner.post("/admin/readers/import", data={
        "file": (io.BytesIO(b"email\nnew@example.com\n"), "readers.csv"), "encoding": "utf-8",
        "csrf_token": token}, content_type="multipart/form-data")
    assert uploaded.status_code == 303, uploaded.get_data(as_text=True)
    job_id = int(re.search(r"/import/(\d+)$", uploaded.headers["Location"])[1])
    assert owner.post(f"/admin/editions/{edition.id}/test", data={
        "to": "me@example.com", "csrf_token": token}).status_code in (302, 303)
    listing = owner.get("/admin/outbox").get_data(as_text=True)
    name = re.search(r"/admin/outbox/([^\"/]+\.eml)", listing)[1]
    values = {"admin_id": other.id, "topic_id": topics[0].id, "reader_id": reader.id,
              "synthesis_id": synthesis.id, "edition_id": edition.id, "job_id": job_id,
              "suppression_id": suppression_id, "name": name,
              "day": utcnow().date().isoformat(), "token_id": 1,
              "row_id": db.session.scalar(select(func.max(AdminSession.id)))}
    return owner, values


def outbox_files(app) -> list[Path]:
    return sorted(Path(app.config["OUTBOX_DIR"]).glob("*"))


def test_options_and_head_on_every_admin_route_never_fail_and_change_nothing(
        app, every_kind_of_row):
    owner, values = every_kind_of_row
    files = outbox_files(app)
    checked = 0
    for rule in admin_rules(app):
        for url in urls_of(rule, values):
            before = snapshot()
            options = owner.options(url)
            assert options.status_code == 200, url
            assert options.data == b"", url
            assert set(rule.methods) <= set(options.headers["Allow"].split(", ")), url
            assert snapshot() == before, f"OPTIONS {url} changed something"

            head = owner.head(url)
            assert head.status_code < 500, url
            assert head.data == b"", url
            assert snapshot() == before, f"HEAD {url} changed something"
            assert outbox_files(app) == files, url
            if "GET" in rule.methods:
                get = owner.get(url)
                assert head.status_code == get.status_code, url
                assert head.headers.get("Location") == get.headers.get("Location"), url
            else:
                assert head.status_code == 405, url
            checked += 1
    assert checked > 40
    # The owner is still signed in: nothing above signed them out either.
    assert owner.get("/admin/accounts").status_code == 200
    assert db.session.scalar(select(func.count(Topic.id))) == 3


def test_a_password_change_signs_out_a_browser_that_came_in_while_it_was_made(app):
    """A browser that signed in (with the old password) while the change was being made:
    the change deletes every session but its own when it commits, so none survives."""
    from newsletter.accounts import admins

    make_admin("owner@news.example", "owner")
    loaded = admin_named("owner@news.example")  # as the password request read it
    newcomer = signed_in(app, "owner@news.example", ip="198.51.100.50", agent="curl/8.5.0")
    admins.set_password(loaded, NEW_PASSWORD)
    assert locked_out(newcomer)
    assert sign_in(browser(app), "owner@news.example", NEW_PASSWORD).status_code == 302
