"""Extension objects and the outbound-mail wiring, created once per app in ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from flask_migrate import Migrate

from newsletter.config import PROJECT_ROOT

migrate = Migrate()

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


@dataclass
class MailSetup:
    """Everything a sender needs, built from settings; services receive it, never ``app``."""

    renderer: Any
    signer: Any | None
    config: dict[str, Any]

    def new_transport(self):
        """A fresh transport (an SMTP connection is not shared between threads)."""
        from newsletter.mail import make_transport

        return make_transport(self.config)


def init_mail(app: Flask) -> None:
    from newsletter.mail import DkimSigner, EmailRenderer

    signer = None
    parts = (app.config.get("DKIM_SELECTOR"), app.config.get("DKIM_DOMAIN"),
             app.config.get("DKIM_PRIVATE_KEY_PATH"))
    if all(parts):
        signer = DkimSigner.from_files(*parts)
    app.extensions["newsletter.mail"] = MailSetup(
        renderer=EmailRenderer(Path(app.config["EMAIL_TEMPLATES_DIR"])),
        signer=signer,
        config=dict(app.config),
    )


def mail_setup() -> MailSetup:
    return current_app.extensions["newsletter.mail"]
