"""After a message left: DSN and ARF reports, provider webhooks, opens and clicks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.db import db
from newsletter.delivery.models import BounceEvent, Delivery
from newsletter.delivery.providers import build_providers
from newsletter.editions.models import EditionLink
from newsletter.subscribers.models import Reader
from newsletter.subscribers.service import is_suppressed
from newsletter.wiring import reader_services, services
from tests.support.editions import audience, send, special_edition

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "bounces"


@pytest.fixture
def sent(app, topics):
    """Three readers who were sent an edition (file transport); their deliveries."""
    readers = audience(3)
    edition = special_edition()
    send(app, edition.id)
    rows = list(db.session.scalars(select(Delivery).order_by(Delivery.id)))
    assert [d.status for d in rows] == ["sent"] * 3
    return edition, readers, rows


def token_of(delivery: Delivery) -> str:

    return services().delivery_tokens.make(delivery.id)


def dsn_for(delivery: Delivery, sample: str = "postfix_511_user_unknown.eml") -> bytes:
    """A sample report rewritten to be about ``delivery``: its token and its address."""
    import re

    raw = (SAMPLES / sample).read_text(encoding="utf-8")
    token = token_of(delivery)
    raw = re.sub(r"bounces\+[A-Za-z0-9_-]+@", f"bounces+{token}@", raw)
    raw = re.sub(r"(X-Newsletter-Token:\s*)[A-Za-z0-9_-]+", rf"\g<1>{token}", raw)
    for old in set(re.findall(r"(?:Final|Original)-Recipient:\s*rfc822;\s*<?([^\s>]+)", raw)):
        raw = raw.replace(old, delivery.email).replace(old.lower(), delivery.email)
    return raw.encode()


def test_dsn_from_stdin_bounces_and_suppresses(runner, sent):
    _, _, rows = sent
    result = runner.invoke(args=["bounces", "process", "-"], input=dsn_for(rows[0]))
    assert result.exit_code == 0, result.output
    assert "1 message(s): 1 hard_bounce" in result.output
    db.session.expire_all()
    assert db.session.get(Delivery, rows[0].id).status == "bounced"
    assert is_suppressed(reader_services(), rows[0].email)
    assert not is_suppressed(reader_services(), rows[1].email)
    again = runner.invoke(args=["bounces", "process", "-"], input=dsn_for(rows[0]))
    assert "1 duplicate" in again.output, "replaying a report changes nothing"
    assert db.session.scalar(select(func.count(BounceEvent.id))) == 1


def test_maildir_with_soft_bounces_suppresses_on_the_third(runner, sent, tmp_path):
    _, _, rows = sent
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for n in range(3):
        raw = dsn_for(rows[1], "expired_447.eml").replace(
            b"Message-Id: <", f"Message-Id: <soft{n}.".encode(), 1)
        (maildir / "new" / f"{n}.eml").write_bytes(raw)
        result = runner.invoke(args=["bounces", "process", str(maildir)])
        assert result.exit_code == 0, result.output
        assert (maildir / "cur" / f"{n}.eml:2,S").exists(), "read once, then marked seen"
        assert is_suppressed(reader_services(), rows[1].email) == (n == 2), (n, result.output)


def test_complaint_unsubscribes_and_suppresses(runner, sent):
    _, readers, rows = sent
    raw = dsn_for(rows[2], "arf_abuse_yahoo.eml")
    result = runner.invoke(args=["bounces", "process", "-"], input=raw)
    assert "1 complaint" in result.output, result.output
    db.session.expire_all()
    reader = db.session.get(Reader, rows[2].reader_id)
    assert reader.status == "unsubscribed"
    assert is_suppressed(reader_services(), rows[2].email)


@pytest.mark.parametrize("sample", ["personal_reply.eml", "qmail_plain_text_bounce.eml",
                                    "report_without_status_part.eml"])
def test_malformed_reports_are_skipped_and_change_nothing(runner, sent, sample):
    result = runner.invoke(args=["bounces", "process", str(SAMPLES / sample)])
    assert result.exit_code == 0
    assert "skipped" in result.output
    assert db.session.scalar(select(func.count(BounceEvent.id))) == 0


def test_bad_source_path_is_refused(runner, sent, tmp_path):
    result = runner.invoke(args=["bounces", "process", str(tmp_path / "missing")])
    assert result.exit_code == 1


# -- webhooks ----------------------------------------------------------------------------

@pytest.fixture
def configure_hooks(app):
    """Set webhook settings on the running app. The providers are built from the settings
    when the app starts, so they are rebuilt here, around the app's (maybe replaced) SNS
    fetcher."""
    def configure(**settings):
        app.config.update(settings)
        parts = services(app)
        parts.providers = build_providers(app.config, sns_fetcher=parts.sns_fetcher)
    return configure


def mailgun_body(key: str, event: dict, timestamp: int | None = None,
                 token: str = "abcdef0123456789abcdef0123456789abcdef0123456789ab") -> bytes:
    timestamp = timestamp or int(time.time())
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(),
                         hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": str(timestamp), "token": token,
                                     "signature": signature},
                       "event-data": event}).encode()


def test_mailgun_webhook_bounce_and_replay(configure_hooks, client, sent):
    configure_hooks(MAILGUN_SIGNING_KEY="mg-key")
    _, _, rows = sent
    event = {"id": "evt-1", "event": "failed", "severity": "permanent",
             "recipient": rows[0].email, "timestamp": time.time(),
             "user-variables": {"nl_token": token_of(rows[0])},
             "delivery-status": {"code": 550, "message": "no such user"}}
    body = mailgun_body("mg-key", event)
    response = client.post("/hooks/mailgun", data=body, content_type="application/json")
    assert response.status_code == 200, response.data
    assert response.json["outcomes"] == ["hard_bounce"]
    assert is_suppressed(reader_services(), rows[0].email)
    replay = client.post("/hooks/mailgun", data=body, content_type="application/json")
    assert replay.json["outcomes"] == ["duplicate"]
    assert db.session.scalar(select(func.count(BounceEvent.id))) == 1


def test_a_captured_mailgun_signature_cannot_carry_a_forged_event(configure_hooks, client,
                                                                   sent):
    """Mailgun signs only timestamp + token: within its 5 minutes, the same signature block
    with another event must be refused, and change nothing."""
    configure_hooks(MAILGUN_SIGNING_KEY="mg-key")
    _, _, rows = sent
    genuine = {"id": "evt-real", "event": "delivered", "recipient": rows[0].email,
               "timestamp": time.time()}
    signed = json.loads(mailgun_body("mg-key", genuine, token="one-time-token-1234567890"))
    assert client.post("/hooks/mailgun", json=signed).status_code == 200
    forged = {**signed, "event-data": {
        "id": "evt-forged", "event": "failed", "severity": "permanent",
        "recipient": rows[1].email, "timestamp": time.time(),
        "user-variables": {"nl_token": token_of(rows[1])}}}
    response = client.post("/hooks/mailgun", json=forged)
    assert response.status_code == 401
    assert response.json["message"] == "signature already used"
    assert not is_suppressed(reader_services(), rows[1].email)
    assert db.session.scalar(select(func.count(BounceEvent.id))) == 0
    # The provider retrying the genuine request is still a plain duplicate.
    again = client.post("/hooks/mailgun", json=signed)
    assert again.status_code == 200 and again.json["outcomes"] == ["duplicate"]


def test_webhook_with_a_bad_signature_changes_nothing(configure_hooks, client, sent):
    configure_hooks(MAILGUN_SIGNING_KEY="mg-key")
    _, _, rows = sent
    event = {"id": "evt-2", "event": "failed", "severity": "permanent",
             "recipient": rows[0].email, "timestamp": time.time()}
    forged = mailgun_body("not-the-key", event)
    response = client.post("/hooks/mailgun", data=forged, content_type="application/json")
    assert response.status_code == 401
    stale = mailgun_body("mg-key", event, timestamp=int(time.time()) - 3600)
    assert client.post("/hooks/mailgun", data=stale,
                       content_type="application/json").status_code == 401
    assert not is_suppressed(reader_services(), rows[0].email)
    assert db.session.scalar(select(func.count(BounceEvent.id))) == 0


def test_postmark_needs_basic_auth(configure_hooks, client, sent):
    import base64

    configure_hooks(POSTMARK_WEBHOOK_USER="pm", POSTMARK_WEBHOOK_PASSWORD="secret")
    _, _, rows = sent
    body = json.dumps({"RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint",
                       "Email": rows[1].email, "BouncedAt": "2026-11-27T10:00:00Z",
                       "Metadata": {"nl_token": token_of(rows[1])}}).encode()
    assert client.post("/hooks/postmark", data=body, content_type="application/json",
                       headers={"Authorization": "Basic " + base64.b64encode(
                           b"pm:wrong").decode()}).status_code == 401
    assert not is_suppressed(reader_services(), rows[1].email)
    ok = client.post("/hooks/postmark", data=body, content_type="application/json",
                     headers={"Authorization": "Basic " + base64.b64encode(
                         b"pm:secret").decode()})
    assert ok.status_code == 200, ok.data
    assert is_suppressed(reader_services(), rows[1].email)


def test_unconfigured_hooks_are_not_there(client):
    for provider in ("ses", "postmark", "mailgun", "sendgrid"):
        assert client.post(f"/hooks/{provider}", data=b"{}").status_code == 404


# -- tracking ----------------------------------------------------------------------------

def test_open_pixel_counts_people_and_machines_apart(client, sent):
    import time_machine

    from newsletter.db import utcnow

    _, _, rows = sent
    token = token_of(rows[0])
    scanner = client.get(f"/o/{token}", headers={"User-Agent": "Mimecast Scanner"})
    assert scanner.status_code == 200 and scanner.mimetype == "image/gif"
    with time_machine.travel(utcnow().timestamp() + 60):
        for _ in range(2):
            client.get(f"/o/{token}", headers={"User-Agent": "Mozilla/5.0 (Macintosh)"})
    row = db.session.get(Delivery, rows[0].id)
    assert (row.opens, row.machine_opens) == (2, 1)
    assert row.first_opened_at is not None
    bad = client.get(f"/o/{token[:-1]}x")
    assert bad.status_code == 200 and bad.data == scanner.data, "same pixel, nothing counted"
    assert db.session.get(Delivery, rows[1].id).opens == 0


def test_click_redirects_only_to_the_editions_own_links(client, sent):
    import time_machine

    from newsletter.db import utcnow

    edition, _, rows = sent
    links = {link.n: link.url for link in db.session.scalars(
        select(EditionLink).where(EditionLink.edition_id == edition.id))}
    assert links, "the edition's links were recorded at render time"
    token = token_of(rows[0])
    with time_machine.travel(utcnow().timestamp() + 60):
        response = client.get(f"/c/{token}/1", headers={"User-Agent": "Mozilla/5.0"})
    assert response.status_code == 302
    assert response.headers["Location"] == links[1]
    row = db.session.get(Delivery, rows[0].id)
    assert (row.clicks, row.first_clicked_at is not None, row.first_opened_at is not None) == (
        1, True, True)
    assert client.get(f"/c/{token}/{len(links) + 1}").status_code == 404
    assert client.get(f"/c/{token}/0").status_code == 404
    assert client.get(f"/c/{token[:-2]}zz/1").status_code == 404
    assert client.get("/c/forged-token/1").status_code == 404
    assert client.get(f"/c/{token}/1?url=https://evil.example").headers["Location"] == links[1]


def test_tracking_switched_off_records_nothing(app, client, sent):
    app.config["TRACKING"] = False
    _, _, rows = sent
    client.get(f"/o/{token_of(rows[0])}", headers={"User-Agent": "Mozilla/5.0"})
    assert client.get(f"/c/{token_of(rows[0])}/1").status_code == 302
    row = db.session.get(Delivery, rows[0].id)
    assert (row.opens, row.clicks, row.machine_opens) == (0, 0, 0)


def test_edition_without_tracking_has_no_pixel_or_rewritten_links(app, topics, tmp_path):
    import email
    import email.policy

    audience(1)
    edition = special_edition(tracking=False)
    send(app, edition.id)
    [eml] = list(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))
    html = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default).get_body(
        ("html",)).get_content()
    assert "/o/" not in html and "/c/" not in html
    assert 'href="https://news.example/syntheses/' in html


@pytest.fixture
def ses(app, configure_hooks):
    """/hooks/ses with a test signing certificate served by a fake fetcher (SNS cannot run
    here); returns (key, fetcher)."""
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.unit.test_provider_webhooks import TOPIC, FakeFetcher, make_cert

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    fetcher = FakeFetcher(make_cert(key, not_before=now - timedelta(days=1),
                                    not_after=now + timedelta(days=1)))
    services(app).sns_fetcher = fetcher
    configure_hooks(SES_TOPIC_ARNS=[TOPIC])  # a new SES provider: no certificate cached yet
    return key, fetcher


def test_ses_subscription_confirmation_then_a_bounce(client, sent, ses):
    from tests.unit.test_provider_webhooks import (
        SUBSCRIBE_URL,
        body,
        confirmation,
        notification,
        sign_sns,
    )

    key, fetcher = ses
    _, _, rows = sent
    confirmed = client.post("/hooks/ses", data=body(sign_sns(confirmation(), key)),
                            content_type="text/plain")
    assert confirmed.status_code == 200 and confirmed.json == {"subscribed": True}
    assert SUBSCRIBE_URL in fetcher.urls, "the subscription was confirmed"

    payload = {"notificationType": "Bounce",
               "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                          "bouncedRecipients": [{"emailAddress": rows[0].email,
                                                 "status": "5.1.1", "action": "failed"}],
                          "timestamp": "2026-11-27T10:00:00.000Z"},
               "mail": {"messageId": "ses-1", "destination": [rows[0].email],
                        "headers": [{"name": "X-Newsletter-Token",
                                     "value": token_of(rows[0])}]}}
    signed = body(sign_sns(notification(payload, message_id="sns-1"), key, "2"))
    response = client.post("/hooks/ses", data=signed, content_type="text/plain")
    assert response.status_code == 200, response.data
    assert response.json["outcomes"] == ["hard_bounce"]
    assert is_suppressed(reader_services(), rows[0].email)
    assert db.session.get(Delivery, rows[0].id).status == "bounced"
    assert client.post("/hooks/ses", data=signed,
                       content_type="text/plain").json["outcomes"] == ["duplicate"]

    tampered = signed.replace(rows[0].email.encode(), rows[1].email.encode())
    assert client.post("/hooks/ses", data=tampered, content_type="text/plain").status_code == 401
    assert not is_suppressed(reader_services(), rows[1].email)
