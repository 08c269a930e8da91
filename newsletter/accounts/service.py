"""API tokens: created once (the secret is shown once) with the scopes they may use, checked
by hash, revoked by name. Creating and revoking are audited in the same commit as the change.

Tokens are 32 random bytes, so a fast hash (SHA-256) is the right tool: there is nothing
to brute-force, and lookups stay a single indexed query.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from newsletter.accounts import audit, scopes
from newsletter.accounts.models import ApiToken
from newsletter.accounts.scopes import Scope
from newsletter.db import db, utcnow
from newsletter.errors import Invalid

LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_PREFIX = "nl_"  # noqa: S105 - a public prefix, not a secret
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class TokenError(Invalid, ValueError):
    """A token name is malformed, taken or unknown, or its scopes are none."""


@dataclass(frozen=True)
class NewToken:
    name: str
    secret: str
    scopes: tuple[str, ...]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(name: str, granted: Iterable[Scope] = scopes.DEFAULT, *,
                 actor: audit.AdminActor) -> NewToken:
    """Create a token called ``name`` holding ``granted`` (ingest only unless told); the
    returned secret is never stored or shown again. Raises :class:`TokenError` with nothing
    written for a bad or taken name or no scope at all."""
    if not _NAME_RE.match(name or ""):
        raise TokenError(
            "a token name is 1-100 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    held = scopes.ordered(granted)
    if not held:
        raise TokenError("a token needs at least one scope")
    if db.session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise TokenError(f"a token named {name!r} exists already")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(name=name, token_hash=_hash(secret), prefix=secret[:8],
                            scopes=held))
    audit.record(actor, "created api token", f"api token {name}", {"scopes": held},
                 commit=False)
    db.session.commit()
    return NewToken(name=name, secret=secret, scopes=tuple(held))


def authenticate(secret: str) -> ApiToken | None:
    """Return the live token whose secret this is, or None; records when it was last used."""
    if not secret or len(secret) > 200:
        return None
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _hash(secret), ApiToken.revoked_at.is_(None))
    )
    now = utcnow()
    # Record use at most once a minute, so a busy client does not turn reads into writes.
    if token is not None and (token.last_used_at is None
                              or now - token.last_used_at > LAST_USED_RESOLUTION):
        token.last_used_at = now
        db.session.commit()
    return token


def revoke_token(name: str, *, actor: audit.AdminActor) -> bool:
    """Revoke the token called ``name`` (True), or say it was revoked already (False);
    raises :class:`TokenError` for an unknown name."""
    token = db.session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise TokenError(f"no token named {name!r}")
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    audit.record(actor, "revoked api token", f"api token {name}", commit=False)
    db.session.commit()
    return True


def get_token(token_id: int) -> ApiToken | None:
    return db.session.get(ApiToken, token_id) if 0 < token_id < 2**62 else None


def list_tokens() -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.name)))
