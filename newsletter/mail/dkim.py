"""DKIM-sign built messages with dkimpy (relaxed header, simple body canonicalisation).

Contract: ``DkimSigner(...).sign(message)`` returns ``DKIM-Signature: …\\r\\n`` followed by
``message`` unchanged. Headers listed in ``headers`` but absent from a message are still
signed (as empty), so nobody can add them later; headers listed twice are "oversigned"
for the same reason when present once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

__all__ = ["DEFAULT_SIGNED_HEADERS", "DkimError", "DkimSigner"]

DEFAULT_SIGNED_HEADERS: tuple[str, ...] = (
    "From", "From", "To", "Subject", "Subject", "Date", "Message-ID", "MIME-Version",
    "Content-Type", "Content-Transfer-Encoding", "Reply-To", "List-Id",
    # RFC 8058: the signature must cover both unsubscribe headers.
    "List-Unsubscribe", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Unsubscribe-Post",
    "Feedback-ID",
)


class DkimError(Exception):
    """The DKIM key is unreadable or invalid, or a message cannot be signed."""


def read_private_key(key_path: str | Path) -> bytes:
    """The PEM bytes at ``key_path``; :class:`DkimError` saying why if unreadable."""
    try:
        return Path(key_path).read_bytes()
    except OSError as exc:
        raise DkimError(f"cannot read the DKIM private key {key_path}: {exc.strerror}") from exc


class DkimSigner:
    """Signs messages for ``domain`` with the RSA key published at ``selector._domainkey``."""

    def __init__(
        self,
        selector: str,
        domain: str,
        private_key_pem: bytes,
        headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
    ) -> None:
        # dkimpy finds the base64 body between "--\n" and "\n--": CRLF files would not match.
        key = private_key_pem.replace(b"\r\n", b"\n")
        try:
            parse_pem_private_key(key)
        except (UnparsableKeyError, ValueError) as exc:
            raise DkimError(
                f"DKIM key for {selector}._domainkey.{domain} is not a PEM RSA private key "
                f"(PKCS#1 or PKCS#8): {exc}"
            ) from exc
        if not any(h.lower() == "from" for h in headers):
            raise DkimError("the signed headers must include From")
        self.selector = selector
        self.domain = domain
        self.headers = tuple(headers)
        self._selector = selector.encode("ascii")
        self._domain = domain.encode("ascii")
        self._key = key
        self._include = [h.encode("ascii") for h in self.headers]

    @classmethod
    def from_files(
        cls, selector: str, domain: str, key_path: str | Path,
        headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
    ) -> DkimSigner:
        """Read the PEM key at ``key_path``; raises :class:`DkimError` if it is unreadable."""
        return cls(selector, domain, read_private_key(key_path), headers)

    def sign(self, message: bytes) -> bytes:
        """Return ``message`` with a ``DKIM-Signature`` header prepended (CRLF line ends)."""
        try:
            signature = dkim.sign(
                message, self._selector, self._domain, self._key,
                canonicalize=(b"relaxed", b"simple"), include_headers=self._include,
            )
        except dkim.DKIMException as exc:
            raise DkimError(f"cannot DKIM-sign the message: {exc}") from exc
        return signature + message
