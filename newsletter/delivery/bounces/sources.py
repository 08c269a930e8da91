"""Where bounce mail is read from: standard input (an MTA pipe), a Maildir, an mbox, or one
``.eml`` file. Yields raw messages; knows nothing of their content.

Intake reads a Maildir once per message (:class:`Maildir`); :func:`read_source` reads any
source whole, every time, and leaves it as it is.

Maildir contract (files only; what it guarantees against crashes and concurrent readers,
with the database, is stated in :mod:`newsletter.delivery.bounces`):

* Unseen messages are read: every file of ``new/``, and every file of ``cur/`` whose flags
  lack ``S`` (an MUA may have moved an unread one there). Hidden files and ``tmp/`` (a
  delivery in progress) are never read. ``cur/`` then ``new/``, each sorted by name (Maildir
  names start with the delivery time, so this is roughly arrival order).
* :meth:`Maildir.mark_seen` renames a message to ``cur/<unique>:2,<flags>`` with ``S`` added
  and the flags kept in ASCII order (the Maildir convention MUAs and Dovecot follow), with
  one ``os.rename`` inside the Maildir: atomic, so the file is in exactly one place at any
  time. A seen message is never read again.
* A file that disappears while we read or rename it was moved by another reader (or an
  MUA): it is skipped, not an error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from mailbox import mbox
from pathlib import Path
from typing import BinaryIO

__all__ = ["Maildir", "read_source", "seen_name"]

SEEN = "S"


def read_source(path_or_dash: str, stdin: BinaryIO | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield ``(label, raw message)`` from a source of bounce mail.

    * ``"-"``: standard input (or ``stdin``) holds ONE message, as an MTA pipe delivers it;
      label ``"-"``.
    * A Maildir (a folder with ``cur/`` and ``new/``): EVERY file of ``cur/`` then ``new/``,
      seen or not, sorted by name, hidden files and ``tmp/`` skipped; label = the file name.
      A file moved away while we read is skipped. This is a look at the whole mailbox;
      intake reads a Maildir with :class:`Maildir` (unseen messages only, each marked seen
      once done), as ``bounces.process_maildir`` does.
    * An mbox file (its first line starts with ``From `` or its name ends ``.mbox``): label
      ``"mbox#N"``, N counting from 1.
    * Any other file: one message (an ``.eml``); label = the file name.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for a folder that is
    not a Maildir or a path that is not a regular file.
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


def _flags(name: str) -> str | None:
    """The flags of a Maildir file name (``"FS"`` of ``"1700.M1P2.host:2,FS"``); None when
    the name has no ``:2,`` info (a file of ``new/``, or an unknown info version)."""
    _, colon, info = name.partition(":")
    return info[2:] if colon and info.startswith("2,") else None


def seen_name(name: str) -> str:
    """The name of the message ``name`` once seen: ``<unique>:2,<flags + S, sorted>``."""
    unique = name.partition(":")[0]
    flags = set(_flags(name) or "") | {SEEN}
    return f"{unique}:2,{''.join(sorted(flags))}"


class Maildir:
    """A Maildir of bounce reports, read once per message (see the module's contract).

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` when it is
    not a folder with ``cur/`` and ``new/``.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bounce maildir not found: {self.path}")
        if not ((self.path / "cur").is_dir() and (self.path / "new").is_dir()):
            raise ValueError(f"{self.path} is not a maildir (it needs cur/ and new/)")

    def unseen(self) -> Iterator[tuple[str, bytes, Path]]:
        """Yield ``(label, raw message, file)`` for each unseen message, read one at a time
        (a file gone by the time we read it is skipped)."""
        for folder in ("cur", "new"):
            with os.scandir(self.path / folder) as listing:
                names = sorted(entry.name for entry in listing
                               if not entry.name.startswith(".")
                               and entry.is_file(follow_symlinks=False)
                               and not (folder == "cur" and SEEN in (_flags(entry.name) or "")))
            for name in names:
                file = self.path / folder / name
                try:
                    raw = file.read_bytes()
                except FileNotFoundError:
                    continue
                yield f"{folder}/{name}", raw, file

    def mark_seen(self, file: Path) -> bool:
        """Move ``file`` (one :meth:`unseen` gave) to ``cur/`` with the ``S`` flag. False
        when it was no longer there: another reader, or an MUA, moved it first."""
        try:
            os.rename(file, self.path / "cur" / seen_name(file.name))
        except FileNotFoundError:
            return False
        return True
