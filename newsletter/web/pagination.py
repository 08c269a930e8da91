"""The ``?page=N`` of every paginated public page, read one way."""

from __future__ import annotations

from flask import abort, request

from newsletter.validation import whole_number

MAX_PAGE = 10_000
NO_SUCH_PAGE = ("There is no such page: the page must be a whole number from 1 to "
                f"{MAX_PAGE:,}.")


def parse_page(value: str | None) -> int | None:
    """``value`` as a page number, or ``None`` unless it is an ASCII whole number from 1 to
    :data:`MAX_PAGE`. A missing value is page 1."""
    if value is None:
        return 1
    return whole_number(value, 1, MAX_PAGE)


def page_number() -> int:
    """The request's ``?page=`` (1 when absent); anything that is not a page number answers
    404, as a page past the last one does: there is no such page."""
    page = parse_page(request.args.get("page"))
    if page is None:
        abort(404, NO_SUCH_PAGE)
    return page
