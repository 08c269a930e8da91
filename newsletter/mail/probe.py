"""Ask an SMTP relay what it offers, without sending anything: connect, EHLO, STARTTLS,
AUTH, QUIT — the steps :class:`~newsletter.mail.transports.SMTPTransport` takes before a
message, done the same way (the certificate checked against the system's trust store).

The result holds facts only (:class:`ProbeResult`); what they mean for a setup is
``newsletter.mail.setup_check``'s business. The password is sent to the relay and
nowhere else: no field of the result holds it.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass

from newsletter.mail.transports import SmtpSettings

__all__ = ["ProbeResult", "probe_relay"]

PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProbeResult:
    """What one connection to the relay showed.

    ``failure`` says what stopped the probe at ``failed_step`` (``connect``, ``ehlo``,
    ``starttls`` or ``auth``); ``None`` when it got through every step the settings ask for.
    ``tls``: the session was encrypted (SMTPS, or STARTTLS done and the certificate
    verified). ``auth_offered``: the mechanisms EHLO listed (after STARTTLS when done).
    ``logged_in``: the URL's user and password were accepted. ``hostname``: the name the
    relay gave in its EHLO reply.
    """

    failure: str | None = None
    failed_step: str | None = None
    hostname: str = ""
    starttls_offered: bool = False
    tls: bool = False
    auth_offered: tuple[str, ...] = ()
    logged_in: bool = False

    @property
    def reached(self) -> bool:
        return self.failed_step not in ("connect", "ehlo")


def _tls_failure(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the relay's certificate was not accepted: {exc.verify_message}"
    if exc.reason == "WRONG_VERSION_NUMBER":
        return "the port does not speak TLS (plain SMTP there? then smtp://…?starttls=true)"
    return str(exc.reason or exc)


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


def probe_relay(settings: SmtpSettings, *, ssl_context: ssl.SSLContext | None = None,
                timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    """Connect to the relay of ``settings`` and go as far as it lets us, then QUIT.

    STARTTLS is done when ``settings.starttls`` asks for it (as the transport would); a
    login is tried when the settings carry a user. Waits ``timeout`` seconds at most per
    step (or the URL's own timeout if shorter). Never raises for what the relay does.
    """
    facts: dict = {}
    wait = min(settings.timeout, timeout)
    context = ssl_context or ssl.create_default_context()
    conn: smtplib.SMTP | None = None

    def stop(step: str, failure: str) -> ProbeResult:
        return ProbeResult(failure=failure, failed_step=step, **facts)

    try:
        try:
            if settings.implicit_tls:
                conn = smtplib.SMTP_SSL(settings.host, settings.port, timeout=wait,
                                        context=context)
            else:
                conn = smtplib.SMTP(settings.host, settings.port, timeout=wait)
        except smtplib.SMTPConnectError as exc:
            return stop("connect", f"the relay refused the connection: {exc.smtp_code} "
                                   f"{_text(exc.smtp_error)}")
        except ssl.SSLError as exc:
            return stop("connect", f"TLS (smtps) failed: {_tls_failure(exc)}")
        except (OSError, smtplib.SMTPException) as exc:
            return stop("connect", f"cannot connect: {exc}")
        facts["tls"] = settings.implicit_tls
        try:
            code, reply = conn.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
            return stop("ehlo", f"the connection dropped at EHLO: {exc}")
        if code != 250:
            return stop("ehlo", f"EHLO refused: {code} {_text(reply)}")
        facts["hostname"] = _text(reply).partition(" ")[0]
        facts["starttls_offered"] = conn.has_extn("starttls")
        if settings.starttls:
            if not facts["starttls_offered"]:
                return stop("starttls", "the relay does not offer STARTTLS, which the URL "
                                        "asks for (starttls=true)")
            try:
                conn.starttls(context=context)
                conn.ehlo()
            except ssl.SSLError as exc:
                return stop("starttls", f"STARTTLS failed: {_tls_failure(exc)}")
            except smtplib.SMTPResponseException as exc:
                return stop("starttls", f"STARTTLS refused: {exc.smtp_code} "
                                        f"{_text(exc.smtp_error)}")
            except (OSError, smtplib.SMTPException) as exc:
                return stop("starttls", f"STARTTLS failed: {exc}")
            facts["tls"] = True
        facts["auth_offered"] = tuple(conn.esmtp_features.get("auth", "").upper().split())
        if settings.username:
            if not facts["auth_offered"]:
                return stop("auth", "the relay offers no AUTH, and the URL has a user and "
                                    "password")
            try:
                conn.login(settings.username, settings.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                return stop("auth", f"the relay refused the login of {settings.username}: "
                                    f"{exc.smtp_code} {_text(exc.smtp_error)}")
            except smtplib.SMTPNotSupportedError:
                return stop("auth", "the relay offers no AUTH mechanism smtplib speaks "
                                    f"({' '.join(facts['auth_offered'])})")
            except (OSError, smtplib.SMTPException) as exc:
                return stop("auth", f"the login of {settings.username} failed: {exc}")
            facts["logged_in"] = True
        with contextlib.suppress(OSError, smtplib.SMTPException):
            conn.quit()
        return ProbeResult(**facts)
    finally:
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
