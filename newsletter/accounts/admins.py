"""Admin accounts: creation with a password policy, sign-in with throttling and a temporary
lockout, an optional TOTP second factor, and signing out of every browser.

Passwords are kept as werkzeug scrypt hashes. A failed sign-in says the same thing whether
the address is known or not, and costs the same hash either way.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from newsletter.accounts.models import Admin
from newsletter.accounts.roles import ROLES
from newsletter.db import db, utcnow

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
PASSWORD_MIN = 12
PASSWORD_MAX = 200
TOTP_STEP = 30
HASH_METHOD = "scrypt"
# The most used passwords of at least 12 characters (from public breach lists): refused
# whatever their case. Length does the rest; composition rules only make passwords worse.
COMMON = frozenset({
    "123456789012", "1234567890123", "12345678901234", "qwertyuiop12", "qwertyuiopas",
    "passwordpassword", "password1234", "password12345", "password123456", "administrator",
    "administrator1", "adminadminadmin", "iloveyou1234", "letmein12345", "welcome12345",
    "qwerty123456", "1q2w3e4r5t6y", "1qaz2wsx3edc", "aaaaaaaaaaaa", "abc123456789",
    "changeme1234", "newsletter12", "newsletter123", "trustno1trustno1", "zaq12wsxcde3",
})
_DUMMY_HASH = generate_password_hash("not-a-password-anyone-has", method=HASH_METHOD)


class AccountError(ValueError):
    """An account cannot be created or changed as asked; the message says why."""


class SignInRefused(Exception):
    """Wrong address, password or code (deliberately one message for all three)."""


class LockedOut(SignInRefused):
    def __init__(self, until: datetime):
        super().__init__(f"locked until {until.isoformat(timespec='minutes')}")
        self.until = until


@dataclass(frozen=True)
class SignIn:
    """A password that matched: complete when no second factor is needed."""

    admin: Admin
    needs_code: bool


def password_problem(password: str, email: str = "") -> str | None:
    """Why ``password`` is too weak (one sentence), or None when it will do."""
    if len(password) < PASSWORD_MIN:
        return f"Use at least {PASSWORD_MIN} characters (a few words make a good one)."
    if len(password) > PASSWORD_MAX:
        return f"Use at most {PASSWORD_MAX} characters."
    lowered = password.lower()
    local = email.partition("@")[0].lower()
    if lowered in COMMON or len(set(lowered)) < 5:
        return "This password is too common or too simple; choose another."
    if local and len(local) >= 4 and local in lowered:
        return "The password must not contain your address."
    return None


def normalise(email: str) -> str:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 320 or any(
            c.isspace() or not c.isprintable() for c in email):
        raise AccountError(f"{email[:80]!r} is not an email address")
    return email


def create_admin(email: str, password: str, role: str) -> Admin:
    email = normalise(email)
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    problem = password_problem(password, email)
    if problem:
        raise AccountError(problem)
    if db.session.scalar(select(Admin.id).where(Admin.email == email)) is not None:
        raise AccountError(f"an admin with the address {email} exists already")
    admin = Admin(email=email, role=role,
                  password_hash=generate_password_hash(password, method=HASH_METHOD))
    db.session.add(admin)
    db.session.commit()
    return admin


def get_admin(admin_id: int) -> Admin | None:
    admin = db.session.get(Admin, admin_id)
    return admin if admin is not None and admin.disabled_at is None else None


def find_admin(email: str) -> Admin | None:
    return db.session.scalar(select(Admin).where(Admin.email == (email or "").strip().lower()))


def list_admins() -> list[Admin]:
    return list(db.session.scalars(select(Admin).order_by(Admin.email)))


def _fail(admin: Admin, now: datetime) -> None:
    """Count one failure in one statement (two browsers cannot both miss it); the fifth in
    a row locks the account for :data:`LOCKOUT` and starts the count again."""
    failures = db.session.execute(
        update(Admin).where(Admin.id == admin.id)
        .values(failed_logins=Admin.failed_logins + 1).returning(Admin.failed_logins)).scalar()
    if failures is not None and failures >= MAX_FAILURES:
        db.session.execute(update(Admin).where(Admin.id == admin.id)
                           .values(failed_logins=0, locked_until=now + LOCKOUT))
        db.session.commit()
        raise LockedOut(now + LOCKOUT)
    db.session.commit()


def check_password(email: str, password: str, now: datetime | None = None) -> SignIn:
    """The first step of signing in. Raises :class:`LockedOut` while the account is locked
    (the password is not even checked), :class:`SignInRefused` otherwise."""
    now = now or utcnow()
    # PostgreSQL refuses NUL in a query parameter: such an address is no admin's.
    admin = find_admin(email) if len(email or "") <= 320 and "\0" not in (email or "") \
        else None
    password = (password or "")[:PASSWORD_MAX + 1]
    if admin is None or admin.disabled_at is not None:
        check_password_hash(_DUMMY_HASH, password)
        raise SignInRefused()
    if admin.locked_until is not None and admin.locked_until > now:
        raise LockedOut(admin.locked_until)
    if not check_password_hash(admin.password_hash, password):
        _fail(admin, now)
        raise SignInRefused()
    return SignIn(admin=admin, needs_code=admin.totp_secret is not None)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    import pyotp

    code = (code or "").strip().replace(" ", "")
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // TOTP_STEP
    for step in (current - 1, current, current + 1):  # one step of clock drift either way
        if hmac.compare_digest(totp.at(step * TOTP_STEP), code):
            return step
    return None


def check_code(admin_id: int, code: str, now: datetime | None = None) -> Admin:
    """The second step: a TOTP code not used before (a code seen once is refused, so a
    code read over a shoulder cannot be replayed). Failures count toward the lockout."""
    now = now or utcnow()
    admin = get_admin(admin_id)
    if admin is None or admin.totp_secret is None:
        raise SignInRefused()
    if admin.locked_until is not None and admin.locked_until > now:
        raise LockedOut(admin.locked_until)
    step = _matching_step(admin.totp_secret, code, now)
    if step is None or (admin.totp_last_step is not None and step <= admin.totp_last_step):
        _fail(admin, now)
        raise SignInRefused()
    # Compare-and-set, so the same code sent twice at once signs in only once.
    done = db.session.execute(
        update(Admin).where(Admin.id == admin.id,
                            (Admin.totp_last_step.is_(None)) | (Admin.totp_last_step < step))
        .values(totp_last_step=step)).rowcount
    db.session.commit()
    if done != 1:
        raise SignInRefused()
    return admin


def signed_in(admin: Admin, now: datetime | None = None) -> None:
    """Record a completed sign-in: the failure count starts again."""
    admin.failed_logins = 0
    admin.locked_until = None
    admin.last_login_at = now or utcnow()
    db.session.commit()


def start_totp(admin: Admin) -> str:
    """A new secret waiting for its first code; the current factor (if any) stays until
    :func:`confirm_totp`. Returns the ``otpauth://`` URI for the QR code."""
    import pyotp

    admin.totp_pending = pyotp.random_base32()
    db.session.commit()
    return totp_uri(admin, admin.totp_pending)


