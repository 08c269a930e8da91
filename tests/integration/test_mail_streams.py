"""Two streams for mailbox providers: account mail (confirmation, sign-in link, address
change) has its own From, return path and Feedback-ID, and its bounces are processed; list
mail's Feedback-ID is stable per kind of mail, so feedback loops can aggregate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.subscribers.service import is_suppressed
from newsletter.wiring import reader_services
from tests.integration.test_after_sending import SAMPLES
from tests.support.editions import audience, send, special_edition
from tests.support.readers import csrf_from, outbox_messages


def _subscribe(client, email="ada@example.com"):
    return client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": email,
                                           "topic": ["ai-policy-and-safety"]})


@pytest.fixture
def account_from(app_config):
    app_config["ACCOUNT_MAIL_FROM"] = "Modelwire accounts <accounts@news.example>"


def test_account_mail_has_its_own_from_return_path_and_feedback_id(account_from, app, client,
                                                                   topics):
    assert _subscribe(client).status_code == 200
    [message] = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    assert message["From"] == "Modelwire accounts <accounts@news.example>"
    assert re.fullmatch(r"<bounces\+acct_[0-9a-z]+-[A-Za-z0-9_-]{10}@news\.example>",
                        message["Return-Path"])
    assert message["X-Newsletter-Token"].startswith("acct_")
    assert message["Feedback-ID"] == "confirm:account:newsletter:accounts@news.example"
    assert "List-Unsubscribe" not in message


def test_list_mail_feedback_id_is_per_kind_not_per_edition(app, topics):
    audience(2)
    first, second = special_edition("One"), special_edition("Two")
    send(app, first.id)
    send(app, second.id)
    ids = {m["Feedback-ID"] for m in outbox_messages(Path(app.config["OUTBOX_DIR"]))}
    assert ids == {"special:list:newsletter:newsletter@news.example"}


def _account_bounce(token: str, address: str) -> bytes:
    raw = (SAMPLES / "postfix_511_user_unknown.eml").read_text(encoding="utf-8")
    raw = re.sub(r"bounces\+[A-Za-z0-9_-]+@", f"bounces+{token}@", raw)
    raw = re.sub(r"(X-Newsletter-Token:\s*)[A-Za-z0-9_-]+", rf"\g<1>{token}", raw)
    for old in set(re.findall(r"(?:Final|Original)-Recipient:\s*rfc822;\s*<?([^\s>]+)", raw)):
        raw = raw.replace(old, address)
    return raw.encode()


def test_a_bounce_of_account_mail_is_processed_and_a_forged_one_is_not(app, client, topics,
                                                                       runner):
    _subscribe(client, "gone@example.com")
    _subscribe(client, "kept@example.com")
    messages = outbox_messages(Path(app.config["OUTBOX_DIR"]))
    token = next(m["X-Newsletter-Token"] for m in messages if m["To"] == "gone@example.com")
    result = runner.invoke(args=["bounces", "process", "-"],
                           input=_account_bounce(token, "gone@example.com"))
    assert "1 hard_bounce" in result.output, result.output
    assert is_suppressed(reader_services(), "gone@example.com")

    forged = runner.invoke(args=["bounces", "process", "-"],
                           input=_account_bounce("acct_1-AAAAAAAAAA", "kept@example.com")
                           .replace(b"Message-Id: <", b"Message-Id: <f.", 1))
    assert "1 unmatched" in forged.output, forged.output
    assert not is_suppressed(reader_services(), "kept@example.com")
