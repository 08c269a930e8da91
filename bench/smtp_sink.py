"""A counting SMTP sink in a process of its own, for benchmarks (never used by tests).

The sink (aiosmtpd on 127.0.0.1, a free port) answers 250 to every message and only counts
messages and bytes: it parses nothing, so what it costs is aiosmtpd's protocol handling
alone. It runs in its own process so that it never competes with the sender for the GIL;
the counters live in shared memory and the parent reads them directly.

    with SmtpSink() as sink:
        ...send to 127.0.0.1:sink.port...
        print(sink.messages, sink.bytes, sink.cpu_seconds())
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from multiprocessing.connection import Connection

HOST = "127.0.0.1"
_MESSAGES, _BYTES = 0, 1   # indexes of the shared counters


class _CountingHandler:
    def __init__(self, counts) -> None:
        self.counts = counts

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
        self.counts[_MESSAGES] += 1
        self.counts[_BYTES] += len(envelope.original_content or b"")
        return "250 OK"


def _serve(conn: Connection, counts) -> None:
    """The sink process: serve until the parent writes to (or closes) the pipe."""
    from aiosmtpd.smtp import SMTP

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    handler = _CountingHandler(counts)
    # A fixed hostname: aiosmtpd would otherwise resolve the machine's FQDN per connection.
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, hostname="sink.bench", decode_data=False), HOST, 0))
    conn.send(server.sockets[0].getsockname()[1])
    loop.add_reader(conn.fileno(), loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


class SmtpSink:
    """Starts the sink process; ``port``, ``messages``, ``bytes``, ``reset()``, ``stop()``."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._counts = ctx.RawArray("q", 2)
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, self._counts),
                                    name="smtp-sink", daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(30):
            self._process.kill()
            raise RuntimeError("the SMTP sink did not start within 30 s")
        self.port: int = self._conn.recv()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def messages(self) -> int:
        return self._counts[_MESSAGES]

    @property
    def bytes(self) -> int:
        return self._counts[_BYTES]

    def reset(self) -> None:
        """Zero the counters; call it only while nobody is sending."""
        self._counts[_MESSAGES] = self._counts[_BYTES] = 0

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the sink process has used so far; None off Linux."""
        try:
            with open(f"/proc/{self._process.pid}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(b"stop")
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._conn.close()

    def __enter__(self) -> SmtpSink:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
