"""The transports that stand in for a relay in development and tests: an outbox folder of
``.eml`` files (``make run``) and the console. Same contract as ``transports.Transport``."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from newsletter.mail.transports import SendResult, TransportError

__all__ = ["ConsoleTransport", "FileTransport"]


class FileTransport:
    """Writes each message to ``outbox_dir/<UTC timestamp>-<uuid>.eml``, atomically.

    The file appears complete or not at all: it is written to a hidden temporary file in
    the same folder, flushed to disk and renamed. The folder is created when needed. Like a
    final MTA (RFC 5321, 4.4), it records the envelope sender as a ``Return-Path`` line
    above the message (outside the DKIM signature, which never covers it).
    """

    def __init__(self, outbox_dir: str | Path) -> None:
        self.outbox_dir = Path(outbox_dir)

    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes, *,
             dot_safe: bool = False) -> SendResult:
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex}.eml"
        tmp_path: str | None = None
        try:
            self.outbox_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_path = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.outbox_dir)
            with os.fdopen(fd, "wb") as handle:
                if any(ch in envelope_from for ch in "\r\n\0<>"):
                    raise ValueError("an envelope sender cannot contain CR, LF, NUL or <>")
                handle.write(b"Return-Path: <" + envelope_from.encode() + b">\r\n")
                handle.write(message)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_path, self.outbox_dir / name)
            tmp_path = None
            self._sync_dir()
        except OSError as exc:
            raise TransportError(None, f"cannot write to the outbox: {exc}",
                                 permanent=False) from exc
        finally:
            if tmp_path is not None:
                Path(tmp_path).unlink(missing_ok=True)
        return SendResult(250, f"written {name}")

    def close(self) -> None:
        pass

    def _sync_dir(self) -> None:
        # The rename is durable only once the folder itself is flushed (POSIX only).
        if os.name != "posix":
            return
        fd = os.open(self.outbox_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ConsoleTransport:
    """Prints each message, for development. ``stream`` defaults to the current stdout."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes, *,
             dot_safe: bool = False) -> SendResult:
        stream = self.stream or sys.stdout
        text = message.decode("utf-8", "replace").replace("\r\n", "\n")
        stream.write(f"---- message from {envelope_from} to {', '.join(recipients)} ----\n")
        stream.write(text if text.endswith("\n") else text + "\n")
        stream.write("---- end of message ----\n")
        stream.flush()
        return SendResult(250, "printed")

    def close(self) -> None:
        pass
