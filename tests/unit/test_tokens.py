"""Signed tokens: purposes, expiry, rotation, tampering."""

from __future__ import annotations

import pytest
import time_machine

from newsletter.subscribers.tokens import Purpose, TokenExpired, TokenInvalid, Tokens

AGES = {Purpose.CONFIRM: 3600, Purpose.MANAGE: 3600, Purpose.EMAIL_CHANGE: 3600}


def test_round_trip_and_purpose_separation():
    tokens = Tokens(["k1"], AGES)
    token = tokens.make(Purpose.CONFIRM, {"r": 7, "e": "a@example.com"})
    assert tokens.read(Purpose.CONFIRM, token) == {"r": 7, "e": "a@example.com"}
    for other in (Purpose.MANAGE, Purpose.EMAIL_CHANGE, Purpose.UNSUBSCRIBE):
        with pytest.raises(TokenInvalid):
            tokens.read(other, token)


def test_rotation_newest_signs_all_verify():
    old = Tokens(["old"], AGES)
    rotated = Tokens(["new", "old"], AGES)
    legacy = old.make(Purpose.MANAGE, {"r": 1})
    assert rotated.read(Purpose.MANAGE, legacy) == {"r": 1}
    fresh = rotated.make(Purpose.MANAGE, {"r": 2})
    assert Tokens(["new"], AGES).read(Purpose.MANAGE, fresh) == {"r": 2}
    with pytest.raises(TokenInvalid):
        old.read(Purpose.MANAGE, fresh)


def test_expiry_is_per_purpose_and_unsubscribe_never_expires():
    tokens = Tokens(["k"], AGES)
    with time_machine.travel(0, tick=False) as traveller:
        confirm = tokens.make(Purpose.CONFIRM, {"r": 1})
        unsubscribe = tokens.make(Purpose.UNSUBSCRIBE, {"r": 1})
        traveller.shift(3601)
        with pytest.raises(TokenExpired):
            tokens.read(Purpose.CONFIRM, confirm)
        traveller.shift(10 * 365 * 24 * 3600)
        assert tokens.read(Purpose.UNSUBSCRIBE, unsubscribe) == {"r": 1}


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 1001])
def test_malformed_tokens(token):
    with pytest.raises(TokenInvalid):
        Tokens(["k"], AGES).read(Purpose.CONFIRM, token)


def test_payload_must_name_a_reader():
    tokens = Tokens(["k"], AGES)
    with pytest.raises(TokenInvalid):
        tokens.read(Purpose.CONFIRM, tokens.make(Purpose.CONFIRM, {"r": "1"}))
