"""The one send policy: what a relay's reply or a DSN's status means, how long to wait
before trying again, and which outcomes put an address on the suppression list — for list
mail (``delivery.sender``) and account mail (``subscribers.outbox``) alike, and for reports
that come back later (``delivery.bounces``, the providers' webhooks).

Plain functions of codes and texts: no database, no settings.

* A reply is read by its enhanced status code (RFC 3463) when it has one, else by its class:
  2xx → sent; 4xx, timeouts, refused or dropped connections → try again later (with
  :func:`retry_delay`); 5xx → bounced, never retried, and then by subject: ``X.1.x``
  (bad address: no such user, bad domain) and the other permanent subjects → a **hard
  bounce**, which suppresses at once; mailbox full (X.2.2), system full (X.3.1), expired
  (X.4.7), message too big (X.2.3, X.3.4), content (X.6.x) and policy (X.7.x: spam
  filters, blocklists, DMARC) say nothing against the address → a **soft bounce**, and
  ``NEWSLETTER_SOFT_BOUNCE_LIMIT`` of those within the window suppress.
* The same reply gets the same verdict whether it came at RCPT, at DATA, or later in a DSN.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = ["DEFERRED", "DELIVERED", "HARD_BOUNCE", "SOFT_BOUNCE", "UNKNOWN", "Verdict",
           "classify_dsn_status", "judge_reply", "normalise_status", "retry_delay"]

HARD_BOUNCE = "hard_bounce"
SOFT_BOUNCE = "soft_bounce"
DELIVERED = "delivered"
DEFERRED = "deferred"
UNKNOWN = "unknown"

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


_ENHANCED_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


@dataclass(frozen=True)
class Verdict:
    """What one reply means. ``outcome``: ``sent``, ``retry`` or ``bounced``; ``bounce``:
    ``hard_bounce`` or ``soft_bounce`` for a bounced one (None otherwise); ``status``: the
    enhanced status it was judged by (``"5.1.1"``), when the reply had one."""

    outcome: str
    bounce: str | None = None
    status: str | None = None

    @property
    def suppresses(self) -> bool:
        """Whether this reply alone puts the address on the suppression list."""
        return self.bounce == HARD_BOUNCE


def judge_reply(code: int | None, text: str = "") -> Verdict:
    """The verdict on one relay reply: ``code`` is the SMTP code (None: no reply at all — a
    refused, timed-out or dropped connection), ``text`` the reply's text, which may carry an
    enhanced status (``"RCPT TO a@b: 5.1.1 <a@b>: Recipient address rejected"``)."""
    if code is not None and 200 <= code < 300:
        return Verdict("sent")
    if code is None or not 500 <= code < 600:
        return Verdict("retry")  # no reply, 4xx, or a code no relay should send
    match = _ENHANCED_RE.search(text or "")
    status = (".".join(str(int(g)) for g in match.groups())
              if match and match.group(1) == "5" else "5.0.0")
    kind = classify_dsn_status("failed", status)
    return Verdict("bounced", SOFT_BOUNCE if kind == SOFT_BOUNCE else HARD_BOUNCE, status)


def retry_delay(attempt: int, *, base: float, cap: float, factor: float = 2.0,
                jitter: float = 0.2) -> float:
    """Seconds to wait after the ``attempt``-th failed try (1 for the first): ``base``
    times ``factor`` for each earlier try, at most ``cap``, spread by ±``jitter`` so many
    messages that failed together do not come back together."""
    delay = min(base * factor ** max(attempt - 1, 0), cap)
    return delay * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 - jitter, not security
