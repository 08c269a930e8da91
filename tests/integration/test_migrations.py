"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from newsletter.db import db


def test_migrations_and_models_agree(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_database_is_at_the_head_revision(app):
    from alembic.script import ScriptDirectory
    from flask_migrate import Migrate  # noqa: F401 - the extension holds the config

    config = app.extensions["migrate"].migrate.get_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    assert current == head


def test_upgrading_keeps_rows_that_refer_to_rebuilt_tables(tmp_path):
    """SQLite rebuilds a table to add a constraint (batch mode); with foreign keys on, the
    old table's DROP would cascade into every table that refers to it. Upgrading from 0003
    keeps editions' links and derives the new columns and tables from existing rows."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from tests.support.migrations import app_on_an_empty_database

    app = app_on_an_empty_database(tmp_path)
    with app.app_context():
        upgrade(revision="0003")
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO topics (id, slug, name, description, premium, position) "
                "VALUES (1, 'ai', 'AI', '', 0, 1)"))
            conn.execute(text(
                "INSERT INTO editions (id, kind, subject, preheader, status, content, "
                "audience, tracking, created_at) VALUES (1, 'special', 'Old', '', 'sent', "
                "'{}', '{\"topics\": [\"ai\"], \"tier\": \"all\"}', 1, '2026-01-01')"))
            conn.execute(text("INSERT INTO edition_links (edition_id, n, url) "
                              "VALUES (1, 1, 'https://news.example/a')"))
            conn.execute(text(
                "INSERT INTO syntheses (id, external_id, slug, title, summary, context, "
                "analysis, watch, mentions, byline, source_name, source_url, status, "
                "published_at, created_at, updated_at) VALUES (1, 'x', 'x', 'T', 'S', '', '', "
                "'', '[]', '', 'N', 'https://a.example', 'published', '2026-01-01 08:00:00', "
                "'2026-01-01', '2026-01-01')"))
        upgrade()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT url FROM edition_links")).scalars().all() == [
                "https://news.example/a"]
            assert conn.execute(text("SELECT edition_id, topic_id FROM edition_topics")
                                ).all() == [(1, 1)]
            assert conn.execute(text("SELECT listed_at FROM syntheses")).scalar_one() \
                .startswith("2026-01-01 08:00")
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        db.engine.dispose()
