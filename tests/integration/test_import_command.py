"""newsletter import FILE: JSON array or JSON Lines, one bad record never stops the others."""

from __future__ import annotations

import json

from sqlalchemy import select

from newsletter.content.models import Synthesis
from newsletter.db import db
from tests.factories import synthesis_payload


def external_ids() -> list[str]:
    return sorted(db.session.scalars(select(Synthesis.external_id)))


def test_json_lines_reports_each_bad_line_and_imports_the_rest(runner, topics, tmp_path):
    good1 = synthesis_payload(external_id="a")
    good2 = synthesis_payload(external_id="b")
    lines = [
        json.dumps(good1),
        "{not json",
        json.dumps(synthesis_payload(external_id="c", topics=["Crypto"])),
        "",
        json.dumps(good2),
        json.dumps(good1),
        json.dumps(dict(good2, title="New title")),
        json.dumps(synthesis_payload(external_id="d", source_url="javascript:x")),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = runner.invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert "2 created, 1 updated, 1 unchanged, 3 rejected" in result.stdout
    assert "line 2: rejected: invalid JSON" in result.stderr
    assert "line 3: rejected: topics[0]: unknown topic 'Crypto'" in result.stderr
    assert "line 8: rejected: source_url: must be an http:// or https:// URL" in result.stderr
    assert external_ids() == ["a", "b"]


def test_json_array_reports_line_numbers_of_records(runner, topics, tmp_path):
    records = [synthesis_payload(external_id="x"), synthesis_payload(external_id="y", title=""),
               synthesis_payload(external_id="z")]
    path = tmp_path / "in.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    result = runner.invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert "2 created, 0 updated, 0 unchanged, 1 rejected" in result.stdout
    second_line = path.read_text().splitlines().index("  {", 2) + 1
    assert f"line {second_line}: rejected: title: is required" in result.stderr
    assert external_ids() == ["x", "z"]


def test_array_with_a_syntax_error_keeps_what_came_before(runner, topics, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[\n" + json.dumps(synthesis_payload(external_id="ok")) + ",\n{oops}\n]")
    result = runner.invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert "line 3: rejected: invalid JSON" in result.stderr
    assert external_ids() == ["ok"]


def test_clean_import_exits_zero_and_reads_stdin(runner, topics):
    data = json.dumps([synthesis_payload(external_id="s1")])
    result = runner.invoke(args=["import", "-"], input=data)
    assert result.exit_code == 0, result.output
    assert "1 created, 0 updated, 0 unchanged, 0 rejected" in result.stdout
    assert external_ids() == ["s1"]


def test_non_utf8_and_missing_files_get_clear_errors(runner, topics, tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"title": "caf\xe9"}]'.encode("latin-1"))
    result = runner.invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert "is not UTF-8" in result.output
    missing = runner.invoke(args=["import", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2
    assert "No such file or directory" in missing.output
    assert external_ids() == []
