"""newsletter edition create / send / editions / pause / resume / cancel."""

from __future__ import annotations

from pathlib import Path

from tests.factories import make_synthesis
from tests.support.editions import audience


def test_create_send_and_list(runner, app, topics):
    audience(3)
    synthesis = make_synthesis(title="Command line story")
    created = runner.invoke(args=["edition", "create", "--subject", "From the CLI",
                                  "--synthesis", synthesis.slug])
    assert created.exit_code == 0, created.output
    edition_id = created.stdout.strip()
    sent = runner.invoke(args=["send", edition_id, "--quiet"])
    assert sent.exit_code == 0, sent.output
    assert "sent 3, deferred 0, bounced 0, failed 0" in sent.output
    assert len(list(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))) == 3
    listing = runner.invoke(args=["editions"])
    assert "sent" in listing.output and "From the CLI" in listing.output
    again = runner.invoke(args=["send", edition_id])
    assert again.exit_code == 1 and "is sent" in again.output


def test_bad_input_to_edition_commands(runner, app, topics):
    assert "no published synthesis" in runner.invoke(
        args=["edition", "create", "--subject", "x", "--synthesis", "nope"]).output
    empty = runner.invoke(args=["edition", "create", "--subject", "x"])
    assert empty.exit_code == 1 and "an edition needs a body or syntheses" in empty.output
    bad_time = runner.invoke(args=["edition", "create", "--subject", "x", "--send-at",
                                   "tomorrow"])
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.output
    naive = runner.invoke(args=["edition", "create", "--subject", "x", "--send-at",
                                "2026-12-01T07:00:00"])
    assert naive.exit_code == 2 and "timezone offset" in naive.output
    assert runner.invoke(args=["send", "999"]).exit_code == 1
    assert "is not sending" in runner.invoke(args=["edition", "pause", "999"]).output
    # resume takes a paused or a failed edition, so an unknown one is named as such
    resumed = runner.invoke(args=["edition", "resume", "999"])
    assert resumed.exit_code == 1 and "no edition 999" in resumed.output
    assert "cannot be cancelled" in runner.invoke(args=["edition", "cancel", "999"]).output
