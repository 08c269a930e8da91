"""Admin accounts: creation with a password policy, sign-in with throttling and a temporary
lockout, an optional TOTP second factor, and signing out of every browser.

Passwords are kept as werkzeug scrypt hashes. A failed sign-in says the same thing whether
the address is known or not, costs the same hash either way, and is audited; the lockout
counts per typed address and IP address (``SignInFailure``), so it locks out the one
guessing, not the owner elsewhere. Sessions: ``accounts.sessions``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from werkzeug.security import check_password_hash, generate_password_hash

from newsletter.accounts import audit, sessions
from newsletter.accounts.models import Admin, SignInFailure
from newsletter.accounts.roles import ROLES
from newsletter.db import db, utcnow
from newsletter.errors import Invalid

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
UNKNOWN_ADDRESS = "(an address with no account)"
_DUMMY_HASH = generate_password_hash("not-a-password-anyone-has", method=HASH_METHOD)


class AccountError(Invalid, ValueError):
    """An account cannot be created or changed as asked; the message says why."""


class SignInRefused(Invalid):
    """Wrong address, password or code (deliberately one message for all three)."""


class LockedOut(SignInRefused):
    def __init__(self, until: datetime):
        super().__init__(f"locked until {until.isoformat(timespec='minutes')}")
        self.until = until


@dataclass(frozen=True)
class Where:
    """Which step of signing in failed, from which IP address (for the audit log), and
    what its failures count against besides the address (``counted``)."""

    ip: str
    step: str  # "sign-in" (the password) or "code"
    counted: str

    @classmethod
    def password(cls, ip: str | None) -> Where:
        return cls(ip or "-", "sign-in", network_of(ip))

    @classmethod
    def code(cls, ip: str | None) -> Where:
        # Whoever reaches the code step knew the password: wrong codes count for the
        # account from every IP together, so a guesser cannot spread them over addresses.
        return cls(ip or "-", "code", ANY_IP)


ANY_IP = "*"


def network_of(ip: str | None) -> str:
    """The IP address the lockout counts against: an IPv4 address, or an IPv6 one's /64
    (one machine commonly holds a whole /64)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return ip or "-"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


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


def account_key(email: str) -> str:
    """What the lockout counts against: a hash of the typed address, known or not."""
    return hashlib.sha256((email or "").strip().lower().encode("utf-8", "replace")).hexdigest()


def _locked_until(account: str, ip: str, now: datetime) -> datetime | None:
    return db.session.scalar(select(SignInFailure.locked_until).where(
        SignInFailure.account == account, SignInFailure.ip == ip,
        SignInFailure.locked_until > now))


def _count_failure(account: str, ip: str, now: datetime) -> datetime | None:
    """Count one failure for this address from this IP, in one statement (two browsers
    cannot both miss it); the fifth in a row locks that pair for :data:`LOCKOUT` and
    starts the count again. Returns the end of the lock it started, or None."""
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(insert(SignInFailure).values(account=account, ip=ip, failures=0,
                                                    first_at=now)
                       .on_conflict_do_nothing(index_elements=["account", "ip"]))
    failures = db.session.execute(
        update(SignInFailure)
        .where(SignInFailure.account == account, SignInFailure.ip == ip)
        .values(failures=SignInFailure.failures + 1)
        .returning(SignInFailure.failures)).scalar()
    if failures is not None and failures >= MAX_FAILURES:
        until = now + LOCKOUT
        db.session.execute(update(SignInFailure).where(
            SignInFailure.account == account, SignInFailure.ip == ip)
            .values(failures=0, locked_until=until))
        return until
    return None


