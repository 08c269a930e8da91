"""Where bounce mail is read from: standard input (an MTA pipe), a maildir, an mbox, or one
``.eml`` file. Yields raw messages; knows nothing of their content.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from mailbox import mbox
from pathlib import Path
from typing import BinaryIO

__all__ = ["read_source"]


def read_source(path_or_dash: str, stdin: BinaryIO | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield ``(label, raw message)`` from a source of bounce mail.

    * ``"-"``: standard input (or ``stdin``) holds ONE message, as an MTA pipe delivers it;
      label ``"-"``.
    * A maildir (a folder with ``cur/`` and ``new/``): every file of ``cur/`` then ``new/``,
      sorted by name, hidden files and ``tmp/`` skipped; label = the file name. A file moved
      away while we read (an MUA moving new -> cur) is skipped.
    * An mbox file (its first line starts with ``From `` or its name ends ``.mbox``): label
      ``"mbox#N"``, N counting from 1.
    * Any other file: one message (an ``.eml``); label = the file name.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for a folder that is
    not a maildir or a path that is not a regular file.
    """
    if path_or_dash == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        yield "-", stream.read()
        return
    path = Path(path_or_dash)
    if not path.exists():
        raise FileNotFoundError(f"bounce source not found: {path}")
    if path.is_dir():
        if not ((path / "cur").is_dir() and (path / "new").is_dir()):
            raise ValueError(f"{path} is a folder but not a maildir (it needs cur/ and new/)")
        yield from _read_maildir(path)
        return
    if not path.is_file():
        raise ValueError(f"{path} is neither a file, a maildir nor '-'")
    with path.open("rb") as handle:
        is_mbox = handle.read(5) == b"From " or path.suffix.lower() == ".mbox"
    if not is_mbox:
        yield path.name, path.read_bytes()
        return
    box = mbox(path, create=False)
    try:
        for number, key in enumerate(box.keys(), start=1):
            yield f"mbox#{number}", box.get_bytes(key)
    finally:
        box.close()


def _read_maildir(path: Path) -> Iterator[tuple[str, bytes]]:
    for folder in ("cur", "new"):
        for entry in sorted((path / folder).iterdir()):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                data = entry.read_bytes()
            except FileNotFoundError:
                continue
            yield entry.name, data
