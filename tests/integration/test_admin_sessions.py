"""Admin sessions are server-side records, and the lockout tells nothing and locks out only
the one guessing (issue 26, items 3 and 4).

Signing out deletes the session a cookie names, so a copy of the cookie opens nothing
after; the account page lists every browser signed in, with "sign out" on each. Wrong
passwords count per typed address and IP address: a known and an unknown address get the
same answers after the same work, and the owner still signs in from elsewhere. Failed
sign-ins and lockouts are in the audit log.
"""

from __future__ import annotations

import re
import time

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.accounts import admins
from newsletter.accounts.models import AuditEntry
from newsletter.db import db
from tests.support.admins import PASSWORD, browser, csrf, make_admin, sign_in

OWNER = "owner@news.example"
WRONG = "not the password at all"


@pytest.fixture
def app_config(app_config):
    # These tests sign in more often than a person would: the per-IP limit stays out of it.
    app_config["ADMIN_LOGIN_LIMIT_PER_IP"] = "1000/minute"
    return app_config


def signed_in(app, email: str = OWNER, **kwargs):
    client = browser(app, **kwargs)
    assert sign_in(client, email).status_code == 302
    assert client.get("/admin/").status_code == 200
    return client


def is_signed_in(client) -> bool:
    return client.get("/admin/settings").status_code == 200


def entries(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                   .order_by(AuditEntry.id)))


def session_rows() -> list:
    from newsletter.accounts.models import AdminSession

    db.session.expire_all()
    return list(db.session.scalars(select(AdminSession).order_by(AdminSession.id)))


# -- 3. sign-out signs out -----------------------------------------------------------------

def test_a_cookie_copied_before_sign_out_opens_nothing_after_it(app):
    make_admin(OWNER, "owner")
    owner = signed_in(app)
    copy = browser(app, ip="198.51.100.9")
    copy.set_cookie("session", owner.get_cookie("session").value)
    assert is_signed_in(copy)

    assert owner.post("/admin/logout", data={"csrf_token": csrf(owner)}).status_code == 302
    assert not is_signed_in(copy)
    assert copy.get("/admin/settings").headers["Location"].startswith("/admin/login")
    assert session_rows() == []
    assert [e.actor for e in entries("signed out")] == [OWNER]


def test_the_cookie_holds_a_random_id_that_the_table_keeps_only_hashed(app):
    make_admin(OWNER, "owner")
    owner = signed_in(app)
    serializer = app.session_interface.get_signing_serializer(app)
    session_id = serializer.loads(owner.get_cookie("session").value)["admin_session"]
    [row] = session_rows()
    assert len(session_id) >= 40 and session_id not in (row.token_hash, str(row.id))
    assert (row.ip, row.user_agent) == ("127.0.0.1", "Firefox/128.0 (test)")
    # Two sign-ins of the same admin are two sessions with two ids.
    signed_in(app)
    assert len({r.token_hash for r in session_rows()}) == 2


def test_the_account_page_lists_each_browser_and_signs_one_out(app):
    make_admin(OWNER, "owner")
    laptop = signed_in(app, ip="203.0.113.7", agent="Mozilla/5.0 (X11; Linux x86_64) "
                                                   "Gecko/20100101 Firefox/128.0")
    phone = signed_in(app, ip="198.51.100.23", agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0"
                                                    " like Mac OS X) Safari/604.1")
    page = laptop.get("/admin/account").get_data(as_text=True)
    assert "Firefox on Linux" in page and "Safari on iPhone" in page
    assert "203.0.113.7" in page and "198.51.100.23" in page
    assert page.count("this browser") == 1

    laptop_row, phone_row = (row.id for row in session_rows())
    response = laptop.post(f"/admin/account/sessions/{phone_row}",
                           data={"csrf_token": csrf(laptop)})
    assert response.status_code == 303
    assert not is_signed_in(phone) and is_signed_in(laptop)
    assert [r.id for r in session_rows()] == [laptop_row]
    [entry] = entries("ended a session")
    assert entry.detail == {"session": phone_row} and entry.ip == "203.0.113.7"

    # "Sign out" on this browser's own row is signing out.
    assert laptop.post(f"/admin/account/sessions/{laptop_row}",
                       data={"csrf_token": csrf(laptop)}).status_code == 302
    assert not is_signed_in(laptop) and session_rows() == []


def test_an_admin_cannot_end_another_admins_session(app):
    make_admin(OWNER, "owner")
    make_admin("editor@news.example", "editor")
    owner = signed_in(app)
    editor = signed_in(app, "editor@news.example", ip="198.51.100.4")
    owner_row = next(r for r in session_rows() if r.ip == "127.0.0.1")
    for row_id in (owner_row.id, 999_999):
        answer = editor.post(f"/admin/account/sessions/{row_id}",
                             data={"csrf_token": csrf(editor)})
        assert answer.status_code == 404, row_id
    assert is_signed_in(owner) and len(session_rows()) == 2


