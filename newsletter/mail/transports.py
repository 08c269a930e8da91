"""Where built messages go: an SMTP relay — or, for development, an outbox folder of
``.eml`` files or the console (``local_transports``).

Every transport takes finished bytes (CRLF line ends, already signed) and either returns a
:class:`SendResult` (accepted: *sent*, which is not *delivered*) or raises
:class:`TransportError`, whose ``permanent`` flag says whether trying again can help:
5xx replies to a message are permanent; 4xx replies, timeouts, refused connections and
dropped connections are not. This is the only module that imports ``smtplib``.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from newsletter.errors import Unavailable

__all__ = [
    "SMTPTransport", "SendResult", "SmtpSettings", "Transport", "TransportError",
    "make_transport", "parse_smtp_url",
]


@dataclass(frozen=True)
class SendResult:
    """The message was accepted; ``reply`` is the relay's answer (its queue id) or a note."""

    code: int
    reply: str


class TransportError(Unavailable):
    """The message was not accepted.

    ``code`` is the SMTP reply code (``None`` for network failures), ``reply`` the server's
    text or the failure, ``permanent`` whether the same message would be refused again.
    """

    def __init__(self, code: int | None, reply: str, *, permanent: bool,
                 connecting: bool = False) -> None:
        super().__init__(f"{code} {reply}" if code is not None else reply)
        self.code = code
        self.reply = reply
        self.permanent = permanent
        # The relay could not be reached (refused, timed out, dropped before or while
        # greeting, TLS or login failed): nothing was said about this message.
        self.connecting = connecting


