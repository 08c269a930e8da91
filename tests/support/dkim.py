"""A DKIM key for tests: the PEM on disk for the app, and the DNS answer for dkimpy."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@pytest.fixture
def dkim_key(tmp_path):
    """(path of the PEM, dnsfunc for ``dkim.verify``) for selector ``mail``, d=news.example."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "dkim.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dnsfunc(name, timeout=5):
        return record if name == b"mail._domainkey.news.example." else None

    return path, dnsfunc


@pytest.fixture(scope="module")
def dkim_key_file(tmp_path_factory):
    """A 2048-bit RSA key written as PEM for a whole module: (path, the key)."""
    from newsletter.mail.dkim_keys import generate_private_key

    pem, key = generate_private_key()
    path = tmp_path_factory.mktemp("dkim") / "mail.pem"
    path.write_bytes(pem)
    return path, key
