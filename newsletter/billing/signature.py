"""Stripe's webhook signature: ``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>…]``.

``v1`` is HMAC-SHA256, keyed with the endpoint's signing secret, of ``"<t>." + raw body``.
Stripe sends several ``v1`` values while a secret is being rolled; any one that matches any
of our secrets (also several, during a roll) is enough. A timestamp more than
``tolerance`` seconds from now (300 by default, Stripe's own) is refused, so a captured
request cannot be replayed later; inside the window the event id, stored once, stops
replays.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from newsletter.errors import SignatureError

TOLERANCE_SECONDS = 300
MAX_HEADER = 4096




def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``v1`` value Stripe would send for ``body`` at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secrets: Sequence[str], now: float,
           tolerance: int = TOLERANCE_SECONDS) -> int:
    """Check ``header`` against the raw ``body``; return its timestamp or raise
    :class:`SignatureError` saying why."""
    if not secrets or not all(secrets):
        raise ValueError("no Stripe webhook signing secret is configured")
    if not header:
        raise SignatureError("no Stripe-Signature header")
    if len(header) > MAX_HEADER:
        raise SignatureError("Stripe-Signature header too long")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value.strip())
    if timestamp is None:
        raise SignatureError("Stripe-Signature has no timestamp")
    if not candidates:
        raise SignatureError("Stripe-Signature has no v1 signature")
    expected = [sign(body, secret, timestamp) for secret in secrets]
    if not any(hmac.compare_digest(candidate.encode(), mine.encode())
               for candidate in candidates for mine in expected):
        raise SignatureError("no v1 signature matches")
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp is {int(now - timestamp)} s from now, outside "
                             f"±{tolerance} s")
    return timestamp
