"""What every sender of mail needs, built once from the settings by ``newsletter.wiring``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from newsletter.mail.breaker import RelayBreaker
from newsletter.mail.relays import RelayConfig, account_relay
from newsletter.mail.render import EmailRenderer
from newsletter.mail.transports import Transport, make_transport


@dataclass
class MailSetup:
    """The renderer, the DKIM signer (or ``None``) and the settings; services receive it,
    never ``app``."""

    renderer: EmailRenderer
    signer: Any | None
    config: dict[str, Any]
    # The account-mail relay (parsed once) and its circuit breaker, shared by this
    # process's senders of account mail.
    relay: RelayConfig = field(init=False)
    breaker: RelayBreaker = field(init=False)

    def __post_init__(self) -> None:
        self.relay = account_relay(self.config)
        self.breaker = RelayBreaker(f"{self.relay.name} (account mail)")

    def new_transport(self) -> Transport:
        """A fresh transport to the account-mail relay (an SMTP connection is not shared
        between threads)."""
        return make_transport(self.relay.config)
