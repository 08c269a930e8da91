"""Blueprints and the request-level concerns shared by every page and endpoint."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    NotFound,
    ServiceUnavailable,
)
from werkzeug.exceptions import Conflict as ConflictAnswer

from newsletter.errors import NewsletterError
from newsletter.web import filters

# The one mapping of a domain error's kind (``newsletter.errors``) to an HTTP answer.
KIND_ANSWERS: dict[str, type[HTTPException]] = {
    "invalid": BadRequest, "conflict": ConflictAnswer, "not_found": NotFound,
    "unavailable": ServiceUnavailable,
}


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/hooks/"))


def _payment_origins(config) -> list[str]:
    """Where a form may lead besides this site: Stripe's Checkout and Billing Portal, whose
    pages the upgrade and "manage billing" buttons redirect to (CSP ``form-action`` covers
    the redirect after a form, so without them the browser stops there)."""
    if not config.get("STRIPE_SECRET_KEY"):
        return []
    origins = ["https://checkout.stripe.com", "https://billing.stripe.com"]
    base = urlsplit(config.get("STRIPE_API_BASE") or "")
    if base.scheme in ("http", "https") and base.netloc:
        origins.append(f"{base.scheme}://{base.netloc}")  # a Stripe-compatible test server
    return origins


def trust_proxies(app: Flask, hops: int) -> None:
    """Behind ``hops`` reverse proxies, take the client's address, scheme, host and port from
    the ``X-Forwarded-*`` headers they add (werkzeug's ProxyFix reads the last ``hops``
    values, so a client cannot put its own in front). With 0 the headers are ignored:
    without a proxy, anyone could send them."""
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,
                                x_port=hops)


def register_web(app: Flask) -> None:
    trust_proxies(app, app.config["TRUSTED_PROXIES"])
    from newsletter.web.api import bp as api_bp
    from newsletter.web.hooks.views import bp as hooks_bp
    from newsletter.web.public import unsubscribe  # noqa: F401 - its view joins readers_bp
    from newsletter.web.public.billing import bp as billing_bp
    from newsletter.web.public.editions import bp as editions_bp
    from newsletter.web.public.feeds import bp as feeds_bp
    from newsletter.web.public.readers import bp as readers_bp
    from newsletter.web.public.tracking import bp as tracking_bp
    from newsletter.web.public.views import bp as public_bp

    app.register_blueprint(public_bp)
    app.register_blueprint(readers_bp)
    app.register_blueprint(editions_bp)
    app.register_blueprint(billing_bp)
    app.register_blueprint(tracking_bp)
    app.register_blueprint(hooks_bp)
    app.register_blueprint(feeds_bp)
    app.register_blueprint(api_bp)
    from newsletter.web import admin, logins  # noqa: F401 - logins registers the user_loader

    admin.register(app)
    from newsletter.extensions import csrf

    csrf.exempt(api_bp)
    csrf.exempt(hooks_bp)
    # Assigned, not setdefault: Flask and Flask-WTF define these keys already.
    https = app.config["BASE_URL"].startswith("https:")
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = https
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["WTF_CSRF_TIME_LIMIT"] = None  # a form's token lives as long as its session
    filters.register(app)

    @app.context_processor
    def _publication():
        from newsletter.subscribers.service import CONSENT_TEXT
        from newsletter.web.public.reader_sessions import current_reader
        from newsletter.wiring import reader_services

        return {"publication": app.config["PUBLICATION_NAME"],
                "subscribe_topics": reader_services().offered_topics,
                "consent_text": CONSENT_TEXT,
                "reader_signed_in": lambda: current_reader() is not None}

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError):
        error.description = ("This form was not sent from this site, or it has expired. "
                             "Go back, reload the page and try again.")
        return _http_error(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if _wants_json():  # the API's one shape (web.api.payloads.api_error)
            return jsonify(error=error.name.lower().replace(" ", "_"),
                           message=error.description), error.code
        if request.path.startswith("/admin/") and (request.path.endswith(".json")
                                                  or request.accept_mimetypes.best
                                                  == "application/json"):
            return jsonify(error=error.name.lower(), message=error.description), error.code
        template = "admin/error.html" if request.path.startswith("/admin") else "error.html"
        return render_template(template, error=error), error.code

    @app.errorhandler(NewsletterError)
    def _domain_error(error: NewsletterError):
        """A domain error no view caught: its kind's status, in the API's one JSON shape
        (``{"error": kind, "message", "problems"?}``) for the API and hooks, the error page
        elsewhere — never a 500."""
        answer = KIND_ANSWERS.get(error.kind, BadRequest)(description=str(error) or None)
        if not _wants_json():
            return _http_error(answer)
        body = {"error": error.kind, "message": str(error)}
        if getattr(error, "errors", None):
            body["problems"] = [problem.as_dict() for problem in error.errors]
        return jsonify(body), answer.code

    form_action = " ".join(["'self'", *_payment_origins(app.config)])

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            f"frame-ancestors 'none'; base-uri 'none'; form-action {form_action}",
        )
        if https:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
