"""Bounces (RFC 3464 DSNs) and complaints (RFC 5965 ARF) that arrive as email.

``sources`` reads raw messages (stdin, Maildir, mbox, ``.eml``), ``parse`` turns one into
:class:`BounceReport` records, ``classify`` gives a DSN recipient block its kind. This module
turns reports into :class:`~newsletter.delivery.events.Event` records and applies them with
the bounce policy: :func:`process_messages` for a pipe, an mbox or a file,
:func:`process_maildir` for a Maildir (``newsletter bounces process`` and the worker's
``NEWSLETTER_BOUNCE_MAILDIR``).

A report becomes an event with source ``arf`` (a complaint) or ``dsn`` (anything else) and
event id ``"<report_id>:<recipient>"``, so a report read twice changes nothing the second time.

Maildir contract — each report is read until its effect is committed, and applied once:

* A message is marked seen (moved to ``cur/…:2,S``, see ``sources``) only after it is done:
  its events committed, or found not to be a report (reported in ``skipped`` and marked
  seen, so it is not retried forever). A database error leaves it unseen, for the next run;
  a lost connection or a locked database stops the run there (the rest would fail alike).
* Crash: between the commit and the rename the message stays unseen and is read again by
  the next run. Harmless: every event is recorded once by (source, event id) in
  ``processed_events`` (a unique key), so the replay's events are all ``duplicate`` and
  change nothing; then the message is marked seen. Events of one message are committed
  one by one, so a crash part-way is finished by the replay.
* Race: two readers (workers, or a worker and a command) may read one message at the same
  time. The database, not the file, is the claim: the second insert of the same (source,
  event id) fails on the unique key, so that reader gets ``duplicate`` and changes nothing.
  Each then renames; the loser's rename finds the file gone (``FileNotFoundError``), which
  means another reader took it. Claiming by renaming *before* processing was rejected: a
  claim into ``S`` loses the report when the process dies before the commit, and a claim
  under another mark needs leases to recover from that crash, for no gain — the unique key
  already makes a second application a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from newsletter.db import db
from newsletter.delivery.bounces.parse import BounceReport, MalformedReport, parse_report
from newsletter.delivery.bounces.sources import Maildir, read_source
from newsletter.delivery.events import COMPLAINT, BouncePolicy, Event, apply_events
from newsletter.delivery.tokens import DeliveryTokens, token_from_message_id
from newsletter.mail.policy import classify_dsn_status
from newsletter.subscribers.service import ReaderServices

log = logging.getLogger(__name__)

__all__ = [
    "BounceReport",
    "BounceRun",
    "Maildir",
    "MaildirPoll",
    "MalformedReport",
    "classify_dsn_status",
    "parse_report",
    "process_maildir",
    "process_messages",
    "read_source",
    "report_event",
]

RETRY = "retry"  # a tally key: a message a database error left for the next run


@dataclass
class BounceRun:
    """What one run over a source did.

    ``tally`` counts outcomes (``duplicate``, ``ignored``, ``unknown``, a kind, ``skipped``
    for a message that is not a readable report, ``retry`` for one a database error left
    for the next run); ``skipped`` holds one line per skipped message,
    ``"<label>: skipped: <why>"``, and ``failed`` one per message left for the next run,
    ``"<label>: left for the next run: <why>"``. ``stopped`` says why the run ended before
    the end of its source (the database unavailable), else None. ``seen`` counts the
    Maildir messages this run marked seen.
    """

    messages: int = 0
    tally: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopped: str | None = None
    seen: int = 0

    @property
    def summary(self) -> str:
        """``"3 message(s): 1 duplicate, 2 hard_bounce"``, or ``"…: nothing"``."""
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.tally.items()))
        return f"{self.messages} message(s): {counts or 'nothing'}"

    def _count(self, outcome: str) -> None:
        self.tally[outcome] = self.tally.get(outcome, 0) + 1


def report_event(report: BounceReport) -> Event:
    """The event a report stands for. Its token is the one the report echoes (VERP address,
    X-Newsletter-Token) or, failing that, the one in the Message-ID of the original."""
    token = report.token or token_from_message_id(report.original_message_id)
    return Event(source="arf" if report.kind == COMPLAINT else "dsn",
                 event_id=f"{report.report_id}:{report.recipient or ''}",
                 kind=report.kind, token=token, recipient=report.recipient,
                 detail=report.diagnostic or report.status or "")


def _process_one(run: BounceRun, label: str, raw: bytes, *, tokens: DeliveryTokens,
                 readers: ReaderServices, policy: BouncePolicy,
                 now: datetime | None) -> bool:
    """Parse one message and apply its reports. True when it is done (applied, or not a
    report); False when a database error left it for the next run (``run.failed``; and
    ``run.stopped`` when the database is unavailable)."""
    run.messages += 1
    try:
        reports = parse_report(raw)
    except MalformedReport as exc:
        run.skipped.append(f"{label}: skipped: {exc}")
        run._count("skipped")
        return True
    try:
        outcomes = apply_events([report_event(r) for r in reports], tokens=tokens,
                                readers=readers, policy=policy, now=now)
    except SQLAlchemyError as exc:
        with contextlib.suppress(SQLAlchemyError):  # a lost connection: the pool replaces it
            db.session.rollback()
        cause = getattr(exc, "orig", None) or exc
        why = " ".join(f"{type(exc).__name__}: {cause}".split())[:300]
        run.failed.append(f"{label}: left for the next run: {why}")
        run._count(RETRY)
        if isinstance(exc, OperationalError | InterfaceError):
            run.stopped = "database unavailable"
        return False
    for outcome in outcomes:
        run._count(outcome)
    return True


def process_messages(messages: Iterable[tuple[str, bytes]], *, tokens: DeliveryTokens,
                     readers: ReaderServices, policy: BouncePolicy,
                     now: datetime | None = None) -> BounceRun:
    """Parse each ``(label, raw message)`` and apply its reports, one message at a time.

    A message that is not a DSN or ARF report is counted as ``skipped`` and changes nothing;
    it never stops the run (an MTA must not bounce a bounce). A database error is counted
    as ``retry`` (``run.failed``); a lost connection or a locked database stops the run
    (``run.stopped``). Nothing is marked anywhere: the caller keeps what it must retry.
    """
    run = BounceRun()
    for label, raw in messages:
        _process_one(run, label, raw, tokens=tokens, readers=readers, policy=policy, now=now)
        if run.stopped:
            break
    return run


def process_maildir(path: str | os.PathLike[str], *, tokens: DeliveryTokens,
                    readers: ReaderServices, policy: BouncePolicy,
                    now: datetime | None = None) -> BounceRun:
    """Read the unseen messages of the Maildir at ``path``, apply each, and mark each seen
    once it is done — the contract in this module's docstring.

    Raises ``FileNotFoundError`` or ``ValueError`` (not a Maildir) before reading anything.
    """
    box = Maildir(path)
    run = BounceRun()
    for label, raw, file in box.unseen():
        if _process_one(run, label, raw, tokens=tokens, readers=readers, policy=policy,
                        now=now):
            if box.mark_seen(file):
                run.seen += 1
            else:
                log.info("bounce maildir: %s was moved by another reader", label)
        if run.stopped:
            break
    return run


class MaildirPoll:
    """The worker's bounce Maildir, read on every :meth:`run` with :func:`process_maildir`.

    A Maildir that cannot be read (missing, not a Maildir, not permitted, or a file in it
    that cannot be read or moved) is logged once per change of state — a warning when the
    reason appears or changes, a line when it is readable again — not on every poll.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = str(path)
        self.problem: str | None = None

    def run(self, *, tokens: DeliveryTokens, readers: ReaderServices, policy: BouncePolicy,
            now: datetime | None = None) -> BounceRun | None:
        """One poll: the run, or None when the Maildir cannot be read."""
        try:
            run = process_maildir(self.path, tokens=tokens, readers=readers, policy=policy,
                                  now=now)
        except (OSError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self.problem:
                log.warning("bounce maildir %s cannot be read (%s); reports wait until it "
                            "can", self.path, problem)
                self.problem = problem
            return None
        if self.problem is not None:
            log.info("bounce maildir %s is readable again", self.path)
            self.problem = None
        return run
