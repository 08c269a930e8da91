"""The emails a reader gets about their subscription (not list mail): confirmation, sign-in
link, address-change confirmation. Rendered once per kind; the link is a personal value.

Account mail is its own stream for mailbox providers: its own From
(``NEWSLETTER_ACCOUNT_MAIL_FROM``, default the list's), its own return path
``bounces+acct_<token>@<bounce domain>`` (the token names the reader and proves the mail
is ours, so its bounces are processed like the list's), its own ``Feedback-ID``
(``<kind>:account:newsletter:<sender>``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from newsletter.mail import MailSetup, build_message
from newsletter.mail.message import reply_to_header
from newsletter.mail.verp import IdTokens
from newsletter.subscribers.tokens import UNDO_MAX_AGE_DAYS, Purpose, Tokens

if TYPE_CHECKING:
    from newsletter.subscribers.models import Reader

# Never the start of a delivery token (base 36 digits, then "-").
ACCOUNT_TOKEN_PREFIX = "acct_"  # noqa: S105 - a prefix, not a secret

CONFIRM_PATH = "/confirm/{token}"
MANAGE_PATH = "/manage/{token}"
EMAIL_CHANGE_PATH = "/email-change/{token}"
EMAIL_UNDO_PATH = "/email-change/undo/{token}"
UNSUBSCRIBE_PATH = "/u/{token}"
# The links of account mail that sign a reader in (as from their own inbox).
SIGN_IN_PATHS = tuple(path.removesuffix("{token}") for path in (
    CONFIRM_PATH, MANAGE_PATH, EMAIL_CHANGE_PATH, EMAIL_UNDO_PATH))


@dataclass
class Links:
    """Absolute URLs of the reader routes, built from the public base URL."""

    base_url: str
    tokens: Tokens

    def _url(self, path: str, purpose: Purpose, payload: dict) -> str:
        return self.base_url.rstrip("/") + path.format(token=self.tokens.make(purpose, payload))

    def confirm(self, reader_id: int, email: str, request_id: int | None) -> str:
        """``request_id``: the subscribe consent event the link answers; only the latest
        request's link confirms."""
        return self._url(CONFIRM_PATH, Purpose.CONFIRM,
                         {"r": reader_id, "e": email, "q": request_id})

    def manage(self, reader_id: int, *, in_list_mail: bool = False, version: int = 0) -> str:
        """``in_list_mail``: the link rides in mail people forward (a digest, an edition, a
        welcome); it opens the preference centre but not the account (``"l": 1``).
        Otherwise it is a sign-in link the reader asked for, valid while the reader's
        ``address_version`` is still ``version`` (``"v"``)."""
        payload: dict = {"r": reader_id}
        if in_list_mail:
            payload["l"] = 1
        elif version:
            payload["v"] = version
        return self._url(MANAGE_PATH, Purpose.MANAGE, payload)

    def email_change(self, reader_id: int, new_email: str) -> str:
        return self._url(EMAIL_CHANGE_PATH, Purpose.EMAIL_CHANGE, {"r": reader_id,
                                                                     "e": new_email})

    def email_undo(self, reader_id: int, old_email: str, new_email: str) -> str:
        """For the old address: puts it back in place of ``new_email``."""
        return self._url(EMAIL_UNDO_PATH, Purpose.EMAIL_UNDO, {"r": reader_id, "o": old_email,
                                                                "n": new_email})

    def unsubscribe(self, reader_id: int, stream: str | None = None) -> str:
        """``stream``: the kind of mail the link is in (``Stream``); its one-click leaves
        that stream. None (the preference centre, links sent before streams): everything."""
        payload: dict = {"r": reader_id}
        if stream is not None:
            payload["s"] = stream
        return self._url(UNSUBSCRIBE_PATH, Purpose.UNSUBSCRIBE, payload)


class AccountTokens(IdTokens):
    """Tokens naming a reader, for the return path of account mail."""

    def __init__(self, keys):
        super().__init__(keys, purpose="account-token:")

    def make_token(self, reader_id: int) -> str:
        return ACCOUNT_TOKEN_PREFIX + self.make(reader_id)

    def reader_of(self, token: str | None) -> int | None:
        """The reader an account-mail token names, or None (not one, or forged)."""
        if not token or not token.startswith(ACCOUNT_TOKEN_PREFIX):
            return None
        return self.read(token[len(ACCOUNT_TOKEN_PREFIX):])


@dataclass(frozen=True)
class AccountMessage:
    """A finished account email: envelope and signed bytes."""

    return_path: str
    to: str
    data: bytes


