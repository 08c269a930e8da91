"""Bounce (DSN) and complaint (ARF) messages: classification, token, recipient, hostile input,
and the sources they are read from (stdin, maildir, mbox, a single .eml)."""

from __future__ import annotations

import base64
import hashlib
import io
import mailbox
import re
from pathlib import Path

import pytest

from newsletter.delivery.bounces import (
    BounceReport,
    MalformedReport,
    classify_dsn_status,
    parse_report,
    read_source,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "bounces"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def only(raw: bytes) -> BounceReport:
    reports = parse_report(raw)
    assert len(reports) == 1
    return reports[0]


def drop_header(raw: bytes, name: bytes) -> bytes:
    """Remove every occurrence of a one-line header."""
    return re.sub(rb"(?mi)^" + re.escape(name) + rb":[^\n]*\n", b"", raw)


# --- DSNs ----------------------------------------------------------------------------------------


def test_postfix_user_unknown_is_a_hard_bounce():
    report = only(sample("postfix_511_user_unknown.eml"))
    assert report == BounceReport(
        kind="hard_bounce",
        token="2n9c-Xq3v_8LpZk",
        recipient="ana.moreno@example.org",
        status="5.1.1",
        action="failed",
        diagnostic="smtp; 550 5.1.1 <ana.moreno@example.org>: Recipient address rejected: "
                   "User unknown in virtual mailbox table",
        original_message_id="<5f1c0e9a7b3d4e21a9c8f0b2d6e4a1c3@news.example.com>",
        report_id="<20241126091403.4Xk2Tq0VZ1z9sWb@relay.news.example.com>",
    )


def test_token_falls_back_to_the_original_headers_then_the_echoed_sender():
    raw = sample("postfix_511_user_unknown.eml")
    for name in (b"To", b"X-Original-To", b"Delivered-To"):
        raw = raw.replace(name + b": bounces+2n9c-Xq3v_8LpZk@", name + b": postmaster@")
    assert b"postmaster@" in raw
    assert only(raw).token == "2n9c-Xq3v_8LpZk"  # X-Newsletter-Token of the attached headers

    raw = drop_header(raw, b"X-Newsletter-Token")
    raw = raw.replace(b"List-Unsubscribe: <https://news.example.com/u/2n9c-Xq3v_8LpZk>,",
                      b"List-Unsubscribe: <https://news.example.com/u/x>,")
    assert b"X-Newsletter-Token" not in raw
    assert only(raw).token == "2n9c-Xq3v_8LpZk"  # the original's Return-Path

    raw = drop_header(raw, b"Return-Path").replace(b"Return-Path", b"")
    assert only(raw).token == "2n9c-Xq3v_8LpZk"  # Postfix's X-Postfix-Sender

    raw = drop_header(raw, b"X-Postfix-Sender")
    report = only(raw)
    assert (report.token, report.kind, report.recipient) == (
        None, "hard_bounce", "ana.moreno@example.org")


def test_exim_report_with_two_recipients_gives_one_report_each():
    first, second = parse_report(sample("exim_two_recipients.eml"))
    # Status 5.0.0 is Exim's catch-all; the remote's 5.1.1 says the address does not exist.
    assert (first.kind, first.recipient, first.status) == (
        "hard_bounce", "bo.lindqvist@example.net", "5.0.0")
    assert (second.kind, second.recipient, second.status) == (
        "soft_bounce", "chen.wei@example.com", "4.0.0")
    for report in (first, second):
        assert report.token == "3f01-Ab9_kLm2Qz"
        assert report.action == "failed"
        assert report.original_message_id == "<0a9b8c7d6e5f40312233445566778899@news.example.com>"
        assert report.report_id == "<E1tFvXz-000Abc-2K@relay2.news.example.com>"
    assert second.diagnostic == "smtp; 451 4.3.0 Temporary lookup failure"


def test_failed_with_4_4_7_expired_is_soft_and_names_the_original_recipient():
    report = only(sample("expired_447.eml"))
    assert (report.kind, report.action, report.status) == ("soft_bounce", "failed", "4.4.7")
    # Final-Recipient is the alias target; Original-Recipient is the address we mailed.
    assert report.recipient == "dana.okafor@example.com"
    assert report.token == "7k2p-Zz81-Wq0rT"
    assert report.diagnostic.startswith("X-Postfix; delivery temporarily suspended: connect to")
    assert "\n" not in report.diagnostic


def test_delayed_4_4_1_is_deferred():
    report = only(sample("delayed_441.eml"))
    assert (report.kind, report.action, report.status) == ("deferred", "delayed", "4.4.1")
    assert (report.token, report.recipient) == ("9a1b-Qw3eRt5yU_", "erik.sand@example.net")


def test_mailbox_full_5_2_2_is_soft():
    report = only(sample("gmail_522_mailbox_full.eml"))
    assert (report.kind, report.status) == ("soft_bounce", "5.2.2")
    assert (report.token, report.recipient) == ("1x9z-Lm4n_Pq7Rs", "farah.haddad@example.com")
    assert report.original_message_id == "<a1b2c3d4e5f60718293a4b5c6d7e8f90@news.example.com>"
    assert report.diagnostic.startswith("smtp; 552-5.2.2 The recipient's inbox is out of storage")
    assert report.diagnostic.endswith("- gsmtp")


def test_no_status_uses_the_smtp_reply_class_of_the_diagnostic():
    report = only(sample("no_status_550.eml"))
    assert (report.kind, report.status, report.action) == ("hard_bounce", None, "failed")
    assert (report.token, report.recipient) == ("5q5q-Hh2Jk3Ll4M", "gil.navarro@example.edu")
    assert report.original_message_id is None

    soft = sample("no_status_550.eml").replace(b"smtp; 550 Requested", b"smtp; 450 Requested")
    assert only(soft).kind == "soft_bounce"


def test_base64_delivery_status_part_is_read():
    raw = sample("postfix_511_user_unknown.eml")
    head, sep, rest = raw.partition(b"Content-Type: message/delivery-status\n\n")
    fields, boundary, tail = rest.partition(b"--4Xk2Sd3Lqrz9sWc")
    raw = (head + b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n"
           + base64.encodebytes(fields) + b"\n" + boundary + tail)
    report = only(raw)
    assert (report.kind, report.status, report.recipient) == (
        "hard_bounce", "5.1.1", "ana.moreno@example.org")


def test_utf8_delivery_status_rfc_6533():
    raw = sample("postfix_511_user_unknown.eml").replace(
        b"message/delivery-status", b"message/global-delivery-status")
    raw = drop_header(raw, b"Original-Recipient").replace(
        b"Final-Recipient: rfc822; Ana.Moreno@example.org",
        "Final-Recipient: utf-8; Ána.Moreno@exämple.org".encode())
    report = only(raw)
    assert (report.kind, report.recipient) == ("hard_bounce", "ána.moreno@exämple.org")


def test_unknown_address_types_are_not_recipients():
    raw = drop_header(sample("postfix_511_user_unknown.eml"), b"Original-Recipient").replace(
        b"Final-Recipient: rfc822; Ana.Moreno@example.org",
        b"Final-Recipient: x400; /C=XX/ADMD=/PRMD=example/O=org/S=Moreno/")
    report = only(raw)
    assert (report.kind, report.recipient, report.token) == (
        "hard_bounce", None, "2n9c-Xq3v_8LpZk")


# --- ARF complaints ------------------------------------------------------------------------------


def test_yahoo_abuse_report_is_a_complaint_found_through_our_header():
    report = only(sample("arf_abuse_yahoo.eml"))
    assert report == BounceReport(
        kind="complaint",
        token="8r3t-Ye7Ui9Op0A",
        recipient="gus.ferreira@example.net",
        status=None,
        action=None,
        diagnostic="feedback-type=abuse; user-agent=Yahoo!-Mail-Feedback/2.0",
        original_message_id="<9f8e7d6c5b4a39281706f5e4d3c2b1a0@news.example.com>",
        report_id="<1732693282.872341.8r3t@arf.mail.yahoo.com>",
    )
    # Our own header wins over an envelope sender that says something else.
    other = sample("arf_abuse_yahoo.eml").replace(
        b"bounces+8r3t-Ye7Ui9Op0A@", b"bounces+0000-OtherToken@")
    assert only(other).token == "8r3t-Ye7Ui9Op0A"


def test_abuse_report_token_through_return_path_when_our_header_is_gone():
    raw = drop_header(sample("arf_abuse_yahoo.eml"), b"X-Newsletter-Token")
    raw = drop_header(raw, b"Original-Mail-From")
    report = only(raw)
    assert (report.kind, report.token) == ("complaint", "8r3t-Ye7Ui9Op0A")

    headers_only = only(sample("arf_abuse_headers_only.eml"))
    assert (headers_only.kind, headers_only.token, headers_only.recipient) == (
        "complaint", "6u2v-Nb5Vc6Xz7S", "hana.sato@example.com")  # recipient from the original To
    assert headers_only.diagnostic == "feedback-type=abuse; user-agent=AOL SComp"


def test_abuse_report_token_through_original_mail_from_alone():
    raw = drop_header(sample("arf_abuse_yahoo.eml"), b"X-Newsletter-Token")
    raw = drop_header(raw, b"Return-Path").replace(b"Return-Path", b"")
    assert only(raw).token == "8r3t-Ye7Ui9Op0A"


def test_abuse_report_with_a_base64_encoded_original():
    raw = sample("arf_abuse_yahoo.eml")
    head, sep, rest = raw.partition(b"Content-Disposition: inline\n\n")
    original, closing = rest[: rest.index(b"------=_Part")], rest[rest.index(b"------=_Part"):]
    encoded = base64.encodebytes(original)
    raw = head + b"Content-Transfer-Encoding: base64\n" + sep + encoded + b"\n" + closing
    assert b"X-Newsletter-Token" not in raw
    report = only(drop_header(raw, b"Original-Mail-From"))
    assert (report.kind, report.token) == ("complaint", "8r3t-Ye7Ui9Op0A")
    assert report.original_message_id == "<9f8e7d6c5b4a39281706f5e4d3c2b1a0@news.example.com>"


def test_not_spam_report_is_unknown():
    report = only(sample("arf_not_spam.eml"))
    assert (report.kind, report.token, report.recipient) == (
        "unknown", "4w4w-Df8Gh9Jk0L", "ivo.kral@example.org")
    assert report.diagnostic == "feedback-type=not-spam; user-agent=ExampleMail-FBL/1.4"


@pytest.mark.parametrize("feedback_type", ["fraud", "virus", "other", "ABUSE"])
def test_other_complaint_feedback_types(feedback_type):
    raw = sample("arf_not_spam.eml").replace(
        b"Feedback-Type: not-spam", b"Feedback-Type: " + feedback_type.encode())
    assert only(raw).kind == "complaint"


# --- classification rules ------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "status", "diagnostic", "kind"), [
    ("failed", "5.1.1", None, "hard_bounce"),
    ("Failed", "5.1.1 (bad destination mailbox address)", None, "hard_bounce"),
    ("failed", "5.2.1", None, "hard_bounce"),  # mailbox disabled
    ("failed", "5.4.4", None, "hard_bounce"),  # unable to route: no such domain
    ("failed", "5.5.0", None, "hard_bounce"),
    ("failed", "5.2.2", None, "soft_bounce"),  # mailbox full
    ("failed", "5.3.4", None, "soft_bounce"),  # message too big
    ("failed", "5.4.7", None, "soft_bounce"),  # delivery time expired
    ("failed", "5.7.1", None, "soft_bounce"),  # policy: spam filter, blocklist
    ("failed", "5.7.26", None, "soft_bounce"),  # DMARC
    ("failed", "4.4.7", None, "soft_bounce"),
    ("failed", "4.2.2", None, "soft_bounce"),
    ("failed", "5.0.0", "smtp; 550 5.1.1 no such user", "hard_bounce"),
    ("failed", "5.0.0", "smtp; 550-5.7.1 [198.51.100.7] blocked", "soft_bounce"),
    ("failed", "5.0.0", "smtp; 450 4.2.0 try later", "hard_bounce"),  # classes disagree
    ("failed", None, "smtp; 550 mailbox unavailable", "hard_bounce"),
    ("failed", None, "SMTP; 452 too many recipients", "soft_bounce"),
    ("failed", None, "smtp; 552 5.2.2 mailbox full", "soft_bounce"),
    ("failed", None, "X-Postfix; 550 looks like a code but is not SMTP", "unknown"),
    ("failed", None, "smtp; no code here", "unknown"),
    ("failed", None, None, "unknown"),
    ("failed", "2.0.0", None, "unknown"),
    ("failed", "garbage", None, "unknown"),
    ("delayed", "4.4.1", None, "deferred"),
    ("delayed", None, None, "deferred"),
    ("delivered", "2.0.0", None, "delivered"),
    ("relayed", "2.0.0", None, "delivered"),
    ("expanded", "2.0.0", None, "delivered"),
    (None, "5.1.1", None, "unknown"),
    ("bounced", "5.1.1", None, "unknown"),
])
def test_classify_dsn_status(action, status, diagnostic, kind):
    assert classify_dsn_status(action, status, diagnostic=diagnostic) == kind


