"""What every sender of mail needs, built once from the settings by ``newsletter.wiring``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from newsletter.mail.render import EmailRenderer
from newsletter.mail.transports import Transport, make_transport


@dataclass
class MailSetup:
    """The renderer, the DKIM signer (or ``None``) and the settings; services receive it,
    never ``app``."""

    renderer: EmailRenderer
    signer: Any | None
    config: dict[str, Any]

    def new_transport(self) -> Transport:
        """A fresh transport (an SMTP connection is not shared between threads)."""
        return make_transport(self.config)
