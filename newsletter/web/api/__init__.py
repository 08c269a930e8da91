"""JSON API v1, under ``/api/v1``: the blueprint and, in one table, every route on it.

The view functions live in one module per resource (:mod:`.syntheses`, :mod:`.subscribers`,
:mod:`.editions`); each checks its own bearer token and declares the scopes
that let it in (:func:`.auth.require_token`, ``accounts.scopes``). Endpoint names are the
view functions' names (``api.create_synthesis``, …).
"""

from __future__ import annotations

from flask import Blueprint

from newsletter.web.api import editions, subscribers, syntheses

bp = Blueprint("api", __name__, url_prefix="/api/v1")

bp.add_url_rule("/syntheses", view_func=syntheses.create_synthesis, methods=["POST"])
bp.add_url_rule("/syntheses", view_func=syntheses.list_syntheses, methods=["GET"])
bp.add_url_rule("/subscribers", view_func=subscribers.create_subscriber, methods=["POST"])
bp.add_url_rule("/subscribers/<int:reader_id>", view_func=subscribers.get_subscriber,
                methods=["GET"])
bp.add_url_rule("/subscribers/<int:reader_id>", view_func=subscribers.delete_subscriber,
                methods=["DELETE"])
bp.add_url_rule("/editions", view_func=editions.create_edition, methods=["POST"])
bp.add_url_rule("/editions/<int:edition_id>", view_func=editions.get_edition, methods=["GET"])