def test_classify_reads_action_and_status_together():
    assert classify_dsn_status("failed", "4.4.7") == "soft_bounce"
    assert classify_dsn_status("delayed", "5.1.1") == "deferred"


# --- hostile and malformed input -----------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n  \n"])
def test_empty_input_is_malformed(raw):
    with pytest.raises(MalformedReport, match="empty"):
        parse_report(raw)


@pytest.mark.parametrize("name", ["personal_reply.eml", "qmail_plain_text_bounce.eml"])
def test_messages_that_are_not_reports_are_malformed(name):
    with pytest.raises(MalformedReport, match="not a DSN or ARF report.*text/plain"):
        parse_report(sample(name))


def test_report_without_delivery_status_part_is_malformed():
    with pytest.raises(MalformedReport, match="without a message/delivery-status part"):
        parse_report(sample("report_without_status_part.eml"))


def test_other_report_types_are_malformed():
    raw = sample("postfix_511_user_unknown.eml").replace(
        b"report-type=delivery-status", b"report-type=disposition-notification")
    with pytest.raises(MalformedReport, match="disposition-notification"):
        parse_report(raw)


def test_report_type_missing_is_inferred_from_the_parts():
    raw = sample("postfix_511_user_unknown.eml").replace(b" report-type=delivery-status;", b"")
    assert only(raw).kind == "hard_bounce"


