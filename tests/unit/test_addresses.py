"""Address normal form and keyed hashes."""

from __future__ import annotations

import pytest

from newsletter.subscribers.addresses import InvalidAddress, email_hash, normalise_email


@pytest.mark.parametrize("raw,expected", [
    ("Ada@Example.COM", "ada@example.com"),
    ("  ada@example.com\t", "ada@example.com"),
    ("ada@BÜCHER.example", "ada@bücher.example"),
])
def test_normal_form(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "ada", "ada@", "@example.com", "a b@example.com",
                                 "ada@example.com\nBcc: x@example.com", "ada@exa\rmple.com",
                                 None, 42])
def test_refused(raw):
    with pytest.raises(InvalidAddress):
        normalise_email(raw)


def test_hash_is_keyed_and_stable():
    assert email_hash("ada@example.com", b"k1") == email_hash("ada@example.com", b"k1")
    assert email_hash("ada@example.com", b"k1") != email_hash("ada@example.com", b"k2")
    assert "ada" not in email_hash("ada@example.com", b"k1")
