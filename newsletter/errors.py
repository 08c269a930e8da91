"""The one base of the errors domain code raises, in four kinds an entry point maps once.

* :class:`Invalid` — what was sent cannot be used (a field, a file, a link, a signature);
  the sender can fix it. HTTP 400 or 422, a command's usage error.
* :class:`Conflict` — well-formed, but the state of things refuses it now (an edition no
  longer a draft, a key reused with another body, a suppressed address). HTTP 409.
* :class:`NotFound` — what it names does not exist. HTTP 404.
* :class:`Unavailable` — something outside is down (a relay, Stripe, a feed); trying
  again later may work. HTTP 503.

Every domain error class derives from one of them (keeping the built-in base it had, such
as ``ValueError``, so existing handlers keep working). ``kind`` names the kind in answers.
"""

from __future__ import annotations

from typing import ClassVar


class NewsletterError(Exception):
    """Raised by domain code; ``kind`` says which of the four it is."""

    kind: ClassVar[str] = "invalid"


class Invalid(NewsletterError):
    kind = "invalid"


class Conflict(NewsletterError):
    kind = "conflict"


class NotFound(NewsletterError):
    kind = "not_found"


class Unavailable(NewsletterError):
    kind = "unavailable"


class SignatureError(Invalid):
    """A webhook or report whose signature does not verify: not ours, changes nothing
    (Stripe's and every mail provider's, one class)."""


class PayloadError(Invalid, ValueError):
    """A signed webhook whose body cannot be read (Stripe's and every provider's)."""
