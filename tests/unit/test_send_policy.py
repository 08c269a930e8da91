"""The one send policy (``mail.policy``): the same reply means the same thing for list and
account mail, at RCPT, at DATA or in a DSN later."""

from __future__ import annotations

import pytest

from newsletter.mail.policy import classify_dsn_status, judge_reply, retry_delay


@pytest.mark.parametrize("code,text,outcome,bounce", [
    (250, "2.0.0 Ok: queued as 4Q1", "sent", None),
    (None, "cannot connect to relay: Connection refused", "retry", None),
    (421, "4.3.2 Service shutting down", "retry", None),
    (451, "DATA: 4.3.0 try again later", "retry", None),
    (452, "4.2.2 Mailbox full (over quota, for now)", "retry", None),
    (550, "RCPT TO a@b: 5.1.1 <a@b>: Recipient address rejected: User unknown", "bounced",
     "hard_bounce"),
    (550, "Requested action not taken: mailbox unavailable", "bounced", "hard_bounce"),
    (553, "5.1.3 Bad recipient address syntax", "bounced", "hard_bounce"),
    (552, "5.2.2 Mailbox full", "bounced", "soft_bounce"),
    (554, "5.7.1 Message rejected as spam", "bounced", "soft_bounce"),
    (550, "5.7.26 Unauthenticated email is not accepted (DMARC)", "bounced", "soft_bounce"),
    (552, "5.3.4 Message too big", "bounced", "soft_bounce"),
])
def test_a_reply_is_read_by_its_enhanced_status(code, text, outcome, bounce):
    verdict = judge_reply(code, text)
    assert (verdict.outcome, verdict.bounce) == (outcome, bounce)
    assert verdict.suppresses is (bounce == "hard_bounce")


@pytest.mark.parametrize("status,text", [
    ("5.1.1", "550 5.1.1 User unknown"), ("5.2.2", "552 5.2.2 Mailbox full"),
    ("5.7.1", "554 5.7.1 spam"), ("5.0.0", "550 mailbox unavailable"),
])
def test_at_rcpt_and_in_a_dsn_the_same_status_gets_the_same_kind(status, text):
    code, _, rest = text.partition(" ")
    assert judge_reply(int(code), rest).bounce == classify_dsn_status("failed", status)


def test_a_4xx_enhanced_status_in_a_5xx_reply_does_not_make_it_soft_by_accident():
    # The reply's class decides the enhanced code's class; a stray "4.x.x" is not read.
    assert judge_reply(550, "5.1.1 see 4.2.2 in our FAQ").bounce == "hard_bounce"
    assert judge_reply(550, "see 4.2.2 in our FAQ").bounce == "hard_bounce"


def test_retry_delays_grow_up_to_the_cap_with_jitter():
    delays = [retry_delay(n, base=60, cap=3600, jitter=0) for n in range(1, 9)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    spread = {round(retry_delay(1, base=100, cap=1000), 3) for _ in range(50)}
    assert len(spread) > 1 and all(80 <= d <= 120 for d in spread)
    assert retry_delay(3, base=30, cap=7200, factor=4, jitter=0) == 480
