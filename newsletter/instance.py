"""What a development instance keeps in its folder (``instance/``) for every process that
shares it: the secret key ``make run`` made, and the base URL it serves. Read by
``config.finish_config`` for commands typed in a second terminal; never used beside a
database given by URL (a real deployment sets both in its environment).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

__all__ = ["BASE_URL_FILE", "MIN_STORED_KEY", "SECRET_KEY_FILE", "instance_base_url",
           "instance_secret_key", "store_base_url"]

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


def instance_secret_key(instance: Path, *, create: bool) -> str | None:
    """The secret key kept in the instance folder (``instance/secret_key``), if any.

    With ``create`` (development mode) a random one is written on first use, so every
    process that shares the instance folder — ``make run`` and any command typed in a
    second terminal — signs and verifies with the same key, and none needs
    ``NEWSLETTER_DEBUG``. The file is written whole or not at all (a temporary file linked
    into place), readable by its owner only; a file that is shorter than
    :data:`MIN_STORED_KEY` characters or readable by others is not used (and, in
    development mode, replaced).
    """
    path = instance / SECRET_KEY_FILE
    key = _read_stored_key(path)
    if key is None and create:
        instance.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()  # unusable (empty, short or shared): replace it
        temporary = instance / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(temporary, path)  # atomic; fails if another process linked first
        except FileExistsError:
            pass  # theirs wins: read it below
        finally:
            temporary.unlink()
        key = _read_stored_key(path)
    return key


MIN_STORED_KEY = 32
BASE_URL_FILE = "base_url"


def store_base_url(instance: Path, base_url: str) -> None:
    """Remember the URL a development server serves (``newsletter serve`` in debug mode), so
    commands run beside it on the same instance write links that point there. Written whole
    or not at all."""
    instance.mkdir(parents=True, exist_ok=True)
    temporary = instance / f".{BASE_URL_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    temporary.write_text(base_url.strip() + "\n")
    os.replace(temporary, instance / BASE_URL_FILE)


def instance_base_url(instance: Path) -> str | None:
    """The URL stored by :func:`store_base_url`, if any and if it is an http(s) URL."""
    try:
        value = (instance / BASE_URL_FILE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return value if re.fullmatch(r"https?://[^\s/]+(/\S*)?", value) else None


def _read_stored_key(path: Path) -> str | None:
    try:
        if path.stat().st_mode & 0o077:
            return None
        key = path.read_text().strip()
    except FileNotFoundError:
        return None
    return key if len(key) >= MIN_STORED_KEY else None