@pytest.mark.parametrize("raw", [
    bytes(range(256)) * 40,
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + b"\xff\xfe\x00" * 3000,
    b"Content-Type: multipart/report" + b"(" * 20000 + b"; boundary=B\n\n--B--\n",
    b"Content-Type: multipart/report; boundary=\"B\"; report-type=delivery-status\n\n"
    b"--B\nContent-Type: message/delivery-status\n\n\xc3\x28\xff: \x00\n--B--\n",
])
def test_garbage_is_malformed_never_a_crash(raw):
    with pytest.raises(MalformedReport):
        parse_report(raw)


def test_parse_report_wants_bytes():
    with pytest.raises(TypeError):
        parse_report(sample("postfix_511_user_unknown.eml").decode())  # type: ignore[arg-type]


def test_truncated_before_the_status_part_is_malformed():
    raw = sample("postfix_511_user_unknown.eml")
    with pytest.raises(MalformedReport, match="delivery-status"):
        parse_report(raw[: raw.index(b"Content-Description: Delivery report")])


def test_truncated_inside_the_recipient_block_keeps_what_it_says():
    raw = sample("postfix_511_user_unknown.eml")
    report = only(raw[: raw.index(b"Action: failed")])
    # Who, but not what: no Action means no verdict.
    assert (report.kind, report.action, report.status) == ("unknown", None, None)
    assert (report.token, report.recipient) == ("2n9c-Xq3v_8LpZk", "ana.moreno@example.org")
    assert report.original_message_id is None


