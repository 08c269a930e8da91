"""Extension objects and the outbound-mail wiring, created once per app in ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf import CSRFProtect

from newsletter.config import PROJECT_ROOT

migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address)

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


def init_delivery(app: Flask) -> None:
    from newsletter.delivery.sns_fetch import HttpsFetcher

    app.extensions["newsletter.sns_fetcher"] = HttpsFetcher()


def mail_setup() -> MailSetup:
    return current_app.extensions["newsletter.mail"]


def init_readers(app: Flask) -> None:
    """Tokens, the subscription mailer and the reader settings, as one services object."""
    import hashlib

    from newsletter.subscribers.mailer import Links, ReaderMailer
    from newsletter.subscribers.service import ReaderServices
    from newsletter.subscribers.tokens import Purpose, Tokens

    config = app.config
    day = 24 * 3600
    tokens = Tokens(config["SECRET_KEYS"], {
        Purpose.CONFIRM: config["CONFIRM_MAX_AGE_DAYS"] * day,
        Purpose.EMAIL_CHANGE: config["CONFIRM_MAX_AGE_DAYS"] * day,
        Purpose.MANAGE: config["MANAGE_LINK_MAX_AGE_DAYS"] * day,
    })
    hash_key = (config.get("SUPPRESSION_KEY")
                or "suppression:" + config["SECRET_KEYS"][-1]).encode()
    app.extensions["newsletter.readers"] = ReaderServices(
        tokens=tokens,
        mailer=ReaderMailer(app.extensions["newsletter.mail"], Links(config["BASE_URL"], tokens)),
        hash_key=hashlib.sha256(hash_key).digest(),
        check_deliverability=config["CHECK_DELIVERABILITY"],
        record_ip=config["RECORD_IP"],
    )


def reader_services():
    return current_app.extensions["newsletter.readers"]
