"""Bulk import of syntheses from a JSON array or JSON Lines file.

Every record is ingested on its own: one bad record is reported with its line number and
reason, and the others still go in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from newsletter.content.service import IngestOutcome, ingest
from newsletter.content.validation import InvalidSynthesis
from newsletter.db import db
from newsletter.validation import JsonRefused, load_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.rejected)


def _records_from_array(text: str) -> Iterator[tuple[int, Any | Exception]]:
    """Yield (line, record) for each element of a top-level JSON array.

    A syntax error cannot be skipped over inside one JSON document, so it is reported at its
    line and ends the file; everything before it has been yielded already.
    """
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    length = len(text)

    def skip_ws(p: int) -> int:
        while p < length and text[p] in " \t\r\n":
            p += 1
        return p

    pos = skip_ws(pos)
    if pos < length and text[pos] == "]":
        return
    while True:
        pos = skip_ws(pos)
        line = text.count("\n", 0, pos) + 1
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield exc.lineno, ValueError(f"invalid JSON: {exc.msg} (column {exc.colno}); "
                                         "the rest of the file was not read")
            return
        except RecursionError:
            yield line, ValueError("refused: the record is nested too deeply; the rest of "
                                   "the file was not read (JSON Lines reads on past it)")
            return
        yield line, record
        pos = skip_ws(pos)
        if pos < length and text[pos] == ",":
            pos += 1
            continue
        if pos < length and text[pos] == "]":
            if skip_ws(pos + 1) < length:
                line = text.count("\n", 0, pos) + 1
                yield line, ValueError("unexpected text after the closing ']'")
            return
        line = text.count("\n", 0, pos) + 1
        yield line, ValueError("invalid JSON: expected ',' or ']' between records; "
                               "the rest of the file was not read")
        return


def _records_from_lines(text: str) -> Iterator[tuple[int, Any | Exception]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number, load_json(raw)
        except json.JSONDecodeError as exc:
            yield number, ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})")
        except JsonRefused as exc:
            yield number, ValueError(f"refused: the record {exc}")


def iter_records(text: str) -> Iterator[tuple[int, Any | Exception]]:
    """Records of a JSON array (first non-blank character ``[``) or of JSON Lines."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return _records_from_array(text.lstrip("\ufeff"))
    return _records_from_lines(text.lstrip("\ufeff"))


def _unreadable(record: Any) -> str | None:
    """Why a parsed record cannot be stored whatever its fields say, or None."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "holds text that is not valid Unicode (a lone surrogate)"
    except (ValueError, RecursionError):
        return "is nested too deeply"
    return None


def import_text(text: str) -> ImportReport:
    """Import every record; one bad record is reported with its line and never stops the
    ones after it."""
    report = ImportReport()
    for line, record in iter_records(text):
        if isinstance(record, Exception):
            report.rejected.append(Rejection(line, str(record)))
            continue
        problem = _unreadable(record)
        if problem:
            report.rejected.append(Rejection(line, problem))
            continue
        try:
            result = ingest(record)
        except InvalidSynthesis as exc:
            db.session.rollback()
            report.rejected.append(Rejection(line, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - a record the database refused; go on
            db.session.rollback()
            log.exception("import: line %d could not be stored", line)
            report.rejected.append(Rejection(line, f"could not be stored ({type(exc).__name__})"))
            continue
        if result.outcome is IngestOutcome.CREATED:
            report.created += 1
        elif result.outcome is IngestOutcome.UPDATED:
            report.updated += 1
        else:
            report.unchanged += 1
    return report
