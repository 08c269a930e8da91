"""A newsletter and subscription delivery system for short AI-news syntheses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from newsletter.config import finish_config, load_settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from ``NEWSLETTER_*`` variables, overridden by ``config``.

    Nothing runs at import time; everything is wired here, so tests make one app per test.
    """
    settings = load_settings()
    if config:
        settings.update(config)
    settings = finish_config(settings)

    app = Flask(__name__, instance_path=settings["INSTANCE_DIR"],
                template_folder="web/templates", static_folder="web/static")
    app.config.update(settings)
    # Flask's command line resets DEBUG from FLASK_DEBUG after the app is made; what
    # NEWSLETTER_DEBUG asked for stays readable here.
    app.config["DEVELOPMENT"] = bool(settings.get("DEBUG"))
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    from newsletter import (
        models,  # noqa: F401 - registers every table on the metadata
        wiring,
    )
    from newsletter.config import PROJECT_ROOT
    from newsletter.db import db
    from newsletter.extensions import csrf, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True,
                     compare_type=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    wiring.init_app(app)

    from newsletter.web import register_web

    register_web(app)

    from newsletter.cli import register_commands

    register_commands(app)
    return app
