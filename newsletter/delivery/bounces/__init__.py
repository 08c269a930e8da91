"""Bounces (RFC 3464 DSNs) and complaints (RFC 5965 ARF) that arrive as email.

``sources`` reads raw messages (stdin, maildir, mbox, ``.eml``), ``parse`` turns one into
:class:`BounceReport` records, ``classify`` gives a DSN recipient block its kind. This module
turns reports into :class:`~newsletter.delivery.events.Event` records and applies them with
the bounce policy (:func:`process_messages`), for ``newsletter bounces process``.

A report becomes an event with source ``arf`` (a complaint) or ``dsn`` (anything else) and
event id ``"<report_id>:<recipient>"``, so a report read twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from newsletter.delivery.bounces.classify import classify_dsn_status
from newsletter.delivery.bounces.parse import BounceReport, MalformedReport, parse_report
from newsletter.delivery.bounces.sources import read_source
from newsletter.delivery.events import COMPLAINT, BouncePolicy, Event, apply_events
from newsletter.delivery.tokens import DeliveryTokens, token_from_message_id
from newsletter.subscribers.service import ReaderServices

__all__ = [
    "BounceReport",
    "BounceRun",
    "MalformedReport",
    "classify_dsn_status",
    "parse_report",
    "process_messages",
    "read_source",
    "report_event",
]


@dataclass
class BounceRun:
    """What one run over a source did.

    ``tally`` counts outcomes (``duplicate``, ``ignored``, ``unknown``, a kind, and
    ``skipped`` for a message that is not a readable report); ``skipped`` holds one line per
    skipped message, ``"<label>: skipped: <why>"``.
    """

    messages: int = 0
    tally: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """``"3 message(s): 1 duplicate, 2 hard_bounce"``, or ``"…: nothing"``."""
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.tally.items()))
        return f"{self.messages} message(s): {counts or 'nothing'}"


def report_event(report: BounceReport) -> Event:
    """The event a report stands for. Its token is the one the report echoes (VERP address,
    X-Newsletter-Token) or, failing that, the one in the Message-ID of the original."""
    token = report.token or token_from_message_id(report.original_message_id)
    return Event(source="arf" if report.kind == COMPLAINT else "dsn",
                 event_id=f"{report.report_id}:{report.recipient or ''}",
                 kind=report.kind, token=token, recipient=report.recipient,
                 detail=report.diagnostic or report.status or "")


def process_messages(messages: Iterable[tuple[str, bytes]], *, tokens: DeliveryTokens,
                     readers: ReaderServices, policy: BouncePolicy,
                     now: datetime | None = None) -> BounceRun:
    """Parse each ``(label, raw message)`` and apply its reports, one message at a time.

    A message that is not a DSN or ARF report is counted as ``skipped`` and changes nothing;
    it never stops the run (an MTA must not bounce a bounce).
    """
    run = BounceRun()
    for label, raw in messages:
        run.messages += 1
        try:
            reports = parse_report(raw)
        except MalformedReport as exc:
            run.skipped.append(f"{label}: skipped: {exc}")
            run.tally["skipped"] = run.tally.get("skipped", 0) + 1
            continue
        outcomes = apply_events([report_event(r) for r in reports], tokens=tokens,
                                readers=readers, policy=policy, now=now)
        for outcome in outcomes:
            run.tally[outcome] = run.tally.get(outcome, 0) + 1
    return run
