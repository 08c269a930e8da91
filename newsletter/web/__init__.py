"""Blueprints and the request-level concerns shared by every page and endpoint."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from newsletter.web import filters


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/hooks/"))


def register_web(app: Flask) -> None:
    from newsletter.web.api.views import bp as api_bp
    from newsletter.web.public.feeds import bp as feeds_bp
    from newsletter.web.public.views import bp as public_bp

    app.register_blueprint(public_bp)
    app.register_blueprint(feeds_bp)
    app.register_blueprint(api_bp)
    filters.register(app)

    @app.context_processor
    def _publication():
        return {"publication": app.config["PUBLICATION_NAME"]}

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if _wants_json():
            return jsonify(error=error.name.lower(), message=error.description), error.code
        return render_template("error.html", error=error), error.code

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        return response
