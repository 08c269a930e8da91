"""Email addresses: validation, the one normal form we store, and the keyed hash."""

from __future__ import annotations

import hashlib
import hmac

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import Invalid

MAX_EMAIL_LENGTH = 254


class InvalidAddress(Invalid, ValueError):
    """The address cannot receive mail; the message says why, for the reader."""


NON_ASCII_LOCAL_PART = ("We cannot send to an address with letters outside A–Z before the "
                        "@ yet. Please use another address.")


def normalise_email(raw: str, *, check_deliverability: bool = False) -> str:
    """Return the address in the form we store: lowercased, the domain in its ASCII (IDNA)
    form — ``user@bücher.de`` is stored as ``user@xn--bcher-kva.de``, which every relay
    and header accepts, and a look-alike domain (a Cyrillic "а" in "exаmple") shows as
    what it is. A local part outside ASCII needs SMTPUTF8 from every server on the way,
    which we do not offer: such an address is refused with :data:`NON_ASCII_LOCAL_PART`.

    Local parts are case-sensitive in theory and case-insensitive at every provider that
    matters; lowercasing means one reader cannot subscribe twice as Ada@ and ada@.
    """
    if not isinstance(raw, str):
        raise InvalidAddress("Enter an email address.")
    text = raw.strip()
    if not text:
        raise InvalidAddress("Enter an email address.")
    if len(text) > MAX_EMAIL_LENGTH:
        raise InvalidAddress(f"An email address has at most {MAX_EMAIL_LENGTH} characters.")
    if any(ch in text for ch in "\r\n\0"):
        raise InvalidAddress("An email address cannot contain line breaks.")
    try:
        result = validate_email(text, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    if result.ascii_email is None:
        raise InvalidAddress(NON_ASCII_LOCAL_PART)
    return result.ascii_email.lower()


def email_hash(email: str, key: bytes) -> str:
    """HMAC-SHA256 of the normalised address: comparable, but not reversible without the key."""
    return hmac.new(key, email.encode("utf-8"), hashlib.sha256).hexdigest()
