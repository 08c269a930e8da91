"""The kind of a DSN (RFC 3464) recipient block, from its Action and Status read together.

A plain function of the report's fields: no parsing, no database. The kinds are those of
:mod:`newsletter.delivery.events`.
"""

from __future__ import annotations

import re

from newsletter.delivery.events import DEFERRED, DELIVERED, HARD_BOUNCE, SOFT_BOUNCE, UNKNOWN

__all__ = ["classify_dsn_status", "normalise_status"]

_STATUS_RE = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_RE = re.compile(r"\s*([245])\d\d(?:[ -]+([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]))?(?![\d.])")
_DELIVERED_ACTIONS = frozenset({"delivered", "relayed", "expanded"})
# Class-5 subjects that say nothing against the address (RFC 3463 calls X.2.2, X.3.1 and X.4.7
# "useful only as a persistent transient error"; the rest refuse this message or this sender).
_SOFT_PERMANENT = frozenset({"2.2", "2.3", "3.1", "3.4", "4.7"})
_SOFT_PERMANENT_CLASSES = ("6.", "7.")


def classify_dsn_status(action: str | None, status: str | None, *,
                        diagnostic: str | None = None) -> str:
    """The kind of a DSN recipient block, from its Action and Status read together.

    * ``delayed`` -> ``deferred``; ``delivered``, ``relayed``, ``expanded`` -> ``delivered``.
    * ``failed`` + ``4.x.x`` -> ``soft_bounce`` (a transient problem the relay gave up on).
    * ``failed`` + ``5.x.x`` -> ``hard_bounce``, except these subjects, which say nothing
      against the address and are ``soft_bounce``: X.2.2 mailbox full, X.3.1 mail system
      full, X.4.7 delivery time expired (RFC 3463: "useful only as a persistent transient
      error"); X.2.3 and X.3.4 message too big, X.6.x content; X.7.x security or policy
      (spam filters, blocklists, DMARC: a refusal of our mail, not of the reader - the caller
      should escalate repeated soft bounces, not suppress on one).
    * When Status is missing, or is the catch-all X.0.0, a ``diagnostic`` of the form
      ``smtp; 550 5.1.1 …`` decides: its enhanced code if it agrees with the reply's class,
      else the reply's class alone (``550`` -> hard, ``450`` -> soft).
    * ``failed`` with no usable code, ``failed`` + ``2.x.x``, a missing or unknown Action ->
      ``unknown``.
    """
    act = (action or "").strip().lower()
    if act == "delayed":
        return DEFERRED
    if act in _DELIVERED_ACTIONS:
        return DELIVERED
    if act != "failed":
        return UNKNOWN
    code = normalise_status(status)
    if code is None or code.endswith(".0.0"):
        detailed = _diagnostic_code(diagnostic)
        if detailed and (code is None or (detailed[0] == code[0] and detailed != code)):
            code = detailed
    if code is None:
        return UNKNOWN
    klass, subject = code[0], code[2:]
    if klass == "4":
        return SOFT_BOUNCE
    if klass == "5":
        if subject in _SOFT_PERMANENT or subject.startswith(_SOFT_PERMANENT_CLASSES):
            return SOFT_BOUNCE
        return HARD_BOUNCE
    return UNKNOWN


def normalise_status(value: str | None) -> str | None:
    """A DSN Status as ``"5.1.1"`` (leading zeros dropped), or None when it is not one."""
    match = _STATUS_RE.match(value or "")
    if not match:
        return None
    return ".".join(str(int(group)) for group in match.groups())


def _diagnostic_code(value: str | None) -> str | None:
    """``smtp; 550 5.1.1 …`` -> ``"5.1.1"``; ``smtp; 550 …`` -> ``"5.0.0"``."""
    if not value:
        return None
    kind, sep, text = value.partition(";")
    if sep and kind.strip().lower() not in ("smtp", "x-smtp"):
        return None
    match = _REPLY_RE.match(text if sep else value)
    if not match:
        return None
    reply_class, enhanced_class, subject, detail = match.groups()
    if enhanced_class == reply_class:
        return f"{reply_class}.{int(subject)}.{int(detail)}"
    return f"{reply_class}.0.0"
