"""Address normal form and keyed hashes."""

from __future__ import annotations

import pytest

from newsletter.subscribers.addresses import InvalidAddress, email_hash, normalise_email


@pytest.mark.parametrize("raw,expected", [
    ("Ada@Example.COM", "ada@example.com"),
    ("  ada@example.com\t", "ada@example.com"),
    # Domains are kept in their ASCII (IDNA) form: every relay and header takes it, and a
    # look-alike (Cyrillic "а") shows as the different domain it is.
    ("ada@BÜCHER.example", "ada@xn--bcher-kva.example"),
    ("user@bücher.de", "user@xn--bcher-kva.de"),
    ("ada@ex\u0430mple.com", "ada@xn--exmple-4nf.com"),
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


@pytest.mark.parametrize("raw", ["jörg@example.com", "p\u0430ypal@example.com",
                                 "用户@例子.广告"])
def test_a_local_part_outside_ascii_is_refused_with_a_clear_reason(raw):
    with pytest.raises(InvalidAddress, match="letters outside A–Z before the @"):
        normalise_email(raw)
