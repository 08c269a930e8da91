"""Commands an operator runs: api tokens, demo content."""

from __future__ import annotations

from sqlalchemy import func, select

from newsletter.accounts.models import ApiToken
from newsletter.content.models import Synthesis, Topic
from newsletter.db import db


def test_api_token_create_list_revoke(runner, client):
    created = runner.invoke(args=["api-token", "create", "ingest-bot"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("nl_") and len(secret) > 40
    stored = db.session.scalar(select(ApiToken))
    assert stored.token_hash != secret and secret not in stored.token_hash, "hash only"
    assert client.get("/api/v1/syntheses",
                      headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    listing = runner.invoke(args=["api-token", "list"])
    assert "ingest-bot" in listing.stdout and "active" in listing.stdout
    assert "last used never" not in listing.stdout
    assert secret not in listing.stdout

    duplicate = runner.invoke(args=["api-token", "create", "ingest-bot"])
    assert duplicate.exit_code == 1
    assert "exists already" in duplicate.output

    assert runner.invoke(args=["api-token", "revoke", "ingest-bot"]).exit_code == 0
    assert client.get("/api/v1/syntheses",
                      headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    unknown = runner.invoke(args=["api-token", "revoke", "nobody"])
    assert unknown.exit_code == 1 and "no token named 'nobody'" in unknown.output


def test_api_token_bad_name_changes_nothing(runner, app):
    result = runner.invoke(args=["api-token", "create", "bad name\nwith newline"])
    assert result.exit_code == 1
    assert "a token name is 1-100 characters" in result.output
    assert db.session.scalar(select(func.count(ApiToken.id))) == 0


def test_seed_demo_loads_a_real_publication_once(runner, client):
    result = runner.invoke(args=["seed-demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    topics = {t.name: t for t in db.session.scalars(select(Topic))}
    assert "AI policy and safety" in topics and len(topics) >= 5
    syntheses = list(db.session.scalars(select(Synthesis)))
    assert len(syntheses) >= 15
    assert all(s.title and s.summary and s.analysis and s.watch and s.source_url
               for s in syntheses)
    for topic in topics.values():
        assert any(topic in s.topics for s in syntheses), f"{topic.name} has no synthesis"
    days = {s.published_at.date() for s in syntheses}
    assert len(days) >= 3, "spread over the last few days"

    again = runner.invoke(args=["seed-demo", "--if-empty"])
    assert "demo content not loaded" in again.output
    assert db.session.scalar(select(func.count(Synthesis.id))) == len(syntheses)

    home = client.get("/").get_data(as_text=True)
    assert home.count('class="card"') == min(20, len(syntheses))
