"""The mail path through the app: a synthesis sent as an email via the configured transport."""

from __future__ import annotations

import email
import email.policy

import dkim
import pytest

from tests.factories import sample_payload


@pytest.fixture
def smtp_app_config(app_config, smtp_server, dkim_key):
    app_config.update(MAIL_TRANSPORT="smtp", SMTP_URL=smtp_server.url, DKIM_SELECTOR="mail",
                      DKIM_DOMAIN="news.example", DKIM_PRIVATE_KEY_PATH=str(dkim_key[0]))
    return app_config


def test_send_test_over_smtp_arrives_signed_with_list_headers(
        smtp_app_config, client, runner, topics, auth, smtp_server, dkim_key):
    slug = client.post("/api/v1/syntheses", json=sample_payload(),
                       headers=auth).json["synthesis"]["slug"]
    result = runner.invoke(args=["mail", "send-test", "--to", "Reader@Example.com",
                                 "--synthesis", slug])
    assert result.exit_code == 0, result.output
    assert "to reader@example.com: 250" in result.output

    [received] = smtp_server.messages
    assert received.envelope_from == "newsletter@news.example"
    assert received.rcpt_tos == ["reader@example.com"]
    raw = received.raw
    assert dkim.verify(raw, dnsfunc=dkim_key[1])
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"] == "Modelwire <newsletter@news.example>"
    assert message["To"] == "reader@example.com"
    assert message["Subject"] == sample_payload()["title"]
    assert message["Message-ID"].endswith("@news.example>")
    assert message["Date"]
    assert message["List-Id"] == "Modelwire <test.news.example>"
    assert message["List-Unsubscribe"] == "<https://news.example/u/preview>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    signed = message["DKIM-Signature"].replace(" ", "").replace("\r\n", "").lower()
    for header in ("from", "to", "subject", "date", "message-id", "list-unsubscribe",
                   "list-unsubscribe-post"):
        assert header in signed.split("h=")[1].split(";")[0].split(":")
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "formal bilateral communication channel" in text
    assert "https://www.wired.com/story/china-ai-experts-freaking-out/" in text
    assert "China&#39;s Top AI Experts" in html
    assert "Analyst take" in html
    assert "1 Example Street, Springfield" in html
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))


def test_send_test_writes_to_the_outbox_by_default(app_config, runner, topics, tmp_path):
    from tests.factories import make_synthesis

    make_synthesis(title="Outbox check")
    result = runner.invoke(args=["mail", "send-test", "--to", "reader@example.com"])
    assert result.exit_code == 0, result.output
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "Outbox check"
    assert "DKIM-Signature" not in message


@pytest.mark.parametrize("args,error", [
    (["--to", "not-an-address"], "--to: "),
    (["--to", "a@example.com\r\nBcc: x@example.com"], "--to: "),
    (["--to", "reader@example.com", "--synthesis", "nope"], "no published synthesis"),
])
def test_send_test_bad_input_sends_nothing(runner, topics, tmp_path, args, error):
    from tests.factories import make_synthesis

    make_synthesis()
    result = runner.invoke(args=["mail", "send-test", *args])
    assert result.exit_code == 1
    assert error in result.output
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").iterdir())


def test_relay_refusal_is_reported(smtp_app_config, runner, topics, smtp_server):
    from tests.factories import make_synthesis

    make_synthesis()
    smtp_server.reply = lambda received: "550 5.1.1 no such user"
    result = runner.invoke(args=["mail", "send-test", "--to", "gone@example.com"])
    assert result.exit_code == 1
    assert "not sent" in result.output and "550" in result.output


def test_send_test_to_a_reader_carries_their_working_unsubscribe_link(
        app_config, runner, topics, tmp_path, app):
    from tests.factories import make_synthesis
    from tests.factories_readers import make_reader

    make_synthesis()
    reader = make_reader(email="reader@example.com")
    assert runner.invoke(args=["mail", "send-test", "--to", "reader@example.com"]).exit_code == 0
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    url = message["List-Unsubscribe"].strip().strip("<>")
    assert url.startswith("https://news.example/u/"), url
    provider = app.test_client(use_cookies=False)
    response = provider.post(url.removeprefix("https://news.example"),
                             data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    from newsletter.db import db
    from newsletter.subscribers.models import Reader

    assert db.session.get(Reader, reader.id).status == "unsubscribed"


def test_send_test_refuses_a_suppressed_address(runner, topics, tmp_path, app):
    from newsletter.subscribers import service
    from newsletter.wiring import reader_services
    from tests.factories import make_synthesis

    make_synthesis()
    service.suppress(reader_services(), "gone@example.com", service.SuppressionReason.COMPLAINT)
    from newsletter.db import db

    db.session.commit()
    result = runner.invoke(args=["mail", "send-test", "--to", "Gone@Example.com"])
    assert result.exit_code == 1
    assert "suppression list" in result.output
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").iterdir())
