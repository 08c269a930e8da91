"""An app on an empty SQLite database, for tests that migrate it step by step with rows
written in between (what an older release left)."""

from __future__ import annotations

from pathlib import Path


def app_on_an_empty_database(tmp_path: Path):
    """An app whose database (``old.db`` in ``tmp_path``) has no tables yet: the test
    upgrades it to the revision it starts from."""
    from newsletter import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "x" * 40,
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}",
                       "INSTANCE_DIR": str(tmp_path)})