def test_truncated_inside_the_attached_headers_is_still_a_hard_bounce():
    raw = sample("postfix_511_user_unknown.eml")
    report = only(raw[: raw.index(b"List-Id:")])
    assert (report.kind, report.token, report.recipient) == (
        "hard_bounce", "2n9c-Xq3v_8LpZk", "ana.moreno@example.org")
    assert report.original_message_id == "<5f1c0e9a7b3d4e21a9c8f0b2d6e4a1c3@news.example.com>"


def test_encoded_crlf_never_reaches_a_value_and_a_tainted_token_is_refused():
    report = only(sample("crlf_injection.eml"))
    assert report.kind == "hard_bounce"
    # The X-Newsletter-Token decodes to "…\r\nX-Evil: 1": refused; Return-Path is clean.
    assert report.token == "2c2c-Rr5Tt6Yy7U"
    # The Final-Recipient decodes to "ivan…\r\nBcc: victim@…": not an address.
    assert report.recipient is None
    assert report.diagnostic == "smtp; 550 5.1.1 User unknown X-Injected: yes"
    for value in (report.diagnostic, report.report_id, report.original_message_id):
        assert "\r" not in value and "\n" not in value


def test_a_100_kb_header_line_is_capped_not_fatal():
    raw = sample("postfix_511_user_unknown.eml")
    raw = raw.replace(b"Auto-Submitted: auto-replied\n",
                      b"Auto-Submitted: auto-replied\nX-Spam-Report: " + b"A" * 100_000 + b"\n")
    raw = re.sub(rb"Diagnostic-Code: smtp; 550 5.1.1 [^\n]*\n    rejected[^\n]*\n",
                 b"Diagnostic-Code: smtp; 550 5.1.1 " + b"x" * 100_000 + b"\n", raw)
    raw = raw.replace(b"Message-Id: <20241126091403.4Xk2Tq0VZ1z9sWb@relay.news.example.com>",
                      b"Message-Id: <" + b"m" * 100_000 + b"@relay.news.example.com>")
    raw = raw.replace(b"X-Newsletter-Token: 2n9c-Xq3v_8LpZk",
                      b"X-Newsletter-Token: " + b"T" * 100_000)
    report = only(raw)
    assert (report.kind, report.token, report.recipient) == (
        "hard_bounce", "2n9c-Xq3v_8LpZk", "ana.moreno@example.org")
    assert len(report.diagnostic) == 500
    assert report.diagnostic.startswith("smtp; 550 5.1.1 xxxx")
    # An absurd Message-ID is not an id: the report falls back to the hash of its bytes.
    assert report.report_id == hashlib.sha256(raw).hexdigest()


