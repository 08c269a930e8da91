"""The shape of a validation problem, shared by every domain that checks input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from newsletter.errors import Invalid


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidInput(Invalid, ValueError):
    """Input has problems; ``errors`` lists every one of them, each naming its field."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))

    def for_field(self, name: str) -> str | None:
        return next((e.message for e in self.errors if e.field == name), None)


def single_line(name: str, value: object, limit: int, errors: list[FieldError]) -> str | None:
    """``value`` stripped, if it is one line of text of at most ``limit`` characters;
    otherwise None, with the reason added to ``errors``."""
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be text"))
        return None
    if len(value) > limit:
        errors.append(FieldError(name, f"is longer than {limit} characters"))
        return None
    if any(ch in value for ch in "\r\n\0"):
        errors.append(FieldError(name, "must be a single line"))
        return None
    return value.strip()


def whole_number(text: object, low: int, high: int) -> int | None:
    """``text`` as an int in [low, high], or None. Only ASCII digits count: ``"²".isdigit()``
    is true and ``int("²")`` raises; ``int()`` of a 5,000-digit string raises too."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit():
        return None
    if len(text.lstrip("0")) > len(str(high)):
        return None
    value = int(text)
    return value if low <= value <= high else None


# Largest id any table holds (a signed 64-bit integer): a bigger one is no row, not a crash.
MAX_ID = 2**63 - 1
MAX_JSON_DEPTH = 64
_MAX_JSON_DIGITS = 20  # 2**64 has 20 digits (Postmark ids have 19)


class JsonRefused(Invalid, ValueError):
    """The body is JSON we will not read (too deep, a number too long, broken text)."""


def _int_of_bounded_length(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_JSON_DIGITS:
        raise JsonRefused(f"has a number longer than {_MAX_JSON_DIGITS} digits")
    return int(text)


def load_json(raw: bytes | str) -> object:
    """``json.loads`` for bodies from outside: at most :data:`MAX_JSON_DEPTH` levels, no
    integer past 20 digits, no lone surrogate in any string. Raises ``json.JSONDecodeError``
    or ``UnicodeDecodeError`` for broken input and :class:`JsonRefused` for the rest."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text, parse_int=_int_of_bounded_length)
    except RecursionError:  # the C decoder stops itself about 1,000 levels down
        raise JsonRefused("is nested too deeply") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise JsonRefused(f"is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise JsonRefused("holds text that is not valid Unicode (a lone surrogate)") from None
    return value


def _depth(value: object) -> int:
    """How deeply lists and objects nest in a parsed JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def aware_datetime(text: object) -> datetime:
    """An ISO 8601 date-time with an offset, in UTC. Raises ``ValueError`` with a reason for
    text that is not one, has no offset, or falls outside years 1–9998 once in UTC."""
    if not isinstance(text, str):
        raise ValueError("is not an ISO 8601 date-time")
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError("needs a timezone offset, e.g. 2026-11-27T00:00:00Z")
    try:
        moment = parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not 1 < moment.year < 9999:
        raise ValueError("is out of range")
    return moment
