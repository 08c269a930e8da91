"""A bounce or complaint may change a reader only when it proves it is about a message we
sent: a signed token of ours (VERP address, X-Newsletter-Token, provider metadata) or our
Message-ID. Anything else — anyone can send mail naming any reader — is recorded as
unmatched and changes nothing."""

from __future__ import annotations

import re
import time

from sqlalchemy import func, select

from newsletter.db import db
from newsletter.delivery.models import BounceEvent, Delivery, ProcessedEvent
from newsletter.subscribers.models import Reader
from newsletter.subscribers.service import is_suppressed
from newsletter.wiring import reader_services
from tests.integration.test_after_sending import (  # noqa: F401 - fixtures
    SAMPLES,
    configure_hooks,
    dsn_for,
    mailgun_body,
    sent,
    token_of,
)


def _about(sample: str, address: str, token: str | None) -> bytes:
    """A sample report rewritten to name ``address``, with ``token`` (or none at all) where
    it echoes ours."""
    raw = (SAMPLES / sample).read_text(encoding="utf-8")
    if token is None:
        raw = re.sub(r"bounces\+[A-Za-z0-9_-]+@", "bounces@", raw)
        raw = re.sub(r"X-Newsletter-Token:[^\n]*\n", "", raw)
    else:
        raw = re.sub(r"bounces\+[A-Za-z0-9_-]+@", f"bounces+{token}@", raw)
        raw = re.sub(r"(X-Newsletter-Token:\s*)[A-Za-z0-9_-]+", rf"\g<1>{token}", raw)
    for old in set(re.findall(r"(?:Final|Original)-Recipient:\s*rfc822;\s*<?([^\s>]+)", raw)
                   + re.findall(r"Original-Rcpt-To:\s*<?([^\s>]+)", raw)):
        raw = raw.replace(old, address)
    return raw.encode()


def _nothing_changed(rows) -> None:
    db.session.expire_all()
    for row in rows:
        assert not is_suppressed(reader_services(), row.email), row.email
        assert db.session.get(Reader, row.reader_id).status == "active"
        assert db.session.get(Delivery, row.id).status == "sent"
    assert db.session.scalar(select(func.count(BounceEvent.id))) == 0


def test_a_dsn_without_a_token_or_with_a_bogus_one_suppresses_nobody(runner, sent):  # noqa: F811 - pytest fixtures
    _, _, rows = sent
    for token in (None, "junk", "2n9c-Xq3v_8LpZk"):  # none; malformed; well-formed, not ours
        raw = _about("postfix_511_user_unknown.eml", rows[0].email, token).replace(
            b"Message-Id: <", f"Message-Id: <{token}.".encode(), 1)  # three reports
        result = runner.invoke(args=["bounces", "process", "-"], input=raw)
        assert result.exit_code == 0, result.output
        assert "1 message(s): 1 unmatched" in result.output, result.output
    _nothing_changed(rows)
    assert db.session.scalar(select(func.count(ProcessedEvent.id))) >= 1, "recorded"


def test_a_forged_complaint_unsubscribes_nobody(runner, sent):  # noqa: F811 - pytest fixtures
    _, _, rows = sent
    raw = _about("arf_abuse_yahoo.eml", rows[1].email, None)
    result = runner.invoke(args=["bounces", "process", "-"], input=raw)
    assert "1 unmatched" in result.output, result.output
    _nothing_changed(rows)


def test_three_forged_soft_bounces_suppress_nobody(runner, sent):  # noqa: F811 - pytest fixtures
    _, _, rows = sent
    for n in range(3):
        raw = _about("expired_447.eml", rows[2].email, None).replace(
            b"Message-Id: <", f"Message-Id: <forged{n}.".encode(), 1)
        assert "1 unmatched" in runner.invoke(args=["bounces", "process", "-"],
                                              input=raw).output
    _nothing_changed(rows)


def test_our_message_id_in_the_original_is_proof_enough(runner, sent):  # noqa: F811 - pytest fixtures
    """A bounce that kept only the original's headers, with our Message-ID, still counts."""
    _, _, rows = sent
    token = token_of(rows[0])
    raw = _about("postfix_511_user_unknown.eml", rows[0].email, None).decode()
    raw = raw.replace("<5f1c0e9a7b3d4e21a9c8f0b2d6e4a1c3@news.example.com>",
                      f"<{token}.{rows[0].edition_id}@news.example>")
    result = runner.invoke(args=["bounces", "process", "-"], input=raw.encode())
    assert "1 hard_bounce" in result.output, result.output
    assert is_suppressed(reader_services(), rows[0].email)
    # A Message-ID shaped like ours whose token we did not sign is not.
    forged = raw.replace(token, "zz9-AAAAAAAAAA").replace("Message-Id: <", "Message-Id: <b.", 1)
    assert "1 unmatched" in runner.invoke(args=["bounces", "process", "-"],
                                          input=forged.encode()).output


def test_the_genuine_reports_still_work(runner, sent):  # noqa: F811 - pytest fixtures
    _, _, rows = sent
    assert "1 hard_bounce" in runner.invoke(args=["bounces", "process", "-"],
                                            input=dsn_for(rows[0])).output
    assert "1 complaint" in runner.invoke(args=["bounces", "process", "-"],
                                          input=dsn_for(rows[2], "arf_abuse_yahoo.eml")).output


def test_a_webhook_naming_only_an_address_changes_nothing(configure_hooks, client, sent):  # noqa: F811 - pytest fixtures
    configure_hooks(MAILGUN_SIGNING_KEY="mg-key")
    _, _, rows = sent
    event = {"id": "evt-address-only", "event": "failed", "severity": "permanent",
             "recipient": rows[0].email, "timestamp": time.time()}
    response = client.post("/hooks/mailgun", data=mailgun_body("mg-key", event),
                           content_type="application/json")
    assert response.status_code == 200
    assert response.json["outcomes"] == ["unmatched"]
    _nothing_changed(rows)
