"""Account mail (confirmation, sign-in link, address change) goes through a queue the worker
drains: the request never talks to the relay, a relay that is down loses nothing, and two
workers never send one email twice (issue 11, item 8)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from newsletter.db import db, utcnow
from newsletter.subscribers.models import AccountMail, Reader
from newsletter.subscribers.outbox import MAX_ATTEMPTS, send_due
from newsletter.wiring import reader_services
from tests.factories_readers import make_reader
from tests.support.readers import csrf_from
from tests.support.smtp import SMTPTestServer, free_port
from tests.support.threads import at_once
from tests.support.worker import wait_for


@pytest.fixture
def relay(app_config, smtp_server):
    app_config.update(MAIL_TRANSPORT="smtp", SMTP_URL=smtp_server.url)
    return smtp_server


def subscribe(client, email="ada@example.com", topics=("ai-policy-and-safety",)):
    return client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": email,
                                           "topic": list(topics)})


def ask_for_link(client, email):
    return client.post("/preferences/link",
                       data={"csrf_token": csrf_from(client, "/preferences/link"),
                             "email": email})


def rows() -> list[AccountMail]:
    db.session.expire_all()
    return list(db.session.scalars(select(AccountMail).order_by(AccountMail.id)))


def drain(now=None):
    return send_due(reader_services().mailer, now or utcnow())


def path_in(message, prefix: str) -> str:
    import re

    text = message.message.get_body(("plain",)).get_content()
    match = re.search(r"https://news\.example(" + re.escape(prefix) + r"\S+)", text)
    assert match, text
    return match.group(1)


def test_the_request_queues_the_confirmation_and_the_worker_sends_it(relay, app, client,
                                                                     topics):
    assert subscribe(client).status_code == 200
    assert relay.connections == 0 and relay.messages == []  # the request did no mail work
    [row] = rows()
    assert (row.kind, row.to_email, row.status, row.attempts) == ("confirm", "ada@example.com",
                                                                  "queued", 0)

    report = drain()
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    [received] = relay.messages
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.message["Subject"] == "Confirm your subscription to Modelwire"
    [row] = rows()
    assert row.status == "sent" and row.finished_at is not None
    # The link it carries confirms.
    path = path_in(received, "/confirm/")
    client.post(path, data={"csrf_token": csrf_from(client, path)})
    assert db.session.scalar(select(Reader.status)) == "active"
    welcome = drain()  # confirming queued the welcome; the confirmation is not sent again
    assert (welcome.sent, welcome.handled) == (1, 1)
    assert relay.messages[-1].message["Subject"] == "Welcome to Modelwire"
    assert drain().handled == 0  # nothing is sent twice


@pytest.fixture
def relay_later(app_config):
    """A relay that is down until the test starts it (on the port the app was given)."""
    server = SMTPTestServer(port=free_port())
    app_config.update(MAIL_TRANSPORT="smtp", SMTP_URL=server.url)
    yield server
    server.stop()


def test_a_relay_that_is_down_loses_nothing(relay_later, app, client, topics):
    assert subscribe(client).status_code == 200  # the visitor sees the usual page

    report = drain()
    assert (report.sent, report.retried) == (0, 1)
    [row] = rows()
    assert row.status == "queued" and row.attempts == 1 and row.last_error
    # Not retried before its time...
    assert drain().handled == 0
    # ...and sent once the relay is back.
    relay_later.start()
    report = drain(utcnow() + timedelta(seconds=40))
    assert report.sent == 1
    assert [m.rcpt_tos for m in relay_later.messages] == [["ada@example.com"]]
    assert rows()[0].status == "sent"


def test_a_transient_refusal_is_retried_and_a_permanent_one_is_not(relay, app, client, topics):
    relay.reply = lambda received: "451 4.3.0 try again later"
    subscribe(client, "ada@example.com")
    assert drain().retried == 1
    relay.reply = None
    assert drain(utcnow() + timedelta(seconds=40)).sent == 1

    relay.reply = lambda received: "550 5.1.1 no such user"
    subscribe(client, "nobody@example.com")
    report = drain()
    assert (report.sent, report.retried, report.failed) == (0, 0, 1)
    assert rows()[-1].status == "failed" and "550" in rows()[-1].last_error
    assert drain(utcnow() + timedelta(days=1)).handled == 0


def _suppression_of(email):
    from newsletter.subscribers.addresses import email_hash
    from newsletter.subscribers.models import Suppression

    digest = email_hash(email, reader_services().hash_key)
    return db.session.scalar(select(Suppression.reason).where(Suppression.email_hash == digest))


def test_a_5xx_at_rcpt_suppresses_as_the_same_refusal_in_a_dsn_would(relay, app, client,
                                                                      topics):
    """One send policy: ``550 5.1.1`` refused at RCPT ends the account email failed, records
    a hard bounce and suppresses the address, as list mail and a later DSN do."""
    from newsletter.delivery.models import BounceEvent

    relay.rcpt_reply = lambda address: (
        "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
        if address == "nobody@example.com" else None)
    subscribe(client, "nobody@example.com")
    report = drain()
    assert (report.sent, report.failed, report.bounced) == (0, 1, 1)
    assert relay.refused_rcpts == ["nobody@example.com"] and relay.messages == []
    assert "RCPT TO" in rows()[-1].last_error and "5.1.1" in rows()[-1].last_error
    assert _suppression_of("nobody@example.com") == "hard_bounce"
    [event] = db.session.scalars(select(BounceEvent)).all()
    assert (event.kind, event.source) == ("hard_bounce", "smtp")
    assert "User unknown" in event.detail


def test_a_full_mailbox_at_rcpt_is_a_soft_bounce_not_a_suppression(relay, app, client, topics):
    relay.rcpt_reply = lambda address: "552 5.2.2 Mailbox full"
    subscribe(client, "full@example.com")
    assert drain().bounced == 1
    assert _suppression_of("full@example.com") is None
    from newsletter.delivery.models import BounceEvent

    assert db.session.scalar(select(BounceEvent.kind)) == "soft_bounce"


def test_after_the_last_try_the_email_is_failed_not_retried_for_ever(relay, app, client,
                                                                    topics):
    relay.reply = lambda received: "421 4.7.0 busy"
    subscribe(client)
    now = utcnow()
    for _ in range(MAX_ATTEMPTS):
        now += timedelta(hours=3)
        drain(now)
    [row] = rows()
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS
    assert drain(now + timedelta(days=1)).handled == 0
    assert relay.messages == []


def test_known_and_unknown_addresses_get_the_same_answer_and_no_mail_work(relay, app, client,
                                                                         topics):
    make_reader("known@example.com")
    known = ask_for_link(client, "known@example.com")
    unknown = ask_for_link(client, "unknown@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.get_data() == unknown.get_data()
    assert relay.connections == 0
    [row] = rows()
    assert (row.kind, row.to_email) == ("manage_link", "known@example.com")
    assert drain().sent == 1
    assert [m.rcpt_tos for m in relay.messages] == [["known@example.com"]]


def test_asking_again_before_the_worker_runs_sends_one_email(relay, app, client, topics):
    make_reader("known@example.com")
    for _ in range(3):
        assert ask_for_link(client, "known@example.com").status_code == 200
    assert len(rows()) == 1
    drain()
    assert len(relay.messages) == 1


def test_a_confirmation_replaced_by_a_newer_request_is_dropped(relay, app, client, topics):
    subscribe(client, topics=("ai-policy-and-safety",))
    subscribe(client, topics=("models-and-research",))
    report = drain()
    assert (report.sent, report.dropped) == (1, 1)
    assert [r.status for r in rows()] == ["dropped", "sent"]
    # The one that went is the newest request's, and it confirms that request's topics.
    [received] = relay.messages
    path = path_in(received, "/confirm/")
    client.post(path, data={"csrf_token": csrf_from(client, path)})
    reader = db.session.scalar(select(Reader))
    assert reader.status == "active"
    assert [t.slug for t in reader.topics] == ["models-and-research"]


def test_an_erased_reader_gets_nothing_and_no_queued_row_keeps_the_address(relay, app, client,
                                                                          topics):
    from newsletter.subscribers.privacy import erase_reader
    from newsletter.subscribers.service import Actor

    subscribe(client)
    reader = db.session.scalar(select(Reader))
    erase_reader(reader_services(), reader, Actor(source="admin"))
    assert rows() == []
    assert drain().handled == 0 and relay.messages == []


def test_two_workers_draining_at_once_send_each_email_once(relay, app, app_config, client,
                                                           topics):
    from newsletter.subscribers.service import Actor, request_subscription

    for n in range(12):  # past the form's rate limit: through the service, as the API does
        request_subscription(reader_services(), f"reader{n}@example.com",
                             ["ai-policy-and-safety"], Actor(source="api"))
    reports = at_once(app_config, lambda: send_due(reader_services().mailer, utcnow()))
    assert sum(r.sent for r in reports) == 12
    assert sorted(m.rcpt_tos[0] for m in relay.messages) == sorted(
        f"reader{n}@example.com" for n in range(12))
    assert {r.status for r in rows()} == {"sent"}


def test_an_email_whose_worker_stopped_mid_send_is_sent_after_its_lease(relay, app, client,
                                                                        topics):
    from sqlalchemy import update

    subscribe(client)
    now = utcnow()
    # A worker claimed it and died before recording anything.
    db.session.execute(update(AccountMail).values(status="sending", claim="dead", attempts=1,
                                                  lease_until=now + timedelta(minutes=2)))
    db.session.commit()
    assert drain(now).handled == 0  # its lease still runs
    assert drain(now + timedelta(minutes=3)).sent == 1
    [row] = rows()
    assert row.status == "sent" and row.attempts == 2
    assert len(relay.messages) == 1


def test_the_worker_sends_account_mail_without_being_asked(relay, app, client, topics):
    from newsletter.scheduler import run_worker

    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(app, stop), kwargs={"poll_seconds": 1},
                              daemon=True)
    worker.start()
    try:
        assert subscribe(client).status_code == 200
        wait_for(lambda: len(relay.messages) == 1, timeout=20, what="the confirmation")
    finally:
        stop.set()
        worker.join(30)
    assert relay.messages[0].rcpt_tos == ["ada@example.com"]
    assert rows()[0].status == "sent"


def test_a_relay_that_drops_every_connection_is_left_alone_after_three_tries(app_config, app,
                                                                           client, topics):
    """Account mail's circuit breaker: the worker looks every 2 s, but after three failures
    to reach the relay it stops dialling (and claiming) until the next probe; no email is
    lost or failed, and none spends more tries than the ones that really dialled."""
    from tests.support.smtp import Dropper

    port = free_port()
    dropper = Dropper(port)
    try:
        app.config.update(MAIL_TRANSPORT="smtp", SMTP_URL=f"smtp://127.0.0.1:{port}")
        from newsletter.wiring import build_services, services

        app.extensions["newsletter"] = build_services(app.config)
        for n in range(5):
            assert subscribe(client, f"r{n}@example.com").status_code == 200
        for _ in range(10):  # 20 s of the worker's looks, in a moment
            drain()
        assert dropper.connections == 3
        assert services().mail.breaker.is_open
        assert sum(row.attempts for row in rows()) == 3
        assert {row.status for row in rows()} == {"queued"}
    finally:
        dropper.stop()
