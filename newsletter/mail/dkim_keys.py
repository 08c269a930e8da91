"""DKIM keys for the operator: make one, write the DNS record that publishes it, and tell
whether a published record holds it.

Keys are RSA (``a=rsa-sha256``, what every verifier accepts), 2048 bits unless asked
otherwise. The record lives at ``<selector>._domainkey.<domain>`` and reads
``v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>`` (RFC 6376 §3.6.1); a TXT string holds
at most 255 characters, so a zone file writes it as several quoted strings, which
verifiers join without spaces (§3.6.2.2).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.mail.dkim import DkimError

__all__ = [
    "DKIM_SETTINGS", "KEY_BITS", "check_dns_name", "dkim_settings", "generate_private_key",
    "record_matches", "record_tags", "record_value", "write_private_key", "zone_line",
]

KEY_BITS = 2048
TXT_STRING_MAX = 255

#: The config keys that turn signing on, with the variables an operator sets.
DKIM_SETTINGS = (("DKIM_SELECTOR", "NEWSLETTER_DKIM_SELECTOR"),
                 ("DKIM_DOMAIN", "NEWSLETTER_DKIM_DOMAIN"),
                 ("DKIM_PRIVATE_KEY_PATH", "NEWSLETTER_DKIM_PRIVATE_KEY_PATH"))

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)


def dkim_settings(config: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(selector, domain, key path) when all three DKIM settings are set, ``None`` when none
    is; :class:`DkimError` naming the missing ones when only some are (half a setup would
    send unsigned mail while looking configured)."""
    values = tuple(str(config.get(key) or "").strip() for key, _ in DKIM_SETTINGS)
    if not any(values):
        return None
    if not all(values):
        missing = ", ".join(env for (_, env), value in zip(DKIM_SETTINGS, values, strict=True)
                            if not value)
        raise DkimError("DKIM needs all three: NEWSLETTER_DKIM_SELECTOR, "
                        "NEWSLETTER_DKIM_DOMAIN and NEWSLETTER_DKIM_PRIVATE_KEY_PATH "
                        f"(missing: {missing}); set all three to sign, or none")
    selector, domain, path = values
    return selector, domain, path


def check_dns_name(value: str, *, what: str, min_labels: int = 1) -> str:
    """``value`` as a DNS name of letters, digits and hyphens (lower-cased, no trailing dot);
    :class:`ValueError` saying what is wrong otherwise. International names go in their
    ASCII (punycode) form, as DNS holds them."""
    name = value.strip().rstrip(".").lower()
    if not name:
        raise ValueError(f"the {what} is empty")
    if not name.isascii():
        raise ValueError(f"the {what} {value!r} is not ASCII: give its punycode form "
                         "(xn--…)")
    labels = name.split(".")
    bad = next((label for label in labels if not _LABEL.fullmatch(label)), None)
    if bad is not None:
        raise ValueError(f"the {what} {value!r} is not a DNS name: each dot-separated part "
                         "is 1-63 letters, digits or hyphens, not starting or ending with a "
                         f"hyphen ({bad!r} is not)")
    if len(labels) < min_labels:
        raise ValueError(f"the {what} {value!r} needs at least {min_labels} dot-separated "
                         "parts (e.g. news.example.com)")
    if len(name) > 253:
        raise ValueError(f"the {what} is too long for DNS ({len(name)} characters, 253 at "
                         "most)")
    if min_labels > 1 and labels[-1].isdigit():
        raise ValueError(f"the {what} {value!r} is an IP address, not a domain")
    return name


def generate_private_key(bits: int = KEY_BITS) -> tuple[bytes, rsa.RSAPrivateKey]:
    """A new RSA key as unencrypted PKCS#8 PEM (which dkimpy and OpenSSL both read), and
    the key itself."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, key


def record_value(public_key: rsa.RSAPublicKey) -> str:
    """The TXT value that publishes ``public_key``: ``v=DKIM1; k=rsa; p=…``."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def zone_line(selector: str, domain: str, value: str) -> str:
    """The zone-file line an operator pastes: ``s._domainkey.d. IN TXT "…" "…"``, the value
    cut into quoted strings of at most 255 characters."""
    chunks = [value[i:i + TXT_STRING_MAX] for i in range(0, len(value), TXT_STRING_MAX)]
    return f"{selector}._domainkey.{domain}. IN TXT " + " ".join(f'"{c}"' for c in chunks)


def record_tags(record: str) -> dict[str, str]:
    """The ``tag=value`` pairs of a DKIM or DMARC record, tags lower-cased."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


def record_matches(record: str, public_key: rsa.RSAPublicKey) -> bool:
    """Whether the DKIM record ``record`` (one TXT record, its strings joined) publishes
    ``public_key``. An empty ``p=`` (a revoked key) or a ``p=`` that is not an RSA public
    key matches nothing."""
    encoded = "".join(record_tags(record).get("p", "").split())
    if not encoded:
        return False
    try:
        published = serialization.load_der_public_key(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return False
    return (isinstance(published, rsa.RSAPublicKey)
            and published.public_numbers() == public_key.public_numbers())


def write_private_key(path: Path, pem: bytes, *, replace: bool = False) -> None:
    """Write ``pem`` to ``path``, readable by its owner only from the moment it exists.

    The key goes to a temporary file created with mode 0600 (``os.open``; nothing is
    chmod-ed afterwards) in the same folder, then is linked into place: the file appears
    whole or not at all. Without ``replace`` an existing ``path`` is left alone and
    :class:`FileExistsError` raised (the link fails atomically, so two runs cannot both
    win). A missing folder is created, owner-only.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
