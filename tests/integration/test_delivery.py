"""The delivery engine against a real SMTP server on loopback."""

from __future__ import annotations

from datetime import timedelta

import dkim
import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.db import db, utcnow
from newsletter.delivery import service as sending
from newsletter.delivery.models import Delivery, DeliveryAttempt
from newsletter.editions import service as editions
from newsletter.editions.models import Edition
from newsletter.subscribers.models import Reader, Suppression
from tests.factories_readers import make_reader
from tests.support.editions import audience, send, special_edition


@pytest.fixture
def smtp_config(app_config, smtp_server, dkim_key):
    app_config.update(MAIL_TRANSPORT="smtp", SMTP_URL=smtp_server.url, SEND_CONNECTIONS=3,
                      DKIM_SELECTOR="mail", DKIM_DOMAIN="news.example",
                      DKIM_PRIVATE_KEY_PATH=str(dkim_key[0]), RETRY_BASE_SECONDS=0)
    return app_config


def deliveries(edition_id: int) -> list[Delivery]:
    return list(db.session.scalars(select(Delivery).where(Delivery.edition_id == edition_id)
                                   .order_by(Delivery.id)))


def test_fan_out_picks_the_audience_once(app, topics):
    active = audience(3)
    make_reader(email="pending@example.com", status="pending")
    make_reader(email="gone@example.com", status="unsubscribed")
    make_reader(email="paused@example.com", frequency="paused")
    make_reader(email="research@example.com", topics=("models-and-research",))
    suppressed = make_reader(email="bounced@example.com")
    db.session.add(Suppression(email_hash=suppressed.email_hash, reason="hard_bounce"))
    db.session.commit()
    edition = special_edition(topics=["ai-policy-and-safety"])
    from newsletter.wiring import mail_setup

    assert sending.start_sending(edition.id, mail_setup()) == 3
    assert sorted(d.reader_id for d in deliveries(edition.id)) == [r.id for r in active]
    from newsletter.delivery.fanout import fan_out
    from newsletter.editions.models import EditionVariant

    variants = {v.key: v.id for v in db.session.scalars(select(EditionVariant))}
    again = fan_out(edition.id, kind=edition.kind, html_variant=variants["html"],
                    text_variant=variants["text"], topic_ids=[topics[0].id], paid_only=False,
                    now=edition.created_at,
                    today=edition.created_at.date())
    assert again == 0
    assert len(deliveries(edition.id)) == 3
    assert db.session.get(Edition, edition.id).status == "sending"


def test_everyone_gets_one_signed_message_with_their_own_links(
        smtp_config, app, topics, smtp_server, dkim_key):
    readers = audience(7)
    text_reader = make_reader(email="plain@example.com", format="text")
    edition = special_edition()
    progress = send(app, edition.id)
    assert progress.sent == 8

    received = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    assert sorted(received) == sorted([r.email for r in readers] + ["plain@example.com"])
    tokens = set()
    for reader in readers + [text_reader]:
        message = received[reader.email]
        assert dkim.verify(message.raw, dnsfunc=dkim_key[1])
        parsed = message.message
        assert parsed["To"] == reader.email
        assert parsed["Subject"] == "Breaking: a test edition"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = parsed["List-Unsubscribe"].strip()
        assert unsubscribe.startswith("<https://news.example/u/")
        token = parsed["X-Newsletter-Token"]
        assert message.envelope_from == f"bounces+{token}@news.example"
        tokens.add(token)
        text = parsed.get_body(("plain",)).get_content()
        assert unsubscribe.strip("<>") in text
        assert "Story 0 for Breaking" in text
    assert len(tokens) == 8
    assert received["plain@example.com"].message.get_content_type() == "text/plain"
    html = received[readers[0].email].message.get_body(("html",)).get_content()
    assert f"/o/{received[readers[0].email].message['X-Newsletter-Token']}" in html

    rows = deliveries(edition.id)
    assert {d.status for d in rows} == {"sent"}
    assert all(d.relay_reply.startswith("250 ") for d in rows), [d.relay_reply for d in rows]
    assert db.session.scalar(select(func.count(DeliveryAttempt.id))) == 8
    assert db.session.get(Edition, edition.id).status == "sent"


def test_transient_failures_are_deferred_then_delivered(smtp_config, app, topics, smtp_server):
    readers = audience(5)
    failing = {readers[1].email, readers[3].email}  # plain strings: the server thread reads them
    calls: dict[str, int] = {}

    def reply(received):
        rcpt = received.rcpt_tos[0]
        calls[rcpt] = calls.get(rcpt, 0) + 1
        if rcpt in failing and calls[rcpt] == 1:
            return "451 4.3.0 try again later"
        return None

    smtp_server.reply = reply
    app.config["RETRY_BASE_SECONDS"] = 60
    edition = special_edition()
    first = send(app, edition.id)
    assert (first.sent, first.deferred) == (3, 2)
    deferred = [d for d in deliveries(edition.id) if d.status == "deferred"]
    assert {d.email for d in deferred} == failing
    assert [(d.last_error[:3], d.attempts) for d in deferred] == [("451", 1)] * 2
    for d in deferred:
        wait = (d.next_attempt_at - d.created_at).total_seconds()
        assert 45 <= wait <= 75, "60 s ± 20 % jitter"
    assert db.session.get(Edition, edition.id).status == "sending"

    with time_machine.travel(utcnow() + timedelta(seconds=120)):
        second = send(app, edition.id)
    assert second.sent == 2
    assert {d.status for d in deliveries(edition.id)} == {"sent"}
    attempts = db.session.scalars(select(DeliveryAttempt.code).order_by(DeliveryAttempt.id))
    assert sorted(attempts) == [250] * 5 + [451] * 2


