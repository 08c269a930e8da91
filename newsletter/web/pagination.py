"""The ``?page=N`` of every paginated public page, read one way."""

from __future__ import annotations

from flask import abort, request

MAX_PAGE = 10_000
NO_SUCH_PAGE = ("There is no such page: the page must be a whole number from 1 to "
                f"{MAX_PAGE:,}.")


def parse_page(value: str | None) -> int | None:
    """``value`` as a page number, or ``None`` unless it is an ASCII whole number from 1 to
    :data:`MAX_PAGE`. A missing value is page 1."""
    if value is None:
        return 1
    # str.isdigit() is true for "²" and other Unicode digits, which int() refuses or reads
    # as another number: only ASCII digits are a page number.
    if not (value.isascii() and value.isdigit()):
        return None
    # int() refuses strings of more than 4,300 digits (ValueError): compare the length
    # first, leading zeros aside ("007" is page 7, as it always was).
    if len(value.lstrip("0")) > len(str(MAX_PAGE)) or not 1 <= int(value) <= MAX_PAGE:
        return None
    return int(value)


def page_number() -> int:
    """The request's ``?page=`` (1 when absent); anything that is not a page number answers
    404, as a page past the last one does: there is no such page."""
    page = parse_page(request.args.get("page"))
    if page is None:
        abort(404, NO_SUCH_PAGE)
    return page
