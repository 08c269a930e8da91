"""Settings: every one comes from a ``NEWSLETTER_*`` environment variable.

``SETTINGS`` is the single list of what can be configured; the README's
configuration table documents the same names (a test keeps them in step).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.errors import Invalid
from newsletter.instance import (
    SECRET_KEY_FILE,
    instance_base_url,
    instance_secret_key,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_ADDRESS = "Modelwire, 1 Example Street, Springfield, USA"
DEV_SECRET_KEY = "dev-only-secret-change-me"  # noqa: S105 - the known development default
DEFAULT_BASE_URL = "http://127.0.0.1:5000"


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (1/0, true/false), got {value!r}")


def _int(value: str) -> int:
    return int(value.strip())


def _minutes(value: str) -> int:
    """A duration in minutes: ``90``, ``90m``, ``3h`` or ``1h30m``."""
    text = value.strip().lower()
    match = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m?)?", text)
    if not text or not match or not any(match.groups()):
        raise ValueError(f"expected a duration such as 3h, 90m or 1h30m, got {value!r}")
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def _str(value: str) -> str:
    return value.strip()


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class Setting:
    env: str
    key: str
    default: Any
    parse: Callable[[str], Any]
    help: str


def _instance_dir() -> Path:
    return Path(os.environ.get("NEWSLETTER_INSTANCE_DIR", PROJECT_ROOT / "instance"))


SETTINGS: tuple[Setting, ...] = (
    Setting("NEWSLETTER_DEBUG", "DEBUG", False, _bool,
            "Development mode: stores a random secret key in `instance/secret_key` (used by "
            "every command on that instance's SQLite database). Never in production."),
    Setting("NEWSLETTER_INSTANCE_DIR", "INSTANCE_DIR", None, _str,
            "Folder for the SQLite database and the outbox (default `instance/`)."),
    Setting("NEWSLETTER_DATABASE_URL", "DATABASE_URL", None, _str,
            "SQLAlchemy URL; default `sqlite:///instance/newsletter.db`. "
            "PostgreSQL: `postgresql+psycopg://user@host/db`."),
    Setting("NEWSLETTER_SECRET_KEY", "SECRET_KEY", DEV_SECRET_KEY, _str,
            "Signs sessions and tokens. Required outside debug/testing, unless the instance's "
            "SQLite database is used with a key stored by debug mode."),
    Setting("NEWSLETTER_SECRET_KEYS", "SECRET_KEYS", None, _list,
            "Comma-separated keys for signed links, newest first: the newest signs, all "
            "verify (rotation). Default: the secret key."),
    Setting("NEWSLETTER_SUPPRESSION_KEY", "SUPPRESSION_KEY", None, _str,
            "Key of the suppression list's address hashes. Set it once and never change it "
            "(default: derived from the oldest secret key)."),
    Setting("NEWSLETTER_BASE_URL", "BASE_URL", DEFAULT_BASE_URL, _str,
            "Public URL of the site, used for links in emails and feeds. Unset, commands on "
            "`make run`'s instance use the one it serves (stored in `instance/base_url`)."),
    Setting("NEWSLETTER_PUBLICATION_NAME", "PUBLICATION_NAME", "Modelwire", _str,
            "The publication's name, shown on the site and in emails."),
    Setting("NEWSLETTER_MAIL_TRANSPORT", "MAIL_TRANSPORT", "file", _str,
            "`file` (write `.eml` files to the outbox), `smtp` or `console`."),
    Setting("NEWSLETTER_OUTBOX_DIR", "OUTBOX_DIR", None, _str,
            "Where the file transport writes messages (default `instance/outbox/`)."),
    Setting("NEWSLETTER_SMTP_URL", "SMTP_URL", "smtp://127.0.0.1:25", _str,
            "SMTP relay(s), comma-separated: `smtp://user:pass@host:587?starttls=true`, "
            "`smtps://user:pass@host:465`. Options: `starttls` (true/false), `timeout` "
            "(seconds), `weight` (share of list mail, default 1), `connections` (default "
            "NEWSLETTER_SEND_CONNECTIONS), `rate` (messages a second, 0: no limit), `hourly` "
            "(cap over any sliding hour, 0: none). Account mail uses the first relay with a "
            "weight above 0. A wrong option refuses to start."),
    Setting("NEWSLETTER_MAIL_FROM", "MAIL_FROM", "Modelwire <newsletter@localhost>", _str,
            "`From` of every message: display name and address."),
    Setting("NEWSLETTER_ACCOUNT_MAIL_FROM", "ACCOUNT_MAIL_FROM", None, _str,
            "From of account mail (confirmation, sign-in link, address change), its own "
            "stream for mailbox providers (default: MAIL_FROM)."),
    Setting("NEWSLETTER_REPLY_TO", "REPLY_TO", None, _str,
            "`Reply-To` of every message (list and account mail), e.g. the editors' inbox; "
            "unset: replies go to the From address."),
    Setting("NEWSLETTER_MAIL_DOMAIN", "MAIL_DOMAIN", None, _str,
            "Domain of `Message-ID` and `List-Id` (default: the domain of MAIL_FROM)."),
    Setting("NEWSLETTER_POSTAL_ADDRESS", "POSTAL_ADDRESS", PLACEHOLDER_ADDRESS, _str,
            "Postal address printed in every email (CAN-SPAM). Required outside "
            "development: the placeholder refuses to start."),
    Setting("NEWSLETTER_DKIM_SELECTOR", "DKIM_SELECTOR", None, _str,
            "DKIM selector; signing is on when selector, domain and key path are all set."),
    Setting("NEWSLETTER_DKIM_DOMAIN", "DKIM_DOMAIN", None, _str, "DKIM signing domain (`d=`)."),
    Setting("NEWSLETTER_DKIM_PRIVATE_KEY_PATH", "DKIM_PRIVATE_KEY_PATH", None, _str,
            "PEM file with the DKIM RSA private key."),
    Setting("NEWSLETTER_EMAIL_TEMPLATES_DIR", "EMAIL_TEMPLATES_DIR",
            str(PROJECT_ROOT / "templates" / "emails"), _str,
            "Folder of the MJML email templates."),
    Setting("NEWSLETTER_CONFIRM_MAX_AGE_DAYS", "CONFIRM_MAX_AGE_DAYS", 7, _int,
            "How long confirmation links (subscription, new address) work."),
    Setting("NEWSLETTER_MANAGE_LINK_MAX_AGE_DAYS", "MANAGE_LINK_MAX_AGE_DAYS", 30, _int,
            "How long a preference-centre link works."),
    Setting("NEWSLETTER_READER_SESSION_MINUTES", "READER_SESSION_MINUTES", 60, _int,
            "How long a reader stays signed in after following a link."),
    Setting("NEWSLETTER_ADMIN_SESSION_HOURS", "ADMIN_SESSION_HOURS", 12, _int,
            "How long an admin stays signed in (then signs in again)."),
    Setting("NEWSLETTER_ADMIN_LOGIN_LIMIT_PER_IP", "ADMIN_LOGIN_LIMIT_PER_IP",
            "10/minute;100/hour", _str,
            "Admin sign-in attempts per IP (an address also locks for 15 minutes, from "
            "that IP only, after 5 wrong passwords in a row; 5 wrong codes lock the code "
            "step from every IP)."),
    Setting("NEWSLETTER_RECORD_IP", "RECORD_IP", True, _bool,
            "Keep the IP address in consent events."),
    Setting("NEWSLETTER_CHECK_DELIVERABILITY", "CHECK_DELIVERABILITY", False, _bool,
            "Look up the domain's MX records when an address is entered (needs DNS)."),
    Setting("NEWSLETTER_RATELIMIT_STORAGE_URL", "RATELIMIT_STORAGE_URI", "memory://", _str,
            "Rate-limit counters: `memory://` (one process) or `redis://host:6379` "
            "(several web processes)."),
    Setting("NEWSLETTER_SUBSCRIBE_LIMIT_PER_IP", "SUBSCRIBE_LIMIT_PER_IP",
            "10/minute;50/hour", _str, "Subscribe and sign-in-link requests per IP."),
    Setting("NEWSLETTER_SUBSCRIBE_LIMIT_PER_ADDRESS", "SUBSCRIBE_LIMIT_PER_ADDRESS",
            "3/hour;10/day", _str, "Subscribe and sign-in-link requests per email address."),
    Setting("NEWSLETTER_BOUNCE_MAILDIR", "BOUNCE_MAILDIR", None, _str,
            "A Maildir of bounce and complaint reports that the worker reads every "
            "NEWSLETTER_BOUNCE_POLL_SECONDS (each report once: read ones move to `cur/`). "
            "Unset: reports come by `newsletter bounces process` (an MTA pipe) or webhooks."),
    Setting("NEWSLETTER_BOUNCE_POLL_SECONDS", "BOUNCE_POLL_SECONDS", 30, _int,
            "How often the worker reads NEWSLETTER_BOUNCE_MAILDIR."),
    Setting("NEWSLETTER_TRUSTED_PROXIES", "TRUSTED_PROXIES", 0, _int,
            "Reverse proxies in front of the web server (nginx, a load balancer) whose "
            "`X-Forwarded-For/-Proto/-Host` are trusted: the client IP, scheme and host come "
            "from that many hops. 0 (default): those headers are ignored."),
    Setting("NEWSLETTER_WEB_PROCESSES", "WEB_PROCESSES", 2, _int,
            "Web processes gunicorn starts (`gunicorn.conf.py`). More than one needs shared "
            "rate limits (NEWSLETTER_RATELIMIT_STORAGE_URL=redis://…): memory:// refuses."),
    Setting("NEWSLETTER_WEB_BIND", "WEB_BIND", "127.0.0.1:8000", _str,
            "Where gunicorn listens (`host:port`), behind the reverse proxy."),
    Setting("NEWSLETTER_BOUNCE_DOMAIN", "BOUNCE_DOMAIN", None, _str,
            "Domain of the VERP return path `bounces+<token>@domain` (default: MAIL_DOMAIN)."),
    Setting("NEWSLETTER_SEND_CONNECTIONS", "SEND_CONNECTIONS", 4, _int,
            "SMTP connections per relay unless its URL says `connections=`."),
    Setting("NEWSLETTER_SEND_BATCH", "SEND_BATCH", 200, _int,
            "Deliveries a worker claims at a time."),
    Setting("NEWSLETTER_LEASE_SECONDS", "LEASE_SECONDS", 120, _int,
            "How long a claim lasts; a crashed worker's deliveries return to the queue after it."),
    Setting("NEWSLETTER_START_STALE_SECONDS", "START_STALE_SECONDS", 120, _int,
            "How long one worker may hold an edition's start (render, fan-out) before another "
            "takes it over (the first one died)."),
    Setting("NEWSLETTER_MAX_ATTEMPTS", "MAX_ATTEMPTS", 8, _int,
            "Attempts before a transiently failing delivery is given up (`failed`)."),
    Setting("NEWSLETTER_MAX_AGE_HOURS", "MAX_AGE_HOURS", 48, _int,
            "Age after which a transiently failing delivery is given up."),
    Setting("NEWSLETTER_RETRY_BASE_SECONDS", "RETRY_BASE_SECONDS", 60, _int,
            "First retry delay; doubles each attempt (with ±20% jitter), capped at 6 hours."),
    Setting("NEWSLETTER_TRACKING", "TRACKING", True, _bool,
            "Open and click tracking (editions can also turn it off one by one)."),
    Setting("NEWSLETTER_SEND_IN_WEB", "SEND_IN_WEB", False, _bool,
            "Run the sender in the web process (threads); `make run` turns it on."),
    Setting("NEWSLETTER_DIGEST_GRACE", "DIGEST_GRACE", 180, _minutes,
            "How late a digest may still go out after its reader's time (a worker that was "
            "down catches up once); older ones are skipped, their content goes in the next. "
            "`3h`, `90m` or minutes."),
    Setting("NEWSLETTER_DIGEST_SLOT_MINUTES", "DIGEST_SLOT_MINUTES", 15, _int,
            "Readers whose digest time falls in the same slot of this many minutes (UTC) and "
            "who get the same sections share one rendering."),
    Setting("NEWSLETTER_UNCONFIRMED_DAYS", "UNCONFIRMED_DAYS", 30, _int,
            "Addresses that never confirmed are deleted after this many days."),
    Setting("NEWSLETTER_TRACKING_RETENTION_DAYS", "TRACKING_RETENTION_DAYS", 180, _int,
            "Open and click events (time, user agent) older than this are deleted; the counts "
            "on each delivery stay."),
    Setting("NEWSLETTER_FEEDS_POLL_MINUTES", "FEEDS_POLL_MINUTES", 30, _int,
            "How often the worker polls the RSS/Atom feeds added with `newsletter feeds add`."),
    Setting("NEWSLETTER_FEED_ALLOWED_HOSTS", "FEED_ALLOWED_HOSTS", None, _list,
            "Comma-separated host names (an intranet feed server, `localhost`) that feeds may "
            "be fetched from although they resolve to private, loopback or link-local "
            "addresses. Every other host, first URL or redirect, must resolve to public "
            "addresses only; a redirect from a public host never leads into these."),
    Setting("NEWSLETTER_SOFT_BOUNCE_LIMIT", "SOFT_BOUNCE_LIMIT", 3, _int,
            "Soft bounces within the window that suppress an address."),
    Setting("NEWSLETTER_SOFT_BOUNCE_WINDOW_DAYS", "SOFT_BOUNCE_WINDOW_DAYS", 30, _int,
            "The soft-bounce window, in days."),
    Setting("NEWSLETTER_SES_TOPIC_ARNS", "SES_TOPIC_ARNS", None, _list,
            "SNS topic ARNs whose SES notifications `/hooks/ses` accepts (unset: hook off)."),
    Setting("NEWSLETTER_POSTMARK_WEBHOOK_USER", "POSTMARK_WEBHOOK_USER", None, _str,
            "Basic-auth user of `/hooks/postmark` (with the password; unset: hook off)."),
    Setting("NEWSLETTER_POSTMARK_WEBHOOK_PASSWORD", "POSTMARK_WEBHOOK_PASSWORD", None, _str,
            "Basic-auth password of `/hooks/postmark`."),
    Setting("NEWSLETTER_MAILGUN_SIGNING_KEY", "MAILGUN_SIGNING_KEY", None, _str,
            "Mailgun webhook signing key for `/hooks/mailgun` (unset: hook off)."),
    Setting("NEWSLETTER_SENDGRID_PUBLIC_KEY", "SENDGRID_PUBLIC_KEY", None, _str,
            "SendGrid signed-event-webhook public key (base64 DER or PEM) for `/hooks/sendgrid`."),
    Setting("NEWSLETTER_STRIPE_SECRET_KEY", "STRIPE_SECRET_KEY", None, _str,
            "Stripe secret API key (`sk_live_…` or `sk_test_…`); unset: no paid tier (the "
            "upgrade page says so, `/hooks/stripe` answers 404)."),
    Setting("NEWSLETTER_STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET", None, _list,
            "Signing secret of the `/hooks/stripe` endpoint (`whsec_…`); several, "
            "comma-separated, while you roll it."),
    Setting("NEWSLETTER_STRIPE_PRICE_MONTHLY", "STRIPE_PRICE_MONTHLY", None, _str,
            "Stripe Price id (`price_…`) of the monthly paid plan."),
    Setting("NEWSLETTER_STRIPE_PRICE_YEARLY", "STRIPE_PRICE_YEARLY", None, _str,
            "Stripe Price id of the yearly paid plan."),
    Setting("NEWSLETTER_STRIPE_TRIAL_DAYS", "STRIPE_TRIAL_DAYS", 0, _int,
            "Free days before the first payment of a new paid subscription (0: no trial)."),
    Setting("NEWSLETTER_STRIPE_API_BASE", "STRIPE_API_BASE", None, _str,
            "Another address for Stripe's API (a local Stripe-compatible server in tests)."),
    Setting("NEWSLETTER_BILLING_GRACE_DAYS", "BILLING_GRACE_DAYS", 7, _int,
            "After a failed payment, how many days a paying reader keeps the paid plan while "
            "they update their card (they are emailed once)."),
    Setting("NEWSLETTER_MAX_REQUEST_BYTES", "MAX_CONTENT_LENGTH", 1024 * 1024, _int,
            "Largest request body accepted (413 above it)."),
)


class ConfigError(Invalid, RuntimeError):
    """A setting is missing or malformed; the message says which and why in one line."""


def load_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the Flask config built from defaults and ``NEWSLETTER_*`` variables."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw == "":
            config[setting.key] = setting.default
            continue
        try:
            config[setting.key] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{setting.env}: {exc}") from None
    return config


def finish_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill the derived defaults (paths, database URL, mail domain) and check the result."""
    instance = Path(config.get("INSTANCE_DIR") or _instance_dir())
    config["INSTANCE_DIR"] = str(instance)
    own_database = not config.get("DATABASE_URL")  # the instance's SQLite, as make run's
    if not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = f"sqlite:///{instance / 'newsletter.db'}"
    if not config.get("OUTBOX_DIR"):
        config["OUTBOX_DIR"] = str(instance / "outbox")
    if config.get("MAIL_TRANSPORT") not in {"file", "smtp", "console"}:
        raise ConfigError(
            f"NEWSLETTER_MAIL_TRANSPORT must be file, smtp or console, "
            f"got {config.get('MAIL_TRANSPORT')!r}"
        )
    if not config.get("MAIL_DOMAIN"):
        from email.utils import parseaddr

        address = parseaddr(config["MAIL_FROM"])[1]
        config["MAIL_DOMAIN"] = address.rpartition("@")[2] or "localhost"
    reply_to = config.get("REPLY_TO")
    if reply_to:
        from email.utils import parseaddr

        if any(c in reply_to for c in "\r\n") or "@" not in parseaddr(reply_to)[1]:
            raise ConfigError(f"NEWSLETTER_REPLY_TO must be an email address, got {reply_to!r}")
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    if not config.get("BOUNCE_DOMAIN"):
        config["BOUNCE_DOMAIN"] = config["MAIL_DOMAIN"]
    # The stored key serves make run's instance only: development mode, or a command
    # using that instance's own SQLite database. Never in tests, never beside a database
    # given by URL (a real deployment sets its key).
    dev_instance = bool(config.get("DEBUG") or config.get("TESTING"))
    unset = not config.get("SECRET_KEYS") and config.get("SECRET_KEY") in (None, "",
                                                                          DEV_SECRET_KEY)
    if unset and not config.get("TESTING") and (config.get("DEBUG") or own_database):
        stored = instance_secret_key(instance, create=bool(config.get("DEBUG")))
        if stored:
            config["SECRET_KEY"] = stored
            dev_instance = True
    if (config.get("BASE_URL") == DEFAULT_BASE_URL and not config.get("TESTING")
            and (config.get("DEBUG") or own_database)):
        # A second terminal beside `make run PORT=…`: the links point where it serves.
        config["BASE_URL"] = instance_base_url(instance) or DEFAULT_BASE_URL
    if config.get("SECRET_KEYS"):
        config["SECRET_KEY"] = config["SECRET_KEYS"][0]
    else:
        config["SECRET_KEYS"] = [config.get("SECRET_KEY") or DEV_SECRET_KEY]
    if not (config.get("DEBUG") or config.get("TESTING")) and (
        config.get("SECRET_KEY") in (None, "", DEV_SECRET_KEY)
    ):
        raise ConfigError(
            "refusing to start: NEWSLETTER_SECRET_KEY is unset or the development key; "
            "set a long random value (or NEWSLETTER_DEBUG=1 for local development, which "
            f"stores one in {instance / SECRET_KEY_FILE})"
        )
    if not dev_instance and config.get("POSTAL_ADDRESS", "").strip() in ("",
                                                                      PLACEHOLDER_ADDRESS):
        raise ConfigError(
            "refusing to start: NEWSLETTER_POSTAL_ADDRESS is unset or the placeholder; every "
            "email must carry the publication's real postal address (CAN-SPAM)")
    return config


# -- the settings as an owner may see them ------------------------------------------------

_HIDDEN_WORDS = ("SECRET", "PASSWORD", "SIGNING_KEY", "SUPPRESSION_KEY", "TOKEN")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@",
                           re.IGNORECASE)


@dataclass(frozen=True)
class ShownSetting:
    env: str
    value: str
    is_default: bool
    help: str


def _shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list | tuple):
        value = ", ".join(str(item) for item in value)
    return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:•••@", str(value))


def settings_for_display(config: Mapping[str, Any]) -> list[ShownSetting]:
    """Every setting with the value in effect, for the owners' settings page: secrets are
    only said to be set or not, and passwords inside URLs are masked."""
    shown = []
    for setting in SETTINGS:
        value = config.get(setting.key)
        if any(word in setting.key for word in _HIDDEN_WORDS):
            text = "set (hidden)" if value else "not set"
        else:
            text = _shown(value)
        shown.append(ShownSetting(setting.env, text, value == setting.default, setting.help))
    return shown
