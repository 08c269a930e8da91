"""Signed tokens in readers' links: one salt per purpose, key rotation, clear failures.

Keys come newest first (``NEWSLETTER_SECRET_KEYS``); the newest signs, every key verifies,
so rotating a key does not break the links already in inboxes. Unsubscribe tokens carry no
timestamp and never expire; the others do.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from newsletter.errors import Invalid


class Purpose(StrEnum):
    CONFIRM = "confirm"            # double opt-in link
    MANAGE = "manage"              # magic link into the preference centre
    EMAIL_CHANGE = "email-change"  # confirms a new address
    EMAIL_UNDO = "email-undo"      # to the old address: puts it back (UNDO_MAX_AGE)
    UNSUBSCRIBE = "unsubscribe"    # List-Unsubscribe and footer link; never expires


# How long the old address can undo an address change: at least a week, since a reader
# may be away when a stranger moves their subscription.
UNDO_MAX_AGE_DAYS = 14


class TokenInvalid(Invalid):
    """Forged, tampered, for another purpose, or malformed."""


class TokenExpired(TokenInvalid):
    """Genuine but too old."""


class Tokens:
    def __init__(self, keys: Sequence[str], max_age: dict[Purpose, int]):
        if not keys:
            raise ValueError("at least one secret key is needed")
        # itsdangerous signs with the last key of the list and verifies with all of them.
        self._keys = list(reversed(keys))
        self._max_age = max_age
        # Built once: senders make two tokens per message, so no per-call construction.
        self._serializers = {purpose: self._build(purpose) for purpose in Purpose}

    def _build(self, purpose: Purpose):
        salt = f"newsletter.{purpose.value}"
        if purpose is Purpose.UNSUBSCRIBE:
            return URLSafeSerializer(self._keys, salt=salt)
        return URLSafeTimedSerializer(self._keys, salt=salt)

    def _serializer(self, purpose: Purpose):
        return self._serializers[purpose]

    def make(self, purpose: Purpose, payload: dict[str, Any]) -> str:
        return self._serializer(purpose).dumps(payload)

    def read(self, purpose: Purpose, token: str) -> dict[str, Any]:
        """Return the payload; raise ``TokenExpired`` or ``TokenInvalid``."""
        if not token or len(token) > 1000:
            raise TokenInvalid("malformed token")
        serializer = self._serializer(purpose)
        try:
            if purpose is Purpose.UNSUBSCRIBE:
                payload = serializer.loads(token)
            else:
                payload = serializer.loads(token, max_age=self._max_age[purpose])
        except SignatureExpired:
            raise TokenExpired("this link has expired") from None
        except BadSignature:
            raise TokenInvalid("this link is not valid") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("r"), int):
            raise TokenInvalid("this link is not valid")
        return payload
