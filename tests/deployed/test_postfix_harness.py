"""The private Postfix of the deployed lane does what the lane relies on.

Known inbox.example users get their mail in their Maildir, unknown ones are refused at RCPT,
unknown late.example users are accepted and then bounced with Postfix's own DSN into the one
bounce Maildir, a stopped instance refuses connections and a started one delivers again,
and an instance listens on nothing but its own loopback port and leaves no process behind.
"""

from __future__ import annotations

import shutil
import smtplib
import subprocess
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.support.postfix import (
    BOUNCE_DOMAIN,
    HOST,
    PostfixServer,
    running_postfix,
)

pytestmark = pytest.mark.timeout(120)


def _message(to: str, subject: str, sender: str = "newsletter@news.example") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="news.example")
    message.set_content(f"Body of {subject}\n")
    return message


def _send(server: PostfixServer, message: EmailMessage, *, envelope_from: str,
          to: str) -> dict:
    with smtplib.SMTP(HOST, server.port, timeout=10) as smtp:
        return smtp.send_message(message, from_addr=envelope_from, to_addrs=[to])


def test_swaks_delivers_to_a_known_user_into_their_maildir(postfix_server):
    swaks = shutil.which("swaks")
    if swaks is None:
        pytest.fail("swaks is missing (`make mta-deps` installs it)")
    result = subprocess.run(
        [swaks, "--server", HOST, "--port", str(postfix_server.port),
         "--from", "newsletter@news.example", "--to", "alice@inbox.example",
         "--header", "Subject: Hello from swaks", "--body", "Plain body\n"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 Ok: queued" in result.stdout

    [received] = postfix_server.wait_for("alice", 1, timeout=20)
    assert received["Subject"] == "Hello from swaks"
    assert received["Delivered-To"] == "alice@inbox.example"
    assert received["Return-Path"] == "<newsletter@news.example>"
    assert "Plain body" in received.get_content()
    assert postfix_server.messages("bob") == []


def test_a_message_reaches_exactly_its_recipient(postfix_server):
    message = _message("bob@inbox.example", "For Bob")
    assert _send(postfix_server, message, envelope_from="bounces+b1@bounces.example",
                 to="bob@inbox.example") == {}

    [received] = postfix_server.wait_for("bob", 1, timeout=20)
    assert received["Message-ID"] == message["Message-ID"]
    assert received["Subject"] == "For Bob"
    assert postfix_server.messages("bob@inbox.example")[0]["Message-ID"] == message["Message-ID"]


def test_an_unknown_inbox_user_is_refused_at_rcpt(postfix_server):
    with smtplib.SMTP(HOST, postfix_server.port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.mail("bounces+x@bounces.example")[0] == 250
        code, text = smtp.rcpt("nobody@inbox.example")
    assert code == 550
    assert text.startswith(b"5.1.1 <nobody@inbox.example>")
    assert not postfix_server.maildir("nobody").exists()

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(postfix_server, _message("nobody@inbox.example", "Never"),
              envelope_from="bounces+x@bounces.example", to="nobody@inbox.example")
    assert refused.value.recipients["nobody@inbox.example"][0] == 550


def test_an_unknown_late_user_is_accepted_then_bounced_with_a_dsn(postfix_server):
    original = _message("ghost@late.example", "Into the void")
    verp = "bounces+r42.sig@bounces.example"
    assert _send(postfix_server, original, envelope_from=verp, to="ghost@late.example") == {}

    [dsn] = postfix_server.wait_for(postfix_server.bounce_maildir, 1, timeout=20)
    assert dsn["Delivered-To"] == verp
    assert dsn["Return-Path"] == "<>"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"

    parts = {part.get_content_type(): part for part in dsn.iter_parts()}
    status = parts["message/delivery-status"]
    # message/delivery-status holds one header block per message, then per recipient.
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mta.test"
    assert per_recipient["Final-Recipient"] == "rfc822; ghost@late.example"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    returned = parts["message/rfc822"].get_payload()[0]
    assert returned["Message-ID"] == original["Message-ID"]
    assert postfix_server.messages("ghost", "late.example") == []


def test_every_bounce_address_lands_in_the_one_bounce_maildir(postfix_server):
    before = len(postfix_server.bounces())
    for token in ("acct_7.abc", "d9.xyz"):
        address = f"bounces+{token}@{BOUNCE_DOMAIN}"
        assert _send(postfix_server, _message(address, f"Report {token}"),
                     envelope_from="", to=address) == {}
    received = postfix_server.wait_for(postfix_server.bounce_maildir, before + 2, timeout=20)
    assert {m["Delivered-To"] for m in received[before:]} == {
        "bounces+acct_7.abc@bounces.example", "bounces+d9.xyz@bounces.example"}


def test_a_stopped_mta_refuses_connections_and_a_started_one_delivers(postfix_server):
    postfix_server.stop()
    try:
        assert not postfix_server.is_running()
        assert postfix_server.pids() == []
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP(HOST, postfix_server.port, timeout=5)
    finally:
        postfix_server.start()

    assert postfix_server.is_running()
    _send(postfix_server, _message("carol@inbox.example", "After the restart"),
          envelope_from="newsletter@news.example", to="carol@inbox.example")
    [received] = postfix_server.wait_for("carol", 1, timeout=20)
    assert received["Subject"] == "After the restart"

    postfix_server.flush()  # an empty queue: flushing is harmless and succeeds
    assert "Mail queue is empty" in postfix_server.queue_listing()


def test_an_instance_listens_only_on_its_loopback_port_and_leaves_nothing_behind(
        postfix_server):
    assert postfix_server.listening_addresses() == {(HOST, postfix_server.port)}

    # A second private instance runs beside the first without a clash, and closing it
    # ends every process it had.
    with running_postfix(users=("erin",)) as second:
        assert second.port != postfix_server.port
        assert second.listening_addresses() == {(HOST, second.port)}
        _send(second, _message("erin@inbox.example", "Second instance"),
              envelope_from="newsletter@news.example", to="erin@inbox.example")
        assert second.wait_for("erin", 1, timeout=20)[0]["Subject"] == "Second instance"
        pids = second.pids()
        assert pids
    assert second.pids() == []
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(HOST, second.port, timeout=5)

    _send(postfix_server, _message("dave@inbox.example", "First still up"),
          envelope_from="newsletter@news.example", to="dave@inbox.example")
    assert postfix_server.wait_for("dave", 1, timeout=20)[0]["Subject"] == "First still up"
