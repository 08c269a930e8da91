"""The suppression list has one writer (issue 27): ``subscribers.suppression``. A test that
reads the source, so a second writer — SQL or ORM — fails it by name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "newsletter"
WRITER = ROOT / "subscribers" / "suppression.py"
WRITES = re.compile(r"INSERT\s+INTO\s+suppressions|UPDATE\s+suppressions|"
                    r"\bSuppression\(\s*email_hash|insert\(\s*Suppression\b|"
                    r"update\(\s*Suppression\b", re.IGNORECASE)


def test_only_the_writer_adds_to_the_suppression_list():
    writers = sorted(str(path.relative_to(ROOT)) for path in ROOT.rglob("*.py")
                     if WRITES.search(path.read_text(encoding="utf-8")))
    assert writers == [str(WRITER.relative_to(ROOT))]