def _refuse(account: str, where: Where, admin: Admin | None, now: datetime) -> NoReturn:
    """Count the failure, audit it (and the lockout it may start), commit, raise."""
    until = _count_failure(account, where.counted, now)
    actor = audit.AdminActor(admin_id=admin.id if admin else None,
                             name=admin.email if admin else UNKNOWN_ADDRESS, ip=where.ip)
    audit.record(actor, f"{where.step} refused", commit=False)
    if until is not None:
        audit.record(actor, "locked out", detail={"minutes": int(LOCKOUT.total_seconds()) // 60},
                     commit=False)
    db.session.commit()
    if until is not None:
        raise LockedOut(until)
    raise SignInRefused()


def clear_failures(email: str) -> None:
    """Lift every lockout of this address, from every IP (an owner's "enable", the
    ``unlock`` command); uncommitted."""
    db.session.execute(delete(SignInFailure).where(SignInFailure.account == account_key(email)))


def forget_old_failures(now: datetime, keep: timedelta = timedelta(days=1)) -> int:
    """Housekeeping (uncommitted): counts not added to for ``keep`` whose lock (if any)
    is over. A guess a day, five days in a row, is no attack to lock out."""
    return db.session.execute(delete(SignInFailure).where(
        SignInFailure.first_at < now - keep,
        (SignInFailure.locked_until.is_(None)) | (SignInFailure.locked_until < now))).rowcount


def is_locked(email: str, now: datetime | None = None) -> bool:
    """Whether this address is locked from at least one IP address."""
    return db.session.scalar(select(SignInFailure.id).where(
        SignInFailure.account == account_key(email),
        SignInFailure.locked_until > (now or utcnow())).limit(1)) is not None


def check_password(email: str, password: str, ip: str | None = None,
                   now: datetime | None = None) -> SignIn:
    """The first step of signing in, from ``ip``. Raises :class:`LockedOut` while this
    address is locked from this IP, :class:`SignInRefused` otherwise.

    Known and unknown addresses take the same path: one scrypt hash is computed (the
    admin's or a dummy one), a failure is counted for the typed address and this IP, and
    the fifth locks that pair alone. So the answer and its time tell nothing, and nobody
    can lock an owner out of other networks."""
    now = now or utcnow()
    where = Where.password(ip)
    email = email or ""
    account = account_key(email)
    # PostgreSQL refuses NUL in a query parameter: such an address is no admin's.
    admin = find_admin(email) if len(email) <= 320 and "\0" not in email else None
    if admin is not None and admin.disabled_at is not None:
        admin = None
    password = (password or "")[:PASSWORD_MAX + 1]
    locked = _locked_until(account, where.counted, now)
    if locked is not None or admin is None:
        check_password_hash(_DUMMY_HASH, password)
        if locked is not None:
            audit.record(audit.AdminActor(admin.id if admin else None,
                                          admin.email if admin else UNKNOWN_ADDRESS, where.ip),
                         "sign-in refused", detail={"locked": True})
            raise LockedOut(locked)
        _refuse(account, where, None, now)
    if not check_password_hash(admin.password_hash, password):
        _refuse(account, where, admin, now)
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


def check_code(admin_id: int, code: str, ip: str | None = None,
               now: datetime | None = None) -> Admin:
    """The second step: a TOTP code not used before (a code seen once is refused, so a
    code read over a shoulder cannot be replayed). Failures count toward the lockout of
    the admin's address from ``ip``."""
    now = now or utcnow()
    where = Where.code(ip)
    admin = get_admin(admin_id)
    if admin is None or admin.totp_secret is None:
        raise SignInRefused()
    account = account_key(admin.email)
    locked = _locked_until(account, where.counted, now)
    if locked is not None:
        raise LockedOut(locked)
    step = _matching_step(admin.totp_secret, code, now)
    if step is None or (admin.totp_last_step is not None and step <= admin.totp_last_step):
        _refuse(account, where, admin, now)
    # Compare-and-set, so the same code sent twice at once signs in only once.
    done = db.session.execute(
        update(Admin).where(Admin.id == admin.id,
                            (Admin.totp_last_step.is_(None)) | (Admin.totp_last_step < step))
        .values(totp_last_step=step)).rowcount
    db.session.commit()
    if done != 1:
        raise SignInRefused()
    return admin


def signed_in(admin: Admin, ip: str | None = None, now: datetime | None = None) -> None:
    """Record a completed sign-in (uncommitted): the failure count of this address from
    this IP starts again."""
    db.session.execute(delete(SignInFailure).where(
        SignInFailure.account == account_key(admin.email),
        SignInFailure.ip.in_([network_of(ip), ANY_IP])))
    admin.last_login_at = now or utcnow()


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


def set_password(admin: Admin, password: str, *, keep_session: int | None = None) -> None:
    """A new password; every browser signed in as ``admin`` is signed out, but for the
    session ``keep_session`` (the one that changed it)."""
    problem = password_problem(password, admin.email)
    if problem:
        raise AccountError(problem)
    admin.password_hash = generate_password_hash(password, method=HASH_METHOD)
    sessions.close_sessions(admin.id, keep=keep_session)
    db.session.commit()


def new_demo_password() -> str:
    return "-".join(secrets.token_urlsafe(6) for _ in range(3))
