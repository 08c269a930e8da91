"""The optional second factor of the admin area, end to end: turned on from the Account
page with a QR code and a first code, asked for after the password at every sign-in,
refused when wrong, replayed or out of its time window, counted toward the lockout, and
turned off again with the password — each change in the audit log."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import segno
from sqlalchemy import select

from newsletter.accounts.models import Admin, AuditEntry
from newsletter.db import db
from tests.support.admins import PASSWORD, csrf, make_admin, sign_in

EMAIL = "editor@news.example"
TURNED_ON = "turned on two-factor sign-in"
TURNED_OFF = "turned off two-factor sign-in"


@pytest.fixture
def app_config(app_config):
    # Each test signs in more often than a person would; the per-IP limit is tested elsewhere.
    app_config["ADMIN_LOGIN_LIMIT_PER_IP"] = "1000/minute"
    return app_config


def _admin(email: str = EMAIL) -> Admin:
    return db.session.scalar(select(Admin).where(Admin.email == email))


def _failures(email: str = EMAIL, ip: str = "127.0.0.1") -> int:
    """Wrong passwords counted for this address from this IP; wrong codes count from every
    IP together (``ip="*"``)."""
    from newsletter.accounts.admins import account_key
    from newsletter.accounts.models import SignInFailure

    return db.session.scalar(select(SignInFailure.failures).where(
        SignInFailure.account == account_key(email), SignInFailure.ip == ip)) or 0


def _locked(email: str = EMAIL) -> bool:
    from newsletter.accounts.admins import is_locked

    return is_locked(email)


def _actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def _two_factor(client, **fields):
    return client.post("/admin/account/two-factor",
                       data={"csrf_token": csrf(client), **fields})


def _start(client) -> tuple[str, str]:
    """Press "Set up two-factor sign-in"; the Account page and the secret it shows."""
    assert _two_factor(client, step="start").status_code == 302
    page = client.get("/admin/account").get_data(as_text=True)
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page)[1]
    return page, secret


def _turn_on(client, email: str = EMAIL) -> pyotp.TOTP:
    _, secret = _start(client)
    response = _two_factor(client, step="confirm", code=pyotp.TOTP(secret).now())
    assert response.status_code == 302
    assert _admin(email).totp_secret == secret
    return pyotp.TOTP(secret)


def _next_code(totp: pyotp.TOTP) -> str:
    """The code of the next 30-second step: within the window, and newer than the code
    that turned the factor on (which can never be used again)."""
    return totp.at(time.time() + 30)


def _window(totp: pyotp.TOTP) -> set[str]:
    now = time.time()
    return {totp.at(now + offset) for offset in (-60, -30, 0, 30, 60)}


def _wrong_code(totp: pyotp.TOTP) -> str:
    valid = _window(totp)
    return next(c for c in ("000000", "123456", "999999", "424242") if c not in valid)


def _send_code(client, code: str):
    token = csrf(client, "/admin/login/code")
    return client.post("/admin/login/code", data={"code": code, "csrf_token": token})


def _signed_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_the_account_page_shows_a_qr_code_and_the_secret(app, client):
    make_admin()
    sign_in(client)
    page = client.get("/admin/account").get_data(as_text=True)
    assert "Set up two-factor sign-in" in page and "<svg" not in page
    page, secret = _start(client)
    assert len(secret) == 32
    assert _admin().totp_pending == secret and _admin().totp_secret is None
    svg = re.search(r'<div class="qr">(<svg.*?</svg>)</div>', page, re.S)[1]
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # inline, no fetch
    # The QR code is the authenticator's otpauth URI for this secret: what an app scans.
    uri = pyotp.TOTP(secret).provisioning_uri(name=EMAIL, issuer_name="Modelwire")
    qr = segno.make(uri, error="m")
    width = int(re.search(r'width="(\d+)"', svg)[1])
    scale = width // qr.symbol_size(scale=1)[0]
    expected = qr.svg_inline(scale=scale, dark="#1f2933", light="#ffffff")
    path = re.compile(r'<path[^>]* d="([^"]+)"')
    assert path.findall(svg) == path.findall(expected)
    assert 'name="code"' in page and 'value="confirm"' in page


def test_a_wrong_code_does_not_turn_it_on(app, client):
    make_admin()
    sign_in(client)
    _, secret = _start(client)
    totp = pyotp.TOTP(secret)
    for code in (_wrong_code(totp), "", "١٢٣٤٥٦", totp.now() + "0", "12345\0"):
        response = _two_factor(client, step="confirm", code=code)
        assert response.status_code == 302
        assert _admin().totp_secret is None
    page = client.get("/admin/account").get_data(as_text=True)
    assert "That code is not right" in page
    assert "<svg" in page  # still waiting for a right code
    assert TURNED_ON not in _actions()
    # Signing in still asks for the password only.
    client.post("/admin/logout", data={"csrf_token": csrf(client)})
    assert sign_in(client).headers["Location"] == "/admin/"


def test_turning_it_on_then_signing_in_asks_for_the_code(app, client):
    make_admin()
    sign_in(client)
    totp = _turn_on(client)
    page = client.get("/admin/account").get_data(as_text=True)
    assert "Two-factor sign-in is on" in page
    assert "<svg" not in page and totp.secret not in page  # the secret is shown only once
    assert TURNED_ON in _actions()
    client.post("/admin/logout", data={"csrf_token": csrf(client)})

    response = sign_in(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/login/code"
    # The password alone signs nobody in.
    assert client.get("/admin/").status_code == 302
    assert "/admin/login" in client.get("/admin/account").headers["Location"]
    assert client.post("/admin/account/two-factor",
                       data={"step": "off", "password": PASSWORD,
                             "csrf_token": csrf(client, "/admin/login/code")}).status_code == 401
    assert _admin().totp_secret is not None
    code_page = client.get("/admin/login/code")
    assert code_page.status_code == 200
    assert 'name="code"' in code_page.get_data(as_text=True)

    signed = _send_code(client, _next_code(totp))
    assert signed.status_code == 302 and signed.headers["Location"] == "/admin/"
    assert _signed_in(client)
    assert _actions().count("signed in") == 2


def test_the_code_that_turned_it_on_cannot_sign_in(app, client):
    make_admin()
    sign_in(client)
    _, secret = _start(client)
    code = pyotp.TOTP(secret).now()
    _two_factor(client, step="confirm", code=code)
    client.post("/admin/logout", data={"csrf_token": csrf(client)})
    sign_in(client)
    refused = _send_code(client, code)
    assert refused.status_code == 401
    assert "used already" in refused.get_data(as_text=True)
    assert not _signed_in(client)


def test_a_code_is_refused_the_second_time(app, client):
    make_admin()
    sign_in(client)
    totp = _turn_on(client)
    client.post("/admin/logout", data={"csrf_token": csrf(client)})
    code = _next_code(totp)
    sign_in(client)
    assert _send_code(client, code).status_code == 302
    client.post("/admin/logout", data={"csrf_token": csrf(client)})

    other = app.test_client()  # someone who read the code over a shoulder, with the password
    sign_in(other)
    replay = _send_code(other, code)
    assert replay.status_code == 401
    assert "used already" in replay.get_data(as_text=True)
    assert not _signed_in(other)
    assert _failures(ip="*") == 1  # a replay counts as a wrong code


@pytest.mark.parametrize("offset", [-3600, -120, 120, 86400])
def test_a_code_from_outside_the_time_window_is_refused(app, client, offset):
    make_admin()
    sign_in(client)
    totp = _turn_on(client)
    client.post("/admin/logout", data={"csrf_token": csrf(client)})
    sign_in(client)
    code = totp.at(time.time() + offset)
    if code in _window(totp):  # one chance in a million: the same six digits
        pytest.skip("the far code happens to equal a code of the window")
    assert _send_code(client, code).status_code == 401
    assert not _signed_in(client)
    # The right code still works afterwards.
    assert _send_code(client, _next_code(totp)).status_code == 302
    assert _signed_in(client)


def test_five_wrong_codes_in_a_row_lock_the_account(app, client):
    make_admin()
    sign_in(client)
    totp = _turn_on(client)
    client.post("/admin/logout", data={"csrf_token": csrf(client)})
    sign_in(client)
    wrong = _wrong_code(totp)
    for attempt in range(4):
        response = _send_code(client, wrong)
        assert response.status_code == 401, attempt
        assert _failures(ip="*") == attempt + 1
    locked = _send_code(client, wrong)
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.get_data(as_text=True)
    assert _locked()
    # The code step is over, and even the right password and code do not open it now (the
    # password step says nothing of it: only after the right password is the lock told).
    assert client.get("/admin/login/code").headers["Location"] == "/admin/login"
    assert sign_in(client).status_code == 302
    assert _send_code(client, _next_code(totp)).status_code == 429
    assert not _signed_in(client)
    assert "signed in" not in _actions()[1:]


def test_odd_codes_at_sign_in_are_refused_not_errors(app, client):
    make_admin()
    sign_in(client)
    totp = _turn_on(client)
    client.post("/admin/logout", data={"csrf_token": csrf(client)})
    sign_in(client)
    # Four of them: each counts as a wrong code, and a fifth would lock the account.
    for code in ("١٢٣٤٥٦", "9" * 10_000, "12 34\0 56"):
        assert _send_code(client, code).status_code == 401
    token = csrf(client, "/admin/login/code")
    raw = client.post(
        "/admin/login/code", data=f"csrf_token={token}&code=%FF%FE%FD%FC%FB%FA",
        content_type="application/x-www-form-urlencoded")
    assert raw.status_code == 401
    assert not _signed_in(client) and _failures(ip="*") == 4
    # Spaces as an authenticator shows them ("123 456") are fine.
    code = _next_code(totp)
    assert _send_code(client, f"{code[:3]} {code[3:]}").status_code == 302


def test_the_code_step_waits_five_minutes_at_most(app, client):
    make_admin()
    sign_in(client)
    totp = _turn_on(client)
    client.post("/admin/logout", data={"csrf_token": csrf(client)})
    assert client.get("/admin/login/code").headers["Location"] == "/admin/login"
    sign_in(client)
    with client.session_transaction() as session:
        admin_id, started = session["admin_pending"]
        session["admin_pending"] = [admin_id, started - 301]
    late = client.post("/admin/login/code", data={"code": _next_code(totp),
                                                  "csrf_token": csrf(client, "/admin/login")})
    assert late.status_code == 302 and late.headers["Location"] == "/admin/login"
    assert not _signed_in(client)


def test_turning_it_off_needs_the_password(app, client):
    owner = "owner@news.example"
    make_admin(owner, "owner")
    sign_in(client, owner)
    totp = _turn_on(client, owner)
    for password in ("", "not the password at all"):
        refused = _two_factor(client, step="off", password=password)
        assert refused.status_code == 302
        assert _admin(owner).totp_secret is not None
    assert "Enter your password" in client.get("/admin/account").get_data(as_text=True)
    assert TURNED_OFF not in _actions()
    # A code alone is not enough: the password is what proves it is still you.
    assert _two_factor(client, step="off", code=_next_code(totp)).status_code == 302
    assert _admin(owner).totp_secret is not None

    assert _two_factor(client, step="off", password=PASSWORD).status_code == 302
    admin = _admin(owner)
    assert admin.totp_secret is None and admin.totp_pending is None
    assert "Two-factor sign-in is off" in client.get("/admin/account").get_data(as_text=True)
    actions = _actions()
    assert actions.index(TURNED_ON) < actions.index(TURNED_OFF)
    audit = client.get("/admin/audit").get_data(as_text=True)
    assert TURNED_ON in audit and TURNED_OFF in audit
    # Signing in asks for the password only again.
    client.post("/admin/logout", data={"csrf_token": csrf(client)})
    assert sign_in(client, owner).headers["Location"] == "/admin/"


def test_wrong_passwords_to_turn_it_off_count_toward_the_lockout(app, client):
    make_admin()
    sign_in(client)
    _turn_on(client)
    for _ in range(5):
        _two_factor(client, step="off", password="not the password at all")
    admin = _admin()
    assert _locked() and admin.totp_secret is not None
    # Locked: even the right password does not turn it off until the lock ends.
    _two_factor(client, step="off", password=PASSWORD)
    assert _admin().totp_secret is not None


def test_an_unknown_step_is_a_bad_request(app, client):
    make_admin()
    sign_in(client)
    assert _two_factor(client, step="everything").status_code == 400
    assert _two_factor(client).status_code == 400
    assert _admin().totp_pending is None


def test_wrong_codes_from_many_ip_addresses_lock_the_code_step(app):
    """Whoever reaches the code step knew the password: spreading code guesses over many
    IP addresses (replaying one code-step cookie) does not multiply them."""
    from newsletter.accounts.admins import account_key
    from newsletter.accounts.models import SignInFailure

    make_admin()
    client = app.test_client()
    sign_in(client)
    totp = _turn_on(client)
    wrong = _wrong_code(totp)
    codes = []
    for n in range(5):
        guesser = app.test_client()
        guesser.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
        assert sign_in(guesser).status_code == 302
        codes.append(_send_code(guesser, wrong).status_code)
    assert codes == [401, 401, 401, 401, 429]
    assert db.session.scalar(select(SignInFailure.locked_until).where(
        SignInFailure.account == account_key(EMAIL), SignInFailure.ip == "*")) is not None
