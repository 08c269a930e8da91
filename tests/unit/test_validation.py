"""The shared checks for input from outside (newsletter.validation)."""

from __future__ import annotations

import pytest

from newsletter.validation import JsonRefused, load_json, whole_number


def test_brackets_inside_text_are_text_not_nesting():
    body = '{"summary": "' + "[" * 200 + '"}'
    assert load_json(body) == {"summary": "[" * 200}


@pytest.mark.parametrize("body,reason", [
    ("[" * 65 + "]" * 65, "nested deeper than 64"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ('{"n": ' + "9" * 21 + "}", "longer than 20 digits"),
    ('"\\ud800"', "lone surrogate"),
])
def test_bodies_we_will_not_read(body, reason):
    with pytest.raises(JsonRefused, match=reason):
        load_json(body)


def test_the_deepest_body_we_read():
    assert load_json("[" * 64 + "]" * 64) is not None


@pytest.mark.parametrize("text,expected", [("7", 7), ("007", 7), ("0", None), ("11", None),
                                           ("²", None), ("١", None), ("-1", None),
                                           ("9" * 5000, None), ("", None), (None, None)])
def test_whole_number_takes_only_ascii_digits_in_range(text, expected):
    assert whole_number(text, 1, 10) == expected
