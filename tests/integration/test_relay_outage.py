"""A relay that is down: the sender backs off (a circuit breaker per relay), the dashboard
says so, and when the relay is back every reader gets the message once — nothing lost,
nothing failed early, no attempt spent on the outage."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from newsletter.db import db
from newsletter.delivery import service as sending
from newsletter.delivery.models import Delivery
from newsletter.wiring import mail_setup, make_sender
from tests.support.admins import signed_in
from tests.support.editions import audience, special_edition
from tests.support.smtp import Dropper, SMTPTestServer, free_port
from tests.support.worker import wait_for


@pytest.fixture
def port(app_config):
    port = free_port()
    app_config.update(MAIL_TRANSPORT="smtp", SMTP_URL=f"smtp://127.0.0.1:{port}",
                      SEND_CONNECTIONS=8, RETRY_BASE_SECONDS=60)
    return port


def test_a_relay_that_drops_every_connection_is_backed_off_and_loses_nothing(port, app,
                                                                             topics):
    readers = audience(40)
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    dropper = Dropper(port)
    sender = make_sender(app)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    relay = None
    try:
        thread.start()
        wait_for(lambda: sender.breakers and next(iter(sender.breakers.values())).is_open,
                 timeout=10, what="the breaker to open")
        html = signed_in(app, "viewer").get("/admin/").get_data(as_text=True)
        assert "down since" in html, "the dashboard shows the relay as down"
        time.sleep(5)  # the outage goes on; the sender must not hammer the relay
        dials = dropper.connections
        # 8 connections' first tries, then one probe after 1 s, 2 s, 4 s...: not one a slot.
        assert 3 <= dials <= 8 + 4, dials
        dropper.stop()
        relay = SMTPTestServer(port=port).start()
        wait_for(lambda: len(relay.messages) >= len(readers), timeout=90,
                 what="every reader's message once the relay is back")
        wait_for(lambda: not next(iter(sender.breakers.values())).is_open, timeout=5)
        html = signed_in(app, "viewer").get("/admin/").get_data(as_text=True)
        assert "answering" in html
    finally:
        stop.set()
        thread.join(timeout=30)
        if relay is not None:
            relay.stop()
        else:
            dropper.stop()
    got = sorted(m.rcpt_tos[0] for m in relay.messages)
    assert got == sorted(r.email for r in readers), "each reader exactly once"
    db.session.expire_all()
    rows = db.session.scalars(select(Delivery).where(Delivery.edition_id == edition.id)).all()
    assert {d.status for d in rows} == {"sent"}, "nothing failed or was dropped"
    assert {d.attempts for d in rows} == {1}, "the outage spent no delivery's attempts"