def test_a_100_kb_address_header_does_not_hide_the_token_near_its_start():
    raw = sample("postfix_511_user_unknown.eml").replace(
        b"To: bounces+2n9c-Xq3v_8LpZk@news.example.com\n",
        b"To: bounces+2n9c-Xq3v_8LpZk@news.example.com, "
        + b", ".join(b"r%d@example.com" % i for i in range(8000)) + b"\n")
    assert only(raw).token == "2n9c-Xq3v_8LpZk"


@pytest.mark.parametrize("forged", [
    b"bounces+abc@news.example.com",  # too short
    b"bounces+" + b"a" * 65 + b"@news.example.com",  # too long
    b"bounces+ab$cd@news.example.com",  # outside the alphabet
    b"xbounces+abcd1234@news.example.com",  # not our local part
])
def test_tokens_that_do_not_match_the_pattern_are_never_trusted(forged):
    raw = sample("no_status_550.eml").replace(b"bounces+5q5q-Hh2Jk3Ll4M@news.example.com", forged)
    report = only(raw)
    assert (report.token, report.kind, report.recipient) == (
        None, "hard_bounce", "gil.navarro@example.edu")


def test_our_header_must_hold_exactly_one_token():
    raw = sample("arf_not_spam.eml").replace(
        b"X-Newsletter-Token: 4w4w-Df8Gh9Jk0L", b"X-Newsletter-Token: 4w4w-Df8Gh9Jk0L; drop")
    raw = drop_header(raw, b"Return-Path")
    assert only(raw).token is None


