"""Delivery tokens: a delivery's id plus a MAC, for VERP bounces, tracking and webhooks.

``<id in base 36>-<10 chars of HMAC-SHA256>``: short enough for an address local part
(``bounces+1a2b-Xy9…@domain``), unguessable, checked in constant time, and verifiable with
every configured key so key rotation does not orphan mail already sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from newsletter.mail.verp import IdTokens

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


class DeliveryTokens(IdTokens):
    """Tokens of deliveries (list mail)."""

    def __init__(self, keys: Sequence[str]):
        super().__init__(keys, purpose="delivery-token:")
