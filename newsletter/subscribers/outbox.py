"""The account-mail outbox: confirmations, sign-in links, address-change confirmations and
failed-payment notices are queued by the request (or the webhook) and sent by the worker
(``newsletter worker``, or the sender inside ``make run``), with retries.

Contract:
* ``queue_mail`` only adds a row to the caller's transaction; the caller's commit makes the
  request and its email one change, so a crash loses neither alone. A request therefore does
  the same work (no relay, no rendering) whether or not the address is known.
* ``send_due`` claims a row by compare-and-set (``queued`` → ``sending``, or a ``sending``
  row whose lease ran out), builds the message then (so its link's age starts at sending),
  sends it, and records the outcome under its claim. Two workers never send one row at once.
* A crash after the relay accepted a message and before its row says ``sent`` sends it again
  once the lease runs out: account mail is at-least-once, because a lost confirmation is
  worse than a second one.
* A row no longer wanted when its turn comes (the reader confirmed, asked again, changed
  address, or was erased) is dropped, not sent.
* Replies are judged by the one send policy (``mail.policy.judge_reply``), as list mail's
  are: transient failures (4xx, timeouts, refused connections) are retried after about 30 s,
  2, 8 and 32 min, then every 2 h (``retry_delay``, factor 4, with jitter); a permanent
  refusal (5xx) marks the row ``failed`` and is reported to ``mailer.on_bounce`` (wired to
  the bounce handler: a hard bounce such as ``550 5.1.1`` at RCPT suppresses the address, a
  soft one counts toward the soft-bounce limit) before the row is finished, so a crash in
  between reports it again under the same event id (a duplicate, changing nothing).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update

from newsletter.db import db
from newsletter.mail import TransportError
from newsletter.mail.policy import judge_reply, retry_delay
from newsletter.subscribers.mailer import ReaderMailer
from newsletter.subscribers.models import (
    AccountMail,
    AccountMailKind,
    AccountMailStatus,
    Reader,
    ReaderStatus,
    latest_request,
)

log = logging.getLogger(__name__)

RETRY_BASE = timedelta(seconds=30)
RETRY_FACTOR = 4.0
RETRY_CAP = timedelta(hours=2)
MAX_ATTEMPTS = 7
LEASE = timedelta(minutes=2)
BATCH = 50
# Finished rows hold an address: kept this long for support questions, then deleted.
KEEP_FINISHED = timedelta(days=30)


def queue_mail(reader_id: int, kind: AccountMailKind, to: str,
               request_id: int | None = None) -> None:
    """Add the email to the caller's transaction (not committed here).

    The same email still waiting to go is not queued twice, so asking for a link again and
    again before the worker's next turn sends one.
    """
    waiting = db.session.scalar(
        select(AccountMail.id).where(
            AccountMail.reader_id == reader_id, AccountMail.kind == kind.value,
            AccountMail.to_email == to, AccountMail.status == AccountMailStatus.QUEUED.value,
            AccountMail.attempts == 0,
            AccountMail.request_id.is_(None) if request_id is None
            else AccountMail.request_id == request_id)
        .limit(1))
    if waiting is None:
        db.session.add(AccountMail(reader_id=reader_id, kind=kind.value, to_email=to,
                                   request_id=request_id))


def queued_since(reader_id: int, kind: AccountMailKind, since: datetime) -> bool:
    """Whether an email of ``kind`` was queued for the reader after ``since`` (sent or not)."""
    return db.session.scalar(select(AccountMail.id).where(
        AccountMail.reader_id == reader_id, AccountMail.kind == kind.value,
        AccountMail.created_at > since).limit(1)) is not None


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0       # bounced ones included
    bounced: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.dropped


def _claimable(now: datetime):
    return or_(
        and_(AccountMail.status == AccountMailStatus.QUEUED.value,
             AccountMail.next_attempt_at <= now),
        and_(AccountMail.status == AccountMailStatus.SENDING.value,
             AccountMail.lease_until < now),
    )


# -- name: claim-account-mail
# Contract: moves one due row to ``sending`` under a fresh claim and counts the attempt;
# returns whether this caller won it (another worker's claim makes the rowcount 0).
def _claim(mail_id: int, claim: str, now: datetime) -> bool:
    won = db.session.execute(
        update(AccountMail).where(AccountMail.id == mail_id, _claimable(now))
        .values(status=AccountMailStatus.SENDING.value, claim=claim, lease_until=now + LEASE,
                attempts=AccountMail.attempts + 1)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return won.rowcount == 1


def _finish(mail_id: int, claim: str, now: datetime, **values) -> None:
    """Record an outcome, only while the claim is still ours."""
    db.session.execute(
        update(AccountMail).where(AccountMail.id == mail_id, AccountMail.claim == claim)
        .values(lease_until=None, **values)
        .execution_options(synchronize_session=False))
    db.session.commit()


def _still_wanted(mail: AccountMail, now: datetime) -> str | None:
    """Why the row should not be sent any more, or None when it should."""
    reader = db.session.get(Reader, mail.reader_id)
    if reader is None or reader.status == ReaderStatus.ERASED.value or not mail.to_email:
        return "the reader is gone"
    if mail.kind == AccountMailKind.EMAIL_CHANGE.value:
        return None if reader.pending_email == mail.to_email else "the address change is over"
    if mail.kind == AccountMailKind.EMAIL_CHANGED.value:
        # Written to the address the reader left, on purpose: always told.
        return None if reader.email != mail.to_email else "the old address is back"
    if reader.email != mail.to_email:
        return "the reader changed address"
    if mail.kind == AccountMailKind.PAYMENT_FAILED.value and (
            reader.plan_until is None or reader.plan_until <= now):
        return "the payment went through, or the grace period is over"
    if mail.kind == AccountMailKind.WELCOME.value and reader.status != ReaderStatus.ACTIVE.value:
        return "the reader is no longer subscribed"
    if mail.kind == AccountMailKind.CONFIRM.value:
        if reader.status != ReaderStatus.PENDING.value:
            return "the subscription is no longer waiting for confirmation"
        if mail.request_id != latest_request(reader.id):
            return "a newer request replaced this one"
    return None


def send_due(mailer: ReaderMailer, now: datetime, limit: int = BATCH) -> SendReport:
    """Send up to ``limit`` due account emails over one relay connection."""
    report = SendReport()
    ids = list(db.session.scalars(
        select(AccountMail.id).where(_claimable(now)).order_by(AccountMail.id).limit(limit)))
    db.session.commit()
    breaker = mailer.mail.breaker
    if ids and breaker.admit() is not None:
        return report  # the relay is down: nothing is claimed until the next probe
    sent_any = False
    transport = None
    try:
        for mail_id in ids:
            claim = secrets.token_hex(8)
            if not _claim(mail_id, claim, now):
                continue  # another worker has it
            mail = db.session.get(AccountMail, mail_id)
            if mail.attempts > MAX_ATTEMPTS:  # its worker stopped mid-send, every time
                _fail(report, mail_id, claim, now, "out of tries")
                continue
            why_not = _still_wanted(mail, now)
            if why_not is not None:
                _finish(mail_id, claim, now, status=AccountMailStatus.DROPPED.value,
                        last_error=why_not, finished_at=now)
                report.dropped += 1
                continue
            try:
                message = mailer.message(mail.kind, mail.reader_id, mail.to_email,
                                         mail.request_id,
                                         reader=db.session.get(Reader, mail.reader_id),
                                         now=now)
                if transport is None:
                    transport = mailer.mail.new_transport()
                sent_any = True
                transport.send(message.return_path, [message.to], message.data)
            except TransportError as exc:
                if exc.connecting:
                    breaker.failed(str(exc))
                else:
                    breaker.succeeded()
                verdict = judge_reply(exc.code, exc.reply)
                if verdict.outcome == "bounced":
                    if mailer.on_bounce is not None:
                        mailer.on_bounce(mail.reader_id, verdict.bounce, str(exc),
                                         f"account-mail:{mail_id}")
                    _fail(report, mail_id, claim, now, str(exc))
                    report.bounced += 1
                    continue
                if mail.attempts >= MAX_ATTEMPTS:
                    _fail(report, mail_id, claim, now, str(exc))
                    continue
                _retry(report, mail_id, claim, now, str(exc), mail.attempts)
                break  # a relay that failed once will likely fail the rest: later
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the other emails
                log.exception("account email %s could not be sent", mail_id)
                if mail.attempts >= MAX_ATTEMPTS:
                    _fail(report, mail_id, claim, now, repr(exc))
                else:
                    _retry(report, mail_id, claim, now, repr(exc), mail.attempts)
                continue
            breaker.succeeded()
            _finish(mail_id, claim, now, status=AccountMailStatus.SENT.value, last_error=None,
                    finished_at=now)
            report.sent += 1
            log.info("sent %s email", mail.kind)
    finally:
        if transport is not None:
            transport.close()
        if ids and not sent_any:
            breaker.abandon()  # admitted as the probe, but every row was dropped
    return report


def _fail(report: SendReport, mail_id: int, claim: str, now: datetime, error: str) -> None:
    _finish(mail_id, claim, now, status=AccountMailStatus.FAILED.value, last_error=error[:500],
            finished_at=now)
    report.failed += 1
    report.errors.append(error)
    log.warning("account email %s failed for good: %s", mail_id, error)


def _retry(report: SendReport, mail_id: int, claim: str, now: datetime, error: str,
           attempts: int) -> None:
    delay = retry_delay(attempts, base=RETRY_BASE.total_seconds(),
                        cap=RETRY_CAP.total_seconds(), factor=RETRY_FACTOR)
    _finish(mail_id, claim, now, status=AccountMailStatus.QUEUED.value, last_error=error[:500],
            next_attempt_at=now + timedelta(seconds=delay))
    report.retried += 1
    report.errors.append(error)
    log.info("account email %s will be retried: %s", mail_id, error)


# -- name: prune-account-mail
# Contract: finished rows (sent, failed, dropped) older than ``KEEP_FINISHED`` are deleted,
# with the address they hold; rows still to send are kept.
def prune_finished(now: datetime) -> int:
    result = db.session.execute(
        delete(AccountMail).where(
            AccountMail.status.in_([AccountMailStatus.SENT.value,
                                    AccountMailStatus.FAILED.value,
                                    AccountMailStatus.DROPPED.value]),
            AccountMail.finished_at < now - KEEP_FINISHED)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount or 0


def forget_reader(reader_id: int) -> None:
    """Erasure: delete the reader's account mail, queued or finished (not committed)."""
    db.session.execute(delete(AccountMail).where(AccountMail.reader_id == reader_id)
                       .execution_options(synchronize_session=False))
