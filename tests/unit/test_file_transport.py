"""The outbox: one complete .eml per message, nothing half-written left behind."""

from __future__ import annotations

import io
import re

import pytest

from newsletter.mail import (
    ConsoleTransport,
    FileTransport,
    SMTPTransport,
    TransportError,
    make_transport,
)

MESSAGE = b"From: a@news.example\r\nTo: b@example.com\r\nSubject: Hi\r\n\r\nBody caf=C3=A9\r\n"


def test_message_lands_as_one_eml_with_identical_bytes(tmp_path):
    outbox = tmp_path / "instance" / "outbox"
    result = FileTransport(outbox).send("bounces@news.example", ["b@example.com"], MESSAGE)

    files = list(outbox.iterdir())
    assert len(files) == 1, "temporary files were left behind"
    assert files[0].suffix == ".eml"
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{32}\.eml", files[0].name)
    # As a final MTA does (RFC 5321, 4.4): the envelope sender on top, then the message.
    assert files[0].read_bytes() == b"Return-Path: <bounces@news.example>\r\n" + MESSAGE
    assert result.code == 250 and result.reply == f"written {files[0].name}"


def test_each_message_gets_its_own_file(tmp_path):
    transport = FileTransport(tmp_path)
    for n in range(3):
        transport.send("bounces@news.example", ["b@example.com"], MESSAGE + str(n).encode())
    files = sorted(tmp_path.iterdir())
    assert [f.read_bytes()[-1:] for f in files] == [b"0", b"1", b"2"]
    assert all(not f.name.startswith(".") for f in files)


def test_unwritable_outbox_is_a_transient_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the outbox should be")
    with pytest.raises(TransportError) as excinfo:
        FileTransport(blocker / "outbox").send("a@news.example", ["b@example.com"], MESSAGE)
    assert excinfo.value.permanent is False and excinfo.value.code is None


def test_console_transport_prints_the_message():
    stream = io.StringIO()
    result = ConsoleTransport(stream).send("bounces@news.example", ["b@example.com"], MESSAGE)
    printed = stream.getvalue()
    assert "from bounces@news.example to b@example.com" in printed
    assert "Subject: Hi\n\nBody caf=C3=A9\n" in printed
    assert "\r" not in printed
    assert result.code == 250


def test_make_transport_follows_the_config(tmp_path):
    assert isinstance(make_transport({"MAIL_TRANSPORT": "file", "OUTBOX_DIR": str(tmp_path)}),
                      FileTransport)
    assert isinstance(make_transport({"MAIL_TRANSPORT": "console"}), ConsoleTransport)
    smtp = make_transport({"MAIL_TRANSPORT": "smtp", "SMTP_URL": "smtp://relay.example:2525"})
    assert isinstance(smtp, SMTPTransport)
    assert (smtp.settings.host, smtp.settings.port) == ("relay.example", 2525)
    with pytest.raises(ValueError, match="MAIL_TRANSPORT"):
        make_transport({"MAIL_TRANSPORT": "pigeon"})