def test_sign_out_everywhere_and_a_new_password_delete_the_sessions(app):
    make_admin(OWNER, "owner")
    here, there, elsewhere = (signed_in(app, ip=f"198.51.100.{n}") for n in (1, 2, 3))
    response = here.post("/admin/account/password", data={
        "csrf_token": csrf(here), "current": PASSWORD, "new": "a brand new passphrase"})
    assert response.status_code == 302
    assert is_signed_in(here) and not is_signed_in(there) and not is_signed_in(elsewhere)
    assert len(session_rows()) == 1

    fresh = browser(app, ip="198.51.100.9")
    assert sign_in(fresh, OWNER, "a brand new passphrase").status_code == 302
    assert here.post("/admin/logout/everywhere",
                     data={"csrf_token": csrf(here)}).status_code == 302
    assert not is_signed_in(here) and not is_signed_in(fresh) and session_rows() == []


def test_a_session_ends_when_it_is_too_old_and_its_row_goes(app):
    make_admin(OWNER, "owner")
    owner = signed_in(app)
    hours = app.config["ADMIN_SESSION_HOURS"]
    with time_machine.travel(time.time() + hours * 3600 + 60, tick=False):
        assert not is_signed_in(owner)
    assert session_rows() == []


def test_the_last_seen_time_moves_at_most_once_a_minute(app):
    make_admin(OWNER, "owner")
    owner = signed_in(app)
    [row] = session_rows()
    first = row.last_seen_at
    assert is_signed_in(owner)
    assert session_rows()[0].last_seen_at == first
    with time_machine.travel(time.time() + 5 * 60, tick=False):
        assert is_signed_in(owner)
    assert session_rows()[0].last_seen_at > first


# -- 4. the lockout: the same for every address, per address and IP -------------------------

def _five_wrong(client, email: str) -> list[int]:
    return [sign_in(client, email, WRONG).status_code for _ in range(5)]


def _error(response) -> str:
    return re.search(r'class="error"[^>]*>(.*?)</', response.get_data(as_text=True),
                     re.S)[1].strip()


def test_known_and_unknown_addresses_lock_alike_and_cost_the_same_hash(app, monkeypatch):
    make_admin(OWNER, "owner")
    hashes = []
    real = admins.check_password_hash
    monkeypatch.setattr(admins, "check_password_hash",
                        lambda stored, password: hashes.append(stored) or real(stored, password))
    attacker = browser(app, ip="198.51.100.66")
    assert _five_wrong(attacker, OWNER) == [401, 401, 401, 401, 429]
    assert _five_wrong(attacker, "nobody@news.example") == [401, 401, 401, 401, 429]
    assert len(hashes) == 10

    hashes.clear()
    known = sign_in(attacker, OWNER, PASSWORD)  # locked: even the right password
    unknown = sign_in(attacker, "nobody@news.example", PASSWORD)
    assert known.status_code == unknown.status_code == 429
    assert _error(known) == _error(unknown)
    assert "Try again in 15 minutes" in _error(known)
    # A locked address still costs one scrypt hash, like every other answer.
    assert len(hashes) == 2 and all(h.startswith("scrypt:") for h in hashes)


def test_one_ip_cannot_lock_the_owner_out_of_everywhere_else(app):
    make_admin(OWNER, "owner")
    attacker = browser(app, ip="198.51.100.66")
    assert _five_wrong(attacker, OWNER)[-1] == 429
    assert sign_in(attacker, OWNER).status_code == 429
    # The owner, from their own network, signs in; the attacker's lock stays.
    owner = browser(app, ip="203.0.113.7")
    assert sign_in(owner, OWNER).status_code == 302 and is_signed_in(owner)
    assert sign_in(attacker, OWNER).status_code == 429
    # Keeping the attacker's lock going does not reach the owner either.
    for _ in range(3):
        assert sign_in(attacker, OWNER, WRONG).status_code == 429
    assert sign_in(browser(app, ip="203.0.113.7"), OWNER).status_code == 302


