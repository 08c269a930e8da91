"""Open pixel and click redirect."""

from __future__ import annotations

import base64

from flask import Blueprint, Response, abort, current_app, redirect, request

from newsletter.delivery import tracking
from newsletter.wiring import services

bp = Blueprint("tracking", __name__)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@bp.get("/o/<token>")
def open_pixel(token: str):
    """Always the same 1×1 GIF, whatever the token: nothing to learn from probing it."""
    tracking.record_open(token[:100], request.user_agent.string,
                         tokens=services().delivery_tokens,
                         enabled=current_app.config["TRACKING"])
    return Response(PIXEL, mimetype="image/gif", headers={
        "Cache-Control": "no-store, max-age=0", "Referrer-Policy": "no-referrer"})


@bp.get("/c/<token>/<int:n>")
def click(token: str, n: int):
    if n > 100_000:  # no edition has that many links (and SQLite stops at 2**63)
        abort(404, "This link is not valid. It may have been copied incompletely.")
    url = tracking.click_target(token[:100], n, request.user_agent.string,
                                tokens=services().delivery_tokens,
                                enabled=current_app.config["TRACKING"])
    if url is None:
        abort(404, "This link is not valid. It may have been copied incompletely.")
    return redirect(url, code=302)