def totp_uri(admin: Admin, secret: str, issuer: str = "Newsletter admin") -> str:
    import pyotp

    return pyotp.TOTP(secret).provisioning_uri(name=admin.email, issuer_name=issuer)


def confirm_totp(admin: Admin, code: str, now: datetime | None = None) -> bool:
    """Turn the pending secret on when ``code`` is one of its codes."""
    now = now or utcnow()
    if not admin.totp_pending:
        return False
    step = _matching_step(admin.totp_pending, code, now)
    if step is None:
        return False
    admin.totp_secret, admin.totp_pending, admin.totp_last_step = admin.totp_pending, None, step
    db.session.commit()
    return True


def disable_totp(admin: Admin) -> None:
    admin.totp_secret = admin.totp_pending = admin.totp_last_step = None
    db.session.commit()


def set_password(admin: Admin, password: str) -> None:
    problem = password_problem(password, admin.email)
    if problem:
        raise AccountError(problem)
    admin.password_hash = generate_password_hash(password, method=HASH_METHOD)
    # A new password signs out every other browser. Raised in the statement, not from the
    # value read earlier: a "sign out everywhere" meanwhile must not be undone.
    admin.session_epoch = Admin.session_epoch + 1
    db.session.commit()


def sign_out_everywhere(admin: Admin) -> None:
    """Every session of this admin, in every browser, stops working at its next request."""
    db.session.execute(update(Admin).where(Admin.id == admin.id)
                       .values(session_epoch=Admin.session_epoch + 1))
    db.session.commit()


def new_demo_password() -> str:
    return "-".join(secrets.token_urlsafe(6) for _ in range(3))
