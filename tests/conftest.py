"""Fixtures: one database per test run (built by the migrations), a fresh app per test.

The suite runs on SQLite by default and on the database named by
``NEWSLETTER_TEST_DATABASE_URL`` (the CI's PostgreSQL lane). Each test starts with empty
tables; the schema is built once per run through ``alembic upgrade``, exactly as in
production.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, inspect, text

from newsletter import create_app
from newsletter.db import db
from tests.support.dkim import dkim_key, dkim_key_file  # noqa: F401 - fixtures
from tests.support.smtp import smtp_server, smtp_tls_server  # noqa: F401 - fixtures
from tests.support.stripe import stripe_server  # noqa: F401 - fixture

TEST_SECRET = "test-secret-key-not-for-production"  # noqa: S105


def _reset_schema(url: str) -> None:
    """Drop everything a previous run left in a shared test database."""
    if url.startswith("sqlite"):
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in inspect(conn).get_table_names():
            conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    engine.dispose()


def _worker_database(url: str, worker: str) -> str:
    """Under pytest-xdist each worker gets a database of its own on the same server
    (``<name>_<worker>``), made afresh: workers wipe tables between tests, so they must
    not share one. A run without xdist uses the database it was given."""
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_{worker}"
    engine = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _drop_worker_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    base = make_url(url)
    engine = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{base.database}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    """pytest-xdist's worker name (``gw0``…), or ``master`` without it (its own fixture of
    that name takes over when the plugin is loaded)."""
    return getattr(request.config, "workerinput", {}).get("workerid", "master")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory, worker_id):
    url = os.environ.get("NEWSLETTER_TEST_DATABASE_URL")
    per_worker = bool(url) and worker_id != "master"
    if per_worker:
        url = _worker_database(url, worker_id)
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    _reset_schema(url)
    from flask_migrate import upgrade

    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET,
                      "INSTANCE_DIR": str(tmp_path_factory.mktemp("instance"))})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    yield url
    if per_worker:
        _drop_worker_database(url)


def make_config(tmp_path: Path, database_url: str, **overrides) -> dict:
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "MAIL_TRANSPORT": "file",
        "BASE_URL": "https://news.example",
        "MAIL_FROM": "Modelwire <newsletter@news.example>",
        "PUBLICATION_NAME": "Modelwire",
    }
    config.update(overrides)
    return config


@pytest.fixture
def app_config(tmp_path, database_url) -> dict:
    """Override entries of this dict in a test (before using ``app``) to change settings."""
    return make_config(tmp_path, database_url)


class FreshContextClient(FlaskClient):
    """Each request runs in its own app context, as in production.

    The ``app`` fixture keeps an app context open for the test's own queries; without this,
    requests would share its ``g`` (so a cached CSRF token outlives a cleared session) and
    its database session. After each request the test's session is expired, so the test
    sees what the request committed.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()
        return response


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.test_client_class = FreshContextClient
    with app.app_context():
        yield app
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def topics(app):
    """The topics most tests need: a policy topic, a research topic and a premium one."""
    from tests.factories import make_topic

    return [
        make_topic("ai-policy-and-safety", "AI policy and safety", position=1),
        make_topic("models-and-research", "Models and research", position=2),
        make_topic("analyst-briefings", "Analyst briefings", premium=True, position=3),
    ]


@pytest.fixture
def api_token(app) -> str:
    """A token called ``tests`` holding every scope (tests/integration/test_api_scopes.py
    checks what fewer scopes may not do). Its creation is one "created api token" entry in
    the audit log."""
    from newsletter.accounts import scopes
    from newsletter.accounts.audit import AdminActor
    from newsletter.accounts.service import create_token

    return create_token("tests", scopes.ALL, actor=AdminActor(None, "tests")).secret


@pytest.fixture
def auth(api_token) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token}"}