def test_report_id_is_the_message_id_else_the_hash_of_the_bytes():
    raw = sample("no_status_550.eml")
    assert only(raw).report_id == "<KV3N2T.0A7E5C1D9B@gw.example.edu>"
    anonymous = drop_header(raw, b"Message-ID")
    assert only(anonymous).report_id == hashlib.sha256(anonymous).hexdigest()
    assert parse_report(anonymous) == parse_report(anonymous)


def test_8bit_utf8_headers_are_decoded_not_fatal():
    raw = sample("no_status_550.eml").replace(
        b"smtp; 550 Requested action not taken: mailbox unavailable",
        "smtp; 550 Postfach nicht verfügbar \udcff".encode("utf-8", "surrogateescape"))
    report = only(raw)
    assert report.kind == "hard_bounce"
    assert report.diagnostic == "smtp; 550 Postfach nicht verfügbar \ufffd"


# --- sources -------------------------------------------------------------------------------------


def test_read_source_stdin_is_one_message():
    raw = sample("postfix_511_user_unknown.eml")
    assert list(read_source("-", stdin=io.BytesIO(raw))) == [("-", raw)]


def test_read_source_single_eml(tmp_path):
    path = tmp_path / "bounce.eml"
    path.write_bytes(sample("delayed_441.eml"))
    [(label, raw)] = list(read_source(str(path)))
    assert label == "bounce.eml"
    assert only(raw).kind == "deferred"


def test_read_source_maildir_reads_cur_and_new_only(tmp_path):
    box = tmp_path / "Maildir"
    for folder in ("cur", "new", "tmp"):
        (box / folder).mkdir(parents=True)
    (box / "new" / "1732612443.M1P2.mx").write_bytes(sample("postfix_511_user_unknown.eml"))
    (box / "cur" / "1732693283.M3P4.mx:2,S").write_bytes(sample("arf_abuse_yahoo.eml"))
    (box / "cur" / ".hidden").write_bytes(b"ignored")
    (box / "tmp" / "1732700000.M5P6.mx").write_bytes(b"half written")

    found = list(read_source(str(box)))
    assert [label for label, _ in found] == ["1732693283.M3P4.mx:2,S", "1732612443.M1P2.mx"]
    complaint, bounce = (only(raw) for _, raw in found)
    assert (complaint.kind, complaint.token) == ("complaint", "8r3t-Ye7Ui9Op0A")
    assert (bounce.kind, bounce.token) == ("hard_bounce", "2n9c-Xq3v_8LpZk")


def test_read_source_mbox_with_three_messages(tmp_path):
    path = tmp_path / "bounces"  # no suffix: recognised by its first "From " line
    box = mailbox.mbox(path)
    for name in ("postfix_511_user_unknown.eml", "gmail_522_mailbox_full.eml", "arf_not_spam.eml"):
        box.add(sample(name))
    box.flush()
    box.close()

    found = list(read_source(str(path)))
    assert [label for label, _ in found] == ["mbox#1", "mbox#2", "mbox#3"]
    reports = [only(raw) for _, raw in found]
    assert [(r.kind, r.token, r.recipient) for r in reports] == [
        ("hard_bounce", "2n9c-Xq3v_8LpZk", "ana.moreno@example.org"),
        ("soft_bounce", "1x9z-Lm4n_Pq7Rs", "farah.haddad@example.com"),
        ("unknown", "4w4w-Df8Gh9Jk0L", "ivo.kral@example.org"),
    ]


def test_read_source_plain_directory_is_refused(tmp_path):
    (tmp_path / "bounce.eml").write_bytes(sample("delayed_441.eml"))
    with pytest.raises(ValueError, match="not a maildir.*cur/ and new/"):
        list(read_source(str(tmp_path)))


def test_read_source_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="bounce source not found"):
        list(read_source(str(tmp_path / "nowhere")))
