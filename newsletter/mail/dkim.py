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
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from newsletter.errors import Invalid

__all__ = ["DEFAULT_SIGNED_HEADERS", "MIN_KEY_BITS", "DkimError", "DkimSigner",
           "check_private_key", "read_private_key"]

MIN_KEY_BITS = 1024
_MAX_KEY_FILE = 64 * 1024  # an RSA-4096 PEM is about 3.3 KB

DEFAULT_SIGNED_HEADERS: tuple[str, ...] = (
    "From", "From", "To", "Subject", "Subject", "Date", "Message-ID", "MIME-Version",
    "Content-Type", "Content-Transfer-Encoding", "Reply-To", "List-Id",
    # RFC 8058: the signature must cover both unsubscribe headers.
    "List-Unsubscribe", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Unsubscribe-Post",
    "Feedback-ID",
)


class DkimError(Invalid):
    """The DKIM key is unreadable or invalid, or a message cannot be signed."""


_KINDS = ((ec.EllipticCurvePrivateKey, "an EC key"), (ed25519.Ed25519PrivateKey, "an Ed25519 key"),
          (ed448.Ed448PrivateKey, "an Ed448 key"))


def check_private_key(pem: bytes, what: str) -> rsa.RSAPrivateKey:
    """The RSA private key in ``pem`` (PKCS#1 or PKCS#8, unencrypted, at least
    :data:`MIN_KEY_BITS` bits); otherwise :class:`DkimError`, in one line that starts with
    ``what`` and says why.

    Cheap (no RSA consistency check: OpenSSL's takes 40 ms, and FastDkimSigner does it).
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None,
                                                 unsafe_skip_rsa_key_validation=True)
    except TypeError:
        raise DkimError(f"{what} is encrypted; DKIM needs it without a passphrase "
                        "(openssl pkey -in KEY -out PLAIN)") from None
    except (ValueError, UnsupportedAlgorithm):
        if b"-----BEGIN" not in pem:
            reason = "no PEM block (-----BEGIN ...-----) in it"
        elif b"PUBLIC KEY-----" in pem and b"PRIVATE KEY-----" not in pem:
            reason = "it holds a public key, not the private key"
        else:
            reason = "its PEM block does not hold a readable private key"
        raise DkimError(f"{what} is not a PEM RSA private key (PKCS#1 or PKCS#8): "
                        f"{reason}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = next((name for cls, name in _KINDS if isinstance(key, cls)),
                    f"a {type(key).__name__.removeprefix('_').removesuffix('PrivateKey')} key")
        raise DkimError(f"{what} is not an RSA key: it is {kind} (DKIM signs with rsa-sha256)")
    if key.key_size < MIN_KEY_BITS:
        raise DkimError(f"{what} has {key.key_size} bits; verifiers want {MIN_KEY_BITS} at "
                        "least (2048 recommended)")
    return key


def read_private_key(key_path: str | Path) -> bytes:
    """The PEM bytes at ``key_path``, checked by :func:`check_private_key`; otherwise
    :class:`DkimError`, in one line naming the file: missing, a folder, not readable, too
    large, not PEM, encrypted, not RSA, too short."""
    try:
        with open(key_path, "rb") as handle:
            pem = handle.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise DkimError(f"cannot read the DKIM private key {key_path}: "
                        f"{exc.strerror or exc}") from exc
    if len(pem) > _MAX_KEY_FILE:
        raise DkimError(f"the DKIM private key {key_path} is not a key: over "
                        f"{_MAX_KEY_FILE // 1024} KB")
    check_private_key(pem, f"the DKIM private key {key_path}")
    return pem


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
        check_private_key(key, f"the DKIM key for {selector}._domainkey.{domain}")
        try:
            parse_pem_private_key(key)
        except (UnparsableKeyError, ValueError) as exc:
            raise DkimError(
                f"the DKIM key for {selector}._domainkey.{domain} is not a PEM RSA private key "
                f"dkimpy reads (PKCS#1 or PKCS#8): {' '.join(str(exc).split())}"
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
        """Read the PEM key at ``key_path``; :class:`DkimError` (one line) if it is missing,
        unreadable or not an RSA key (:func:`read_private_key`)."""
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