def test_failed_sign_ins_and_lockouts_are_audited(app):
    owner_admin = make_admin(OWNER, "owner")
    attacker = browser(app, ip="198.51.100.66")
    _five_wrong(attacker, OWNER)
    sign_in(attacker, "nobody@news.example", WRONG)
    refused = entries("sign-in refused")
    assert len(refused) == 6
    assert {(e.admin_id, e.actor) for e in refused[:5]} == {(owner_admin.id, OWNER)}
    assert (refused[5].admin_id, refused[5].actor) == (None, admins.UNKNOWN_ADDRESS)
    assert {e.ip for e in refused} == {"198.51.100.66"}
    [locked] = entries("locked out")
    assert (locked.actor, locked.ip, locked.detail) == (OWNER, "198.51.100.66",
                                                        {"minutes": 15})
    # The typed unknown address is kept nowhere (the lockout counts a hash of it).
    for table in ("audit_log", "sign_in_failures"):
        rows = db.session.execute(db.metadata.tables[table].select()).all()
        assert "nobody@news.example" not in repr(rows), table
    # An owner reads them on the audit page.
    page = signed_in(app, ip="203.0.113.7").get("/admin/audit").get_data(as_text=True)
    assert "sign-in refused" in page and "locked out" in page


def test_a_right_password_starts_the_count_again_for_that_ip_only(app):
    make_admin(OWNER, "owner")
    here = browser(app, ip="198.51.100.1")
    there = browser(app, ip="198.51.100.2")
    for _ in range(4):
        assert sign_in(here, OWNER, WRONG).status_code == 401
        assert sign_in(there, OWNER, WRONG).status_code == 401
    assert sign_in(here, OWNER).status_code == 302
    here = browser(app, ip="198.51.100.1")
    for _ in range(4):  # here counts from 0 again
        assert sign_in(here, OWNER, WRONG).status_code == 401
    assert sign_in(there, OWNER, WRONG).status_code == 429  # there was at 4


def test_the_unlock_command_lifts_every_lock_of_an_address(app, runner):
    make_admin(OWNER, "owner")
    for ip in ("198.51.100.1", "198.51.100.2"):
        _five_wrong(browser(app, ip=ip), OWNER)
    assert "locked" in runner.invoke(args=["admin", "list"]).output
    result = runner.invoke(args=["admin", "unlock", OWNER])
    assert result.exit_code == 0, result.output
    assert sign_in(browser(app, ip="198.51.100.1"), OWNER).status_code == 302
    assert sign_in(browser(app, ip="198.51.100.2"), OWNER).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(
        db.metadata.tables["sign_in_failures"])) == 0


def test_housekeeping_deletes_old_sessions_and_old_failure_counts(app):
    from newsletter.scheduler.jobs import housekeeping

    make_admin(OWNER, "owner")
    signed_in(app)
    sign_in(browser(app, ip="198.51.100.5"), OWNER, WRONG)
    housekeeping(app)
    assert len(session_rows()) == 1  # young: kept
    hours = app.config["ADMIN_SESSION_HOURS"]
    with time_machine.travel(time.time() + max(hours * 3600, 86400) + 60, tick=False):
        housekeeping(app)
    assert session_rows() == []
    assert db.session.scalar(select(func.count()).select_from(
        db.metadata.tables["sign_in_failures"])) == 0


def test_signing_in_again_in_the_same_browser_ends_the_session_it_had(app):
    make_admin(OWNER, "owner")
    make_admin("editor@news.example", "editor")
    client = signed_in(app)
    copy = browser(app)
    copy.set_cookie("session", client.get_cookie("session").value)
    # The same browser signs in as someone else (or follows a reader's link): the
    # owner's session row goes, so the copy of its cookie opens nothing.
    client.get("/admin/logout")  # a GET signs nobody out
    client.delete_cookie("session")
    client.set_cookie("session", copy.get_cookie("session").value)
    token = csrf(client, "/admin/account")
    assert client.post("/admin/login", data={"email": "editor@news.example",
                                             "password": PASSWORD,
                                             "csrf_token": token}).status_code == 302
    assert not is_signed_in(copy)
    assert [r.admin_id for r in session_rows()] == [admins.find_admin(
        "editor@news.example").id]


def test_addresses_of_one_ipv6_network_count_together(app):
    make_admin(OWNER, "owner")
    for n in range(5):
        answer = sign_in(browser(app, ip=f"2001:db8:1:2::{n + 1:x}"), OWNER, WRONG)
    assert answer.status_code == 429
    assert sign_in(browser(app, ip="2001:db8:1:2::99"), OWNER).status_code == 429
    assert sign_in(browser(app, ip="2001:db8:1:3::1"), OWNER).status_code == 302


def test_following_a_readers_link_in_an_admin_browser_ends_the_admin_session(app, topics):
    from tests.factories_readers import links, make_reader

    make_admin(OWNER, "owner")
    client = signed_in(app)
    copy = browser(app)
    copy.set_cookie("session", client.get_cookie("session").value)
    reader = make_reader("ada@example.com")
    assert client.get(links().manage(reader.id).split("news.example", 1)[1]).status_code == 303
    assert not is_signed_in(client) and not is_signed_in(copy)
    assert session_rows() == []