class Transport(Protocol):
    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes, *,
             dot_safe: bool = False) -> SendResult:
        """Hand over one message; raise :class:`TransportError` if it was not accepted.

        ``dot_safe``: the caller guarantees no line of ``message`` starts with "." and that it
        ends with CRLF, so SMTP dot-stuffing (a regex over the whole message) is skipped.
        """
        ...

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""
        ...


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the relay. ``implicit_tls`` is SMTPS; ``starttls`` upgrades plain SMTP."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    implicit_tls: bool = False
    timeout: float = 30.0


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_smtp_url(url: str) -> SmtpSettings:
    """Parse ``smtp://user:pass@host:587?starttls=true&timeout=30`` or ``smtps://…@host:465``.

    User and password are percent-decoded. Default ports: 25 (smtp), 465 (smtps). Options:
    ``starttls`` (boolean; smtp only), ``timeout`` (seconds, > 0). Raises ``ValueError``
    with a message that never repeats the password.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in {"smtp", "smtps"}:
        raise ValueError(f"SMTP URL must start with smtp:// or smtps://, got {scheme or 'none'!r}")
    if not parts.hostname:
        raise ValueError("SMTP URL has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"SMTP URL has a bad port: {exc}") from None
    if port == 0:
        raise ValueError("SMTP URL has a bad port: 0")
    if parts.path not in {"", "/"} or parts.fragment:
        raise ValueError("SMTP URL must not have a path or fragment")

    starttls, timeout = False, 30.0
    seen: set[str] = set()
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in seen:
            raise ValueError(f"SMTP URL option {key!r} is given twice")
        seen.add(key)
        if key == "starttls":
            if value.lower() not in _TRUE | _FALSE:
                raise ValueError(f"SMTP URL option starttls must be true or false, got {value!r}")
            starttls = value.lower() in _TRUE
        elif key == "timeout":
            try:
                timeout = float(value)
            except ValueError:
                timeout = -1.0
            if not timeout > 0:
                raise ValueError(f"SMTP URL option timeout must be seconds > 0, got {value!r}")
        else:
            raise ValueError(f"unknown SMTP URL option {key!r} (known: starttls, timeout)")
    if scheme == "smtps" and starttls:
        raise ValueError("smtps:// is already TLS; starttls=true only applies to smtp://")

    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        raise ValueError("SMTP URL has a user but no password (smtp://user:pass@host)")
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if scheme == "smtps" else 25),
        username=username,
        password=password if username else None,
        starttls=starttls,
        implicit_tls=scheme == "smtps",
        timeout=timeout,
    )


class _LostBeforeData(Exception):
    """The connection dropped before the message content was sent: safe to retry."""

    def __init__(self, reply: str, code: int | None = None) -> None:
        super().__init__(reply)
        self.code = code


class SMTPTransport:
    """Sends through one SMTP connection, opened on first use and kept for later sends.

    Not thread-safe: give each sending thread its own transport. A connection that
    dropped before the message content went out (an idle connection the relay closed) is
    reopened once; a drop during DATA is not retried, since the relay may have accepted
    the message. Failures while connecting (refused, TLS, authentication) are not
    permanent: they are about the relay, not the message. Each recipient must be accepted
    or the message is not sent.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.local_hostname = local_hostname
        self._ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None

    def send(self, envelope_from: str, recipients: Sequence[str], message: bytes, *,
             dot_safe: bool = False) -> SendResult:
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        try:
            return self._transaction(envelope_from, recipients, message, dot_safe)
        except _LostBeforeData:
            self._discard()
        try:
            return self._transaction(envelope_from, recipients, message, dot_safe)
        except _LostBeforeData as exc:
            self._discard()
            raise TransportError(exc.code, f"connection lost: {exc}", permanent=False,
                                 connecting=True) from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(OSError):
            conn.quit()
        self._close_quietly(conn)

    def _transaction(
        self, envelope_from: str, recipients: Sequence[str], message: bytes,
        dot_safe: bool = False,
    ) -> SendResult:
        conn = self._conn or self._connect()
        content_sent = False
        try:
            # putcmd, not mail()/rcpt(): those re-parse each address with email.utils, which
            # costs more than the rest of the command; ours are validated already.
            code, reply = self._command(conn, "mail", f"FROM:<{envelope_from}>")
            if code != 250:
                self._refused(conn, "MAIL FROM", code, reply)
            for recipient in recipients:
                code, reply = self._command(conn, "rcpt", f"TO:<{recipient}>")
                if code not in (250, 251):
                    self._refused(conn, f"RCPT TO {recipient}", code, reply)
            content_sent = True
            code, reply = self._data_unstuffed(conn, message) if dot_safe else conn.data(message)
            if code != 250:
                self._refused(conn, "DATA", code, reply, after_content=True)
            return SendResult(code, reply.decode("utf-8", "replace"))
        except smtplib.SMTPServerDisconnected as exc:
            if not content_sent:
                raise _LostBeforeData(str(exc)) from exc
            self._discard()
            raise TransportError(
                None, f"connection lost during DATA, the message may have been accepted: {exc}",
                permanent=False,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            # data() raises this when the DATA command itself is refused.
            self._refused(conn, "DATA", exc.smtp_code, exc.smtp_error)
        except OSError as exc:
            self._discard()
            raise TransportError(None, f"SMTP error: {exc}", permanent=False) from exc

    @staticmethod
    def _command(conn: smtplib.SMTP, verb: str, argument: str) -> tuple[int, bytes]:
        if any(ch in argument for ch in "\r\n\0"):
            raise ValueError("an SMTP address cannot contain CR, LF or NUL")
        conn.putcmd(verb, argument)
        return conn.getreply()

    @staticmethod
    def _data_unstuffed(conn: smtplib.SMTP, message: bytes) -> tuple[int, bytes]:
        """DATA as smtplib does it, minus the dot-stuffing regex (the caller vouched)."""
        conn.putcmd("data")
        code, reply = conn.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        # One write: a separate small write for the final dot could wait on a delayed ACK.
        conn.send(message + (b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n"))
        return conn.getreply()

    def _refused(
        self, conn: smtplib.SMTP, stage: str, code: int, reply: bytes | str,
        *, after_content: bool = False,
    ) -> NoReturn:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        if code == 421:
            # The relay is closing the connection.
            self._discard()
            if not after_content:
                raise _LostBeforeData(f"{stage}: {text}", 421)
        else:
            try:
                conn.rset()
            except (smtplib.SMTPException, OSError):
                self._discard()
        raise TransportError(code, f"{stage}: {text}", permanent=500 <= code < 600)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP | None = None
        try:
            if s.implicit_tls:
                conn = smtplib.SMTP_SSL(s.host, s.port, local_hostname=self.local_hostname,
                                        timeout=s.timeout, context=self._context())
            else:
                conn = smtplib.SMTP(s.host, s.port, local_hostname=self.local_hostname,
                                    timeout=s.timeout)
            conn.ehlo()
            if s.starttls:
                conn.starttls(context=self._context())
                conn.ehlo()
            if s.username:
                conn.login(s.username, s.password or "")
        except smtplib.SMTPResponseException as exc:
            self._close_quietly(conn)
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            raise TransportError(
                exc.smtp_code, f"connecting to {s.host}:{s.port}: {text}", permanent=False,
                connecting=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._close_quietly(conn)
            raise TransportError(
                None, f"cannot connect to {s.host}:{s.port}: {exc}", permanent=False,
                connecting=True) from exc
        self._conn = conn
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        self._close_quietly(conn)

    @staticmethod
    def _close_quietly(conn: smtplib.SMTP | None) -> None:
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()


def make_transport(config: Mapping[str, Any]) -> Transport:
    """Build the transport named by ``MAIL_TRANSPORT`` (``file``, ``smtp`` or ``console``).

    Uses ``OUTBOX_DIR`` for ``file`` and ``SMTP_URL`` for ``smtp``.
    """
    from newsletter.mail.local_transports import ConsoleTransport, FileTransport

    kind = config.get("MAIL_TRANSPORT", "file")
    if kind == "file":
        return FileTransport(config["OUTBOX_DIR"])
    if kind == "smtp":
        return SMTPTransport(parse_smtp_url(config["SMTP_URL"]))
    if kind == "console":
        return ConsoleTransport()
    raise ValueError(f"MAIL_TRANSPORT must be file, smtp or console, got {kind!r}")
