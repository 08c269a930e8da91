"""``?page=N``: one reading for every paginated public page."""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.exceptions import NotFound

from newsletter.web.pagination import MAX_PAGE, page_number, parse_page


@pytest.mark.parametrize(("value", "page"), [
    (None, 1), ("1", 1), ("2", 2), ("007", 7), ("10000", MAX_PAGE),
])
def test_ascii_whole_numbers_from_1_to_the_maximum_are_pages(value, page):
    assert parse_page(value) == page


@pytest.mark.parametrize("value", [
    "", "0", "-1", "+1", " 1", "1.5", "x", "10001", "99999999",
    "²", "١", "1²",          # Unicode digits: str.isdigit() says yes, they are not pages
    "9" * 5000,              # past int()'s 4,300-digit limit: no ValueError
])
def test_anything_else_is_not_a_page(value):
    assert parse_page(value) is None


def test_a_request_for_a_page_that_is_not_one_is_not_found():
    app = Flask(__name__)
    with app.test_request_context("/?page=%C2%B2"), pytest.raises(NotFound) as caught:
        page_number()
    assert "no such page" in caught.value.description
    with app.test_request_context("/?page=3"):
        assert page_number() == 3
    with app.test_request_context("/"):
        assert page_number() == 1
