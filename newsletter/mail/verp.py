"""Signed ids for return paths and headers: a short token that names a row (a delivery, a
reader) and proves we made it. Short enough for an address local part
(``bounces+1a2b-Xy9…@domain``), unguessable, checked in constant time, and verifiable with
every configured key so key rotation does not orphan mail already sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

TOKEN_RE = re.compile(r"^([0-9a-z]{1,13})-([A-Za-z0-9_-]{10})$")


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class IdTokens:
    """``<id in base 36>-<10 chars of HMAC-SHA256>`` for one purpose (the purpose is part of
    the key, so a token of one kind never reads as another)."""

    def __init__(self, keys: Sequence[str], *, purpose: str):
        self._keys = [hashlib.sha256(purpose.encode() + k.encode()).digest() for k in keys]

    @staticmethod
    def _mac(key: bytes, delivery_id: int) -> str:
        digest = hmac.new(key, str(delivery_id).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest)[:10].decode()

    def make(self, delivery_id: int) -> str:
        return f"{_b36(delivery_id)}-{self._mac(self._keys[0], delivery_id)}"

    def read(self, token: str) -> int | None:
        """The id, or None for a malformed or forged token."""
        match = TOKEN_RE.match(token or "")
        if not match:
            return None
        delivery_id = int(match.group(1), 36)
        mac = match.group(2)
        if any(hmac.compare_digest(mac, self._mac(key, delivery_id)) for key in self._keys):
            return delivery_id
        return None
