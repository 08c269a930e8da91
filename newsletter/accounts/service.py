"""API tokens: created once (the secret is shown once), checked by hash, revoked by name.

Tokens are 32 random bytes, so a fast hash (SHA-256) is the right tool: there is nothing
to brute-force, and lookups stay a single indexed query.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from newsletter.accounts.models import ApiToken
from newsletter.db import db, utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_PREFIX = "nl_"  # noqa: S105 - a public prefix, not a secret
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class TokenError(ValueError):
    """A token name is malformed, taken or unknown."""


@dataclass(frozen=True)
class NewToken:
    name: str
    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(name: str) -> NewToken:
    """Create a token called ``name``; the returned secret is never stored or shown again."""
    if not _NAME_RE.match(name or ""):
        raise TokenError(
            "a token name is 1-100 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if db.session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise TokenError(f"a token named {name!r} exists already")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(name=name, token_hash=_hash(secret), prefix=secret[:8]))
    db.session.commit()
    return NewToken(name=name, secret=secret)


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


def revoke_token(name: str) -> None:
    token = db.session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise TokenError(f"no token named {name!r}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()


def list_tokens() -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.name)))
