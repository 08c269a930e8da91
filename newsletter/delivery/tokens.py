"""Delivery tokens: a delivery's id plus a MAC, for VERP bounces, tracking and webhooks.

``<id in base 36>-<10 chars of HMAC-SHA256>``: short enough for an address local part
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
# The Message-ID of every list message: <token.edition id@mail domain>.
_MESSAGE_ID_RE = re.compile(
    r"\s*<?([0-9a-z]{1,13}-[A-Za-z0-9_-]{10})\.\d{1,19}@[^<>\s]{1,255}>?\s*")


def message_id_local(token: str, edition_id: int) -> str:
    """The local part of a list message's Message-ID; it carries the delivery's token."""
    return f"{token}.{edition_id}"


def token_from_message_id(message_id: str | None) -> str | None:
    """The delivery token a Message-ID of ours carries, unchecked (``read`` checks it);
    None for any other Message-ID."""
    match = _MESSAGE_ID_RE.fullmatch(message_id or "")
    return match.group(1) if match else None


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class DeliveryTokens:
    def __init__(self, keys: Sequence[str]):
        self._keys = [hashlib.sha256(b"delivery-token:" + k.encode()).digest() for k in keys]

    @staticmethod
    def _mac(key: bytes, delivery_id: int) -> str:
        digest = hmac.new(key, str(delivery_id).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest)[:10].decode()

    def make(self, delivery_id: int) -> str:
        return f"{_b36(delivery_id)}-{self._mac(self._keys[0], delivery_id)}"

    def read(self, token: str) -> int | None:
        """The delivery id, or None for a malformed or forged token."""
        match = TOKEN_RE.match(token or "")
        if not match:
            return None
        delivery_id = int(match.group(1), 36)
        mac = match.group(2)
        if any(hmac.compare_digest(mac, self._mac(key, delivery_id)) for key in self._keys):
            return delivery_id
        return None