def test_permanent_failure_bounces_and_suppresses_without_retry(
        smtp_config, app, topics, smtp_server):
    readers = audience(3)
    gone = readers[0].email
    smtp_server.reply = (lambda received: "550 5.1.1 no such user"
                         if received.rcpt_tos[0] == gone else None)
    edition = special_edition()
    progress = send(app, edition.id)
    assert (progress.sent, progress.bounced) == (2, 1), [
        (d.email, d.last_error) for d in deliveries(edition.id)]
    bounced = [d for d in deliveries(edition.id) if d.status == "bounced"]
    assert [d.email for d in bounced] == [readers[0].email]
    assert bounced[0].last_error.startswith("550")
    from newsletter.subscribers.service import is_suppressed
    from newsletter.wiring import reader_services

    assert is_suppressed(reader_services(), readers[0].email)
    before = len(smtp_server.messages)
    send(app, edition.id)
    assert len(smtp_server.messages) == before, "never retried"
    later = special_edition(subject="Next edition")
    send(app, later.id)
    assert readers[0].email not in [m.rcpt_tos[0] for m in smtp_server.messages[before:]]


def test_a_full_mailbox_bounces_softly_and_the_third_in_the_window_suppresses(
        smtp_config, app, topics, smtp_server):
    """One send policy: a 5xx that says nothing against the address (5.2.2 mailbox full)
    bounces without retry but does not suppress; NEWSLETTER_SOFT_BOUNCE_LIMIT of them do,
    with that reason — and an address refused at RCPT (as Postfix does) is a hard bounce."""
    from newsletter.delivery.models import BounceEvent

    full, unknown, fine = (r.email for r in audience(3))
    smtp_server.reply = lambda received: ("552 5.2.2 Mailbox full"
                                          if received.rcpt_tos[0] == full else None)
    smtp_server.rcpt_reply = lambda address: ("550 5.1.1 <x>: Recipient address rejected"
                                              if address == unknown else None)
    for n in range(3):
        progress = send(app, special_edition(subject=f"Edition {n}").id)
        assert progress.bounced == (2 if n == 0 else 1)  # the unknown one is suppressed
        reasons = dict(db.session.execute(select(Reader.email, Suppression.reason).join(
            Suppression, Suppression.email_hash == Reader.email_hash)).all())
        assert reasons.get(unknown) == "hard_bounce"
        assert reasons.get(full) == ("soft_bounces" if n == 2 else None)
        assert fine not in reasons
    kinds = sorted(db.session.scalars(select(BounceEvent.kind)))
    assert kinds == ["hard_bounce"] + ["soft_bounce"] * 3


def test_too_many_attempts_fail(smtp_config, app, topics, smtp_server):
    app.config["MAX_ATTEMPTS"] = 2
    audience(1)
    smtp_server.reply = lambda received: "421 4.7.0 busy"
    edition = special_edition()
    send(app, edition.id)
    send(app, edition.id)
    [delivery] = deliveries(edition.id)
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert db.session.get(Edition, edition.id).status == "sent"


def test_reader_who_unsubscribes_after_fan_out_gets_nothing(smtp_config, app, topics,
                                                            smtp_server):
    from newsletter.subscribers import service
    from newsletter.wiring import mail_setup, reader_services

    readers = audience(3)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    service.unsubscribe(reader_services(), db.session.get(Reader, readers[1].id),
                        service.Actor(source="test"))
    send(app, edition.id)
    assert readers[1].email not in [m.rcpt_tos[0] for m in smtp_server.messages]
    statuses = {d.email: d.status for d in deliveries(edition.id)}
    assert statuses[readers[1].email] == "cancelled"
    assert len(smtp_server.messages) == 2


def test_pause_resume_cancel(smtp_config, app, topics, smtp_server):
    from newsletter.wiring import mail_setup

    audience(4)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    editions.pause(edition.id)
    send(app, edition.id)
    assert smtp_server.messages == [], "a paused edition sends nothing"
    with pytest.raises(editions.EditionStateError):
        editions.pause(edition.id)
    editions.resume(edition.id)
    send(app, edition.id)
    assert len(smtp_server.messages) == 4
    send(app, edition.id)
    assert len(smtp_server.messages) == 4, "resume never re-sends"

    other = special_edition(subject="Cancelled one")
    sending.start_sending(other.id, mail_setup())
    assert sending.cancel(other.id) == 4
    send(app, other.id)
    assert len(smtp_server.messages) == 4
    assert {d.status for d in deliveries(other.id)} == {"cancelled"}


def test_two_workers_at_once_never_send_twice(smtp_config, app, topics, smtp_server):
    import threading

    from newsletter.wiring import mail_setup, make_sender

    audience(60)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    app.config["SEND_BATCH"] = 7
    senders = [make_sender(app, worker=f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=s.run, args=(threading.Event(),),
                                kwargs={"edition_id": edition.id}) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    recipients = [m.rcpt_tos[0] for m in smtp_server.messages]
    assert len(recipients) == 60 and len(set(recipients)) == 60
    assert all(s.progress.sent > 0 for s in senders), "both workers took part"
