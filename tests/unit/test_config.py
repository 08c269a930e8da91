"""Settings from NEWSLETTER_* variables, and the refusal to run with the development key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter import create_app
from newsletter.config import DEV_SECRET_KEY, SETTINGS, ConfigError, finish_config, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_environment_variables_become_settings(tmp_path):
    settings = load_settings({
        "NEWSLETTER_BASE_URL": "https://news.example",
        "NEWSLETTER_MAIL_TRANSPORT": "smtp",
        "NEWSLETTER_DEBUG": "true",
        "NEWSLETTER_MAX_REQUEST_BYTES": "2048",
    })
    assert settings["BASE_URL"] == "https://news.example"
    assert settings["MAIL_TRANSPORT"] == "smtp"
    assert settings["DEBUG"] is True
    assert settings["MAX_CONTENT_LENGTH"] == 2048


def test_defaults_put_everything_under_the_instance_folder(tmp_path):
    config = finish_config(dict(load_settings({}), DEBUG=True, INSTANCE_DIR=str(tmp_path)))
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'newsletter.db'}"
    assert config["OUTBOX_DIR"] == str(tmp_path / "outbox")
    assert config["MAIL_TRANSPORT"] == "file"
    assert config["MAIL_DOMAIN"] == "localhost"


@pytest.mark.parametrize("env,message", [
    ({"NEWSLETTER_DEBUG": "maybe"}, "NEWSLETTER_DEBUG: expected a boolean"),
    ({"NEWSLETTER_MAX_REQUEST_BYTES": "lots"}, "NEWSLETTER_MAX_REQUEST_BYTES"),
])
def test_malformed_values_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_unknown_transport_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="must be file, smtp or console, got 'pigeon'"):
        create_app({"TESTING": True, "MAIL_TRANSPORT": "pigeon", "INSTANCE_DIR": str(tmp_path)})


@pytest.mark.parametrize("key", [None, "", DEV_SECRET_KEY])
def test_production_refuses_the_development_secret(tmp_path, key):
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"):
        create_app({"DEBUG": False, "TESTING": False, "SECRET_KEY": key,
                    "INSTANCE_DIR": str(tmp_path)})


def test_command_line_says_why_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_INSTANCE_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "newsletter.cli", "seed-demo"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("newsletter: refusing to start: NEWSLETTER_SECRET_KEY")


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert missing == []


def test_help_lists_the_commands_even_when_the_settings_refuse(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_INSTANCE_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "newsletter.cli", "--help"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("digest", "edition", "send", "worker", "bounces", "feeds", "serve"):
        assert f"\n  {command} " in result.stdout
    assert "refusing to start: NEWSLETTER_SECRET_KEY" in result.stderr


def test_development_mode_stores_one_key_every_process_shares(tmp_path):
    first = finish_config(dict(load_settings({}), DEBUG=True, INSTANCE_DIR=str(tmp_path)))
    assert first["SECRET_KEY"] not in ("", DEV_SECRET_KEY)
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0, "readable by its owner only"
    # A later command without development mode finds the same key and starts.
    second = finish_config(dict(load_settings({}), INSTANCE_DIR=str(tmp_path)))
    assert second["SECRET_KEY"] == first["SECRET_KEY"]
    assert second["SECRET_KEYS"] == [first["SECRET_KEY"]]
    # A key given in the environment always wins over the stored one.
    given = finish_config(dict(load_settings({"NEWSLETTER_SECRET_KEY": "k" * 40,
                                              "NEWSLETTER_POSTAL_ADDRESS": "1 Real Rd, Leeds"}),
                               INSTANCE_DIR=str(tmp_path)))
    assert given["SECRET_KEY"] == "k" * 40


def test_the_stored_key_serves_only_the_instance_database_and_only_if_private(tmp_path):
    finish_config(dict(load_settings({}), DEBUG=True, INSTANCE_DIR=str(tmp_path)))
    # Beside a database given by URL (a deployment), the stored key is not used: refuse.
    with pytest.raises(ConfigError, match="secret_key"):
        finish_config(dict(load_settings({}), INSTANCE_DIR=str(tmp_path),
                           DATABASE_URL=f"sqlite:///{tmp_path / 'other.db'}"))
    # Tests never read it.
    assert finish_config(dict(load_settings({}), TESTING=True, INSTANCE_DIR=str(tmp_path))
                         )["SECRET_KEY"] == DEV_SECRET_KEY
    # A key others can read is not used; development mode replaces it.
    stored = tmp_path / "secret_key"
    old = stored.read_text().strip()
    stored.chmod(0o644)
    with pytest.raises(ConfigError):
        finish_config(dict(load_settings({}), INSTANCE_DIR=str(tmp_path)))
    renewed = finish_config(dict(load_settings({}), DEBUG=True, INSTANCE_DIR=str(tmp_path)))
    assert renewed["SECRET_KEY"] not in (old, DEV_SECRET_KEY)
    assert stored.stat().st_mode & 0o077 == 0
    # An empty file (a writer killed half-way) is replaced too, never used.
    stored.write_text("")
    again = finish_config(dict(load_settings({}), DEBUG=True, INSTANCE_DIR=str(tmp_path)))
    assert len(again["SECRET_KEY"]) >= 32
    assert list(tmp_path.glob(".secret_key.*")) == [], "no temporary file left behind"


def test_production_refuses_the_placeholder_postal_address(tmp_path):
    from newsletter.config import PLACEHOLDER_ADDRESS

    production = {"DEBUG": False, "TESTING": False, "SECRET_KEY": "k" * 40,
                  "INSTANCE_DIR": str(tmp_path)}
    for address in (PLACEHOLDER_ADDRESS, "", "   "):
        with pytest.raises(ConfigError, match="NEWSLETTER_POSTAL_ADDRESS is unset or the "
                                              "placeholder"):
            create_app({**production, "POSTAL_ADDRESS": address})
    app = create_app({**production, "POSTAL_ADDRESS": "Modelwire Ltd, 10 Real Street, Leeds"})
    assert app.config["POSTAL_ADDRESS"] == "Modelwire Ltd, 10 Real Street, Leeds"
    # Development (make run, and a second terminal on its instance) keeps the placeholder.
    assert create_app({"DEBUG": True, "INSTANCE_DIR": str(tmp_path / "dev")}).config[
        "POSTAL_ADDRESS"] == PLACEHOLDER_ADDRESS