class ReaderMailer:
    """Builds account mail; ``subscribers.outbox`` queues it and sends it."""

    def __init__(self, mail: MailSetup, links: Links,
                 next_digest: Callable[[Reader, datetime], str | None] | None = None):
        """``next_digest``: when a reader's next digest comes, in their words ("Wednesday 9
        December at 07:00, Paris time"); the digest schedule's, passed in by the wiring
        (subscribers sit below editions)."""
        self.mail = mail
        self.links = links
        self.next_digest = next_digest
        # Told of a relay's permanent refusal of account mail: (reader id, "hard_bounce" or
        # "soft_bounce", the reply, an event id); the wiring hands it to the bounce handler.
        self.on_bounce: Callable[[int, str, str, str], None] | None = None
        self.account_tokens = AccountTokens(mail.config["SECRET_KEYS"])

    def message(self, kind: str, reader_id: int, to: str, request_id: int | None = None, *,
                reader: Reader | None = None, now: datetime | None = None) -> AccountMessage:
        """The email of ``kind`` (``AccountMailKind``) for the reader, its link made now.
        ``reader`` (as it is ``now``): what a welcome lists and when a payment-failed
        notice's paid plan ends."""
        publication = self.mail.config["PUBLICATION_NAME"]
        if kind == "confirm":
            return self._build("confirm", reader_id, to,
                               f"Confirm your subscription to {publication}",
                               self.links.confirm(reader_id, to, request_id))
        if kind == "manage_link":
            version = reader.address_version if reader is not None else 0
            return self._build("manage_link", reader_id, to, f"Your {publication} subscription",
                               self.links.manage(reader_id, version=version or 0))
        if kind == "email_change":
            return self._build("email_change", reader_id, to,
                               f"Confirm your new address for {publication}",
                               self.links.email_change(reader_id, to))
        if kind == "email_changed":
            new_email = reader.email if reader is not None and reader.email else ""
            return self._build("email_changed", reader_id, to,
                               f"Your {publication} subscription moved to another address",
                               self.links.email_undo(reader_id, to, new_email),
                               new_email=new_email, undo_days=UNDO_MAX_AGE_DAYS)
        if kind == "welcome":
            return self._welcome(reader_id, to, reader, now)
        if kind == "payment_failed":
            paid_until = reader.plan_until if reader is not None else None
            until = f"{paid_until:%B} {paid_until.day}, {paid_until:%Y}" if paid_until else ""
            return self._build("payment_failed", reader_id, to,
                               f"Your payment for {publication} did not go through",
                               # Forwarded to whoever pays: the account needs a fresh link.
                               self.links.manage(reader_id, in_list_mail=True), until=until)
        raise ValueError(f"unknown kind of account mail: {kind!r}")

    def _welcome(self, reader_id: int, to: str, reader: Reader | None,
                 now: datetime | None) -> AccountMessage:
        publication = self.mail.config["PUBLICATION_NAME"]
        topics = [topic.name for topic in reader.topics] if reader is not None else []
        first = None
        if reader is not None and self.next_digest is not None:
            first = self.next_digest(reader, now or datetime.now(UTC))
        return self._build("welcome", reader_id, to, f"Welcome to {publication}",
                           # A welcome gets forwarded too: its link opens preferences only.
                           self.links.manage(reader_id, in_list_mail=True), topics=topics,
                           first_name=reader.first_name if reader is not None else None,
                           first_digest=first or "", weekly=bool(
                               reader is not None and reader.frequency == "weekly"))

    def _build(self, template: str, reader_id: int, to: str, subject: str,
               action_url: str, **content: Any) -> AccountMessage:
        config = self.mail.config
        from_addr = config.get("ACCOUNT_MAIL_FROM") or config["MAIL_FROM"]
        token = self.account_tokens.make_token(reader_id)
        return_path = f"bounces+{token}@{config['BOUNCE_DOMAIN']}"
        rendered = self.mail.renderer.render(template, {
            "publication": config["PUBLICATION_NAME"],
            "base_url": config["BASE_URL"].rstrip("/"),
            "postal_address": config["POSTAL_ADDRESS"],
            "subject": subject,
            "confirm_days": config["CONFIRM_MAX_AGE_DAYS"],
            "manage_days": config["MANAGE_LINK_MAX_AGE_DAYS"],
            **content,
        })
        html, text = rendered.personalise(action_url=action_url, email=to)
        sender = parseaddr(from_addr)[1]
        message = build_message(
            from_addr=from_addr, to=to, subject=subject, text=text, html=html,
            message_id_domain=config["MAIL_DOMAIN"],
            extra_headers={"Auto-Submitted": "auto-generated", "X-Newsletter-Token": token,
                           "Feedback-ID": f"{template}:account:newsletter:{sender}",
                           **reply_to_header(config)},
        )
        if self.mail.signer is not None:
            message = self.mail.signer.sign(message)
        return AccountMessage(return_path=return_path, to=to, data=message)
