"""Stripe's webhook against a real local Stripe-compatible server (localstripe).

Each event makes the app fetch the subscription from Stripe and apply what Stripe says, so
order does not matter, replays change nothing, forgeries change nothing, and an outage is a
503 that Stripe retries.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.billing.models import BillingAccount, BillingEvent, BillingSubscription
from newsletter.db import db, utcnow
from newsletter.subscribers.models import AccountMail, Reader
from tests.factories_readers import make_reader
from tests.support import stripe as fake
from tests.support.readers import outbox_messages, text_of

pytestmark = pytest.mark.usefixtures("topics")


@pytest.fixture
def app_config(app_config, stripe_server):
    stripe_server.reset()
    app_config.update(fake.settings(stripe_server))
    return app_config


@pytest.fixture
def front(stripe_server, app):
    return stripe_server


def post(client, event, **kwargs):
    body, headers = fake.signed(event, **kwargs)
    return client.post("/hooks/stripe", data=body, headers=headers)


def reader_row(reader_id: int) -> Reader:
    return db.session.get(Reader, reader_id)


def paying_reader(front, email="ada@example.com", **extra):
    """A reader whose Stripe customer (ours) pays the monthly plan at localstripe; the app
    has not heard of the subscription yet."""
    reader = make_reader(email)
    customer, subscription = front.customer_with_subscription(reader.id, email, **extra)
    db.session.add(BillingAccount(reader_id=reader.id, customer_id=customer))
    db.session.commit()
    return reader, subscription


def subscription_event(kind, front, subscription_id, **carried):
    """The event Stripe would send, carrying the subscription as it is (or as ``carried``
    says it was when the event was made)."""
    return fake.event(kind, {**front.subscription(subscription_id), **carried})


def test_a_subscription_event_makes_the_reader_paying(client, front):
    reader, sub = paying_reader(front)
    answer = post(client, subscription_event("customer.subscription.created", front, sub["id"]))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json["duplicate"] is False
    row = db.session.get(BillingSubscription, sub["id"])
    assert (row.status, row.reader_id, row.amount, row.currency, row.interval) == (
        "active", reader.id, 800, "eur", "month")
    assert reader_row(reader.id).plan == "paid" and reader_row(reader.id).plan_until is None
    # The app fetched the subscription from Stripe rather than trust the event alone.
    assert front.calls("GET", f"/v1/subscriptions/{sub['id']}")


def test_the_same_event_twice_changes_nothing_the_second_time(client, front):
    reader, sub = paying_reader(front)
    front.override(sub["id"], status="past_due")
    event = subscription_event("invoice.payment_failed", front, sub["id"])
    event["data"]["object"] = {"id": "in_1", "object": "invoice", "subscription": sub["id"],
                               "customer": sub["customer"]}
    first, second = post(client, event), post(client, event)
    assert first.status_code == second.status_code == 200
    assert (first.json["duplicate"], second.json["duplicate"]) == (False, True)
    assert db.session.scalar(select(func.count()).select_from(BillingEvent)) == 1
    # One grace period, one email.
    assert db.session.scalar(select(func.count()).select_from(AccountMail)
                             .where(AccountMail.kind == "payment_failed")) == 1
    assert len(front.calls("GET", f"/v1/subscriptions/{sub['id']}")) == 1


def test_updated_before_created_ends_in_stripes_state(client, front):
    reader, sub = paying_reader(front)
    stale_created = subscription_event("customer.subscription.created", front, sub["id"],
                                       status="incomplete")
    updated = subscription_event("customer.subscription.updated", front, sub["id"])
    assert post(client, updated).status_code == 200
    assert post(client, stale_created).status_code == 200  # arrives last, says less
    assert db.session.get(BillingSubscription, sub["id"]).status == "active"
    assert reader_row(reader.id).plan == "paid"


def test_deleted_then_a_late_updated_stays_cancelled(client, front):
    reader, sub = paying_reader(front)
    assert post(client, subscription_event("customer.subscription.created", front,
                                           sub["id"])).status_code == 200
    late_updated = subscription_event("customer.subscription.updated", front, sub["id"])
    front.localstripe.json("DELETE", f"/v1/subscriptions/{sub['id']}")  # cancelled at Stripe
    assert post(client, subscription_event("customer.subscription.deleted", front,
                                           sub["id"])).status_code == 200
    assert reader_row(reader.id).plan == "free"
    # The "updated" made while it was active arrives late: Stripe says cancelled.
    assert post(client, late_updated).status_code == 200
    assert db.session.get(BillingSubscription, sub["id"]).status == "canceled"
    assert reader_row(reader.id).plan == "free"


def failed_invoice(front, sub_id: str, kind: str = "invoice.payment_failed"):
    sub = front.subscription(sub_id)
    return fake.event(kind, {"id": "in_" + sub_id[-8:], "object": "invoice",
                             "customer": sub["customer"],
                             # the 2025-03-31 shape: the subscription under parent
                             "parent": {"subscription_details": {"subscription": sub_id}}})


def test_a_failed_payment_then_success_inside_the_grace_period(app, client, front):
    reader, sub = paying_reader(front)
    post(client, subscription_event("customer.subscription.created", front, sub["id"]))
    front.override(sub["id"], status="past_due")  # the renewal's card was declined
    assert post(client, failed_invoice(front, sub["id"])).status_code == 200
    row = db.session.get(BillingSubscription, sub["id"])
    grace = row.grace_until
    assert grace is not None and timedelta(days=6, hours=23) < grace - utcnow() <= timedelta(
        days=7)
    current = reader_row(reader.id)
    assert current.plan == "paid" and current.plan_until == grace  # still paying, for now
    mail = [m for m in outbox_messages(Path(app.config["OUTBOX_DIR"]))
            if "did not go through" in m["Subject"]]
    assert len(mail) == 1 and mail[0]["To"] == "ada@example.com"
    assert f"{grace:%B} {grace.day}, {grace:%Y}" in text_of(mail[0])
    assert "/manage/" in text_of(mail[0])

    # A second failed attempt inside the grace period: the same grace, no second email.
    assert post(client, failed_invoice(front, sub["id"])).status_code == 200
    assert db.session.get(BillingSubscription, sub["id"]).grace_until == grace
    assert db.session.scalar(select(func.count()).select_from(AccountMail)
                             .where(AccountMail.kind == "payment_failed")) == 1

    # The card is updated and the invoice paid: grace over, open-ended again.
    front.override(sub["id"], status="active")
    assert post(client, failed_invoice(front, sub["id"], "invoice.paid")).status_code == 200
    assert db.session.get(BillingSubscription, sub["id"]).grace_until is None
    current = reader_row(reader.id)
    assert current.plan == "paid" and current.plan_until is None


def test_after_the_grace_period_a_lapsed_reader_is_free(app, client, front):
    from newsletter.billing.entitlements import reader_is_paying
    from newsletter.scheduler import jobs

    reader, sub = paying_reader(front)
    post(client, subscription_event("customer.subscription.created", front, sub["id"]))
    front.override(sub["id"], status="past_due")
    post(client, failed_invoice(front, sub["id"]))
    grace = db.session.get(BillingSubscription, sub["id"]).grace_until
    assert reader_is_paying(reader_row(reader.id), grace - timedelta(minutes=1))
    assert not reader_is_paying(reader_row(reader.id), grace + timedelta(minutes=1))
    # The hourly housekeeping then writes it down as free.
    with time_machine.travel(grace + timedelta(hours=1), tick=False):
        jobs.housekeeping(app)
    db.session.expire_all()
    assert (reader_row(reader.id).plan, reader_row(reader.id).plan_until) == ("free", None)


def test_a_cancellation_at_period_end_keeps_access_until_then(client, front):
    reader, sub = paying_reader(front)
    front.override(sub["id"], cancel_at_period_end=True)
    post(client, subscription_event("customer.subscription.updated", front, sub["id"]))
    current = reader_row(reader.id)
    assert current.plan == "paid"
    assert current.plan_until is not None
    assert int(current.plan_until.timestamp()) == sub["current_period_end"]


def test_checkout_completed_links_a_customer_made_elsewhere(client, front):
    """The reader is named by the session's client_reference_id (ours, in a signed event)."""
    reader = make_reader("grace@example.com")
    customer, sub = front.customer_with_subscription(reader.id, "grace@example.com")
    session = {"id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
               "customer": customer, "subscription": sub["id"],
               "client_reference_id": str(reader.id), "status": "complete",
               "metadata": {"reader_id": str(reader.id), "site": "news.example"}}
    assert post(client, fake.event("checkout.session.completed", session)).status_code == 200
    assert db.session.get(BillingAccount, reader.id).customer_id == customer
    assert reader_row(reader.id).plan == "paid"


def test_a_customer_that_is_someone_elses_is_not_claimed(client, front):
    owner, sub = paying_reader(front)
    other = make_reader("mallory@example.com")
    db.session.add(BillingAccount(reader_id=other.id, customer_id="cus_mallory_own"))
    db.session.commit()
    session = {"id": "cs_test_2", "object": "checkout.session", "mode": "subscription",
               "customer": "cus_mallory_own", "subscription": sub["id"],
               "client_reference_id": str(other.id)}
    assert post(client, fake.event("checkout.session.completed", session)).status_code == 200
    # The subscription belongs to the owner's customer: the owner pays, not the other.
    assert reader_row(owner.id).plan == "paid"
    assert reader_row(other.id).plan == "free"


def test_unknown_types_are_stored_as_ignored(client, front):
    answer = post(client, fake.event("customer.tax_id.created", {"id": "txi_1"}))
    assert answer.status_code == 200 and answer.json["outcome"] == "ignored"
    assert db.session.get(BillingEvent, answer.json["id"]).outcome == "ignored"


def test_a_subscription_stripe_does_not_know_changes_nothing(client, front):
    answer = post(client, fake.event("customer.subscription.updated", {
        "id": "sub_forged_or_deleted", "object": "subscription", "status": "active",
        "customer": "cus_x"}))
    assert answer.status_code == 200 and answer.json["outcome"].startswith("ignored")
    assert db.session.get(BillingSubscription, "sub_forged_or_deleted") is None


@pytest.mark.parametrize("why", ["wrong secret", "too old", "tampered", "no header",
                                 "two v1 none right"])
def test_forged_events_are_refused_and_change_nothing(client, front, why):
    reader, sub = paying_reader(front)
    event = subscription_event("customer.subscription.created", front, sub["id"])
    body, headers = fake.signed(event)
    if why == "wrong secret":
        body, headers = fake.signed(event, secret="whsec_attacker")
    elif why == "too old":
        body, headers = fake.signed(event, timestamp=int(time.time()) - 301)
    elif why == "tampered":
        body = body.replace(b'"active"', b'"trialing"')
    elif why == "no header":
        headers = {"Content-Type": "application/json"}
    elif why == "two v1 none right":
        moment = headers["Stripe-Signature"].split(",")[0]
        headers["Stripe-Signature"] = f"{moment},v1={'0' * 64},v1={'1' * 64}"
    answer = client.post("/hooks/stripe", data=body, headers=headers)
    assert answer.status_code == 401
    assert db.session.scalar(select(func.count()).select_from(BillingEvent)) == 0
    assert reader_row(reader.id).plan == "free"
    assert not front.calls("GET", "/v1/subscriptions/")  # nothing was read before the proof


def test_several_v1_values_one_of_them_ours(client, front):
    reader, sub = paying_reader(front)
    body, headers = fake.signed(subscription_event("customer.subscription.created", front,
                                                   sub["id"]))
    t, v1 = headers["Stripe-Signature"].split(",")
    headers["Stripe-Signature"] = f"{t},v1={'ab' * 32},{v1}"
    assert client.post("/hooks/stripe", data=body, headers=headers).status_code == 200
    assert reader_row(reader.id).plan == "paid"


def test_stripe_unreachable_is_a_503_and_the_retry_works(client, front):
    reader, sub = paying_reader(front)
    event = subscription_event("customer.subscription.created", front, sub["id"])
    front.down = True
    answer = post(client, event)
    assert answer.status_code == 503
    assert db.session.get(BillingEvent, event["id"]) is None  # not stored: Stripe retries
    assert reader_row(reader.id).plan == "free"
    front.down = False
    assert post(client, event).status_code == 200
    assert reader_row(reader.id).plan == "paid"


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"id": "evt_1"}', b'{"id": 5, "type": "x", "data": {"object": {}}}',
    b'{"id": "evt_1", "type": "x", "data": {"object": []}}',
    b'{"id": "evt_1", "type": "customer.subscription.updated", "data": {"object": {}}}',
    b"[" * 5000 + b"]" * 5000, b'{"id": "evt_\\ud800", "type": "x", "data": {"object": {}}}',
    "{\"id\": \"evt_é\", \"type\": \"x\", \"data\": {\"object\": {}}}".encode(),
])
def test_signed_but_unreadable_bodies_are_400(client, front, body):
    moment = int(time.time())
    headers = {"Stripe-Signature": f"t={moment},v1={fake.sign(body, fake.WEBHOOK_SECRET, moment)}"}
    answer = client.post("/hooks/stripe", data=body, headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(BillingEvent)) == 0


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_only_post_is_accepted(client, front, method):
    assert client.open("/hooks/stripe", method=method).status_code == 405
    options = client.options("/hooks/stripe")
    assert options.status_code == 200 and "POST" in options.headers["Allow"]
    assert db.session.scalar(select(func.count()).select_from(BillingEvent)) == 0


def test_without_stripe_configured_the_hook_is_not_there(app, client, front):
    from newsletter.wiring import build_billing, services

    services().billing = build_billing({**app.config, "STRIPE_SECRET_KEY": None})
    answer = post(client, fake.event("invoice.paid", {"id": "in_1"}))
    assert answer.status_code == 404


def test_an_older_fetch_never_overwrites_a_newer_one(app_config, client, front):
    """Two processes sync one subscription at once; the one whose fetch started first (and
    saw it active) writes last. Stripe's newer answer (cancelled) stands."""
    import threading

    from newsletter import create_app
    from newsletter.billing.service import Billing
    from newsletter.billing.sync import sync_subscription
    from newsletter.wiring import services

    reader, sub = paying_reader(front)
    assert post(client, subscription_event("customer.subscription.created", front,
                                           sub["id"])).status_code == 200
    fetched, go_on = threading.Event(), threading.Event()

    class SlowAfterFetching:
        def __init__(self, gateway):
            self.gateway = gateway

        def subscription(self, subscription_id):
            state = self.gateway.subscription(subscription_id)
            fetched.set()
            assert go_on.wait(30)
            return state

    other = create_app(app_config)
    mine = services(other).billing
    slow = Billing(gateway=SlowAfterFetching(mine.gateway), settings=mine.settings)
    outcome = []

    def older():
        with other.app_context():
            outcome.append(sync_subscription(slow, sub["id"], utcnow()))
            db.session.commit()
            db.session.remove()

    thread = threading.Thread(target=older, daemon=True)
    thread.start()
    assert fetched.wait(30)  # it has read "active"
    front.localstripe.json("DELETE", f"/v1/subscriptions/{sub['id']}")
    newer = sync_subscription(services().billing, sub["id"], utcnow())
    db.session.commit()
    assert "canceled" in newer
    go_on.set()
    thread.join(30)
    assert outcome and "newer state is already in" in outcome[0]
    db.session.expire_all()
    assert db.session.get(BillingSubscription, sub["id"]).status == "canceled"
    assert reader_row(reader.id).plan == "free"


def test_a_notice_not_yet_sent_is_dropped_once_the_payment_goes_through(app, client, front):
    from newsletter.subscribers.outbox import send_due
    from newsletter.wiring import reader_services

    reader, sub = paying_reader(front)
    front.override(sub["id"], status="past_due")
    post(client, failed_invoice(front, sub["id"]))
    front.override(sub["id"], status="active")
    post(client, failed_invoice(front, sub["id"], "invoice.paid"))
    report = send_due(reader_services().mailer, utcnow())
    assert (report.sent, report.dropped) == (0, 1)
    mail = db.session.scalar(select(AccountMail).where(AccountMail.kind == "payment_failed"))
    assert mail.status == "dropped"


def test_head_on_the_success_page_asks_stripe_nothing(client, front):
    from tests.factories_readers import links

    reader, _ = paying_reader(front)
    client.get(links().manage(reader.id).removeprefix("https://news.example"))
    assert client.head("/billing/success?session_id=cs_test_x").status_code == 200
    assert not front.calls("GET", "/v1/checkout/sessions/")


def test_a_late_failure_notice_after_the_payment_went_through_starts_no_grace(client, front):
    """invoice.payment_failed delivered after invoice.paid: Stripe says active, so no grace
    starts, and the next real failure still gets its grace period and its email."""
    reader, sub = paying_reader(front)
    post(client, subscription_event("customer.subscription.created", front, sub["id"]))
    late_failure = failed_invoice(front, sub["id"])
    post(client, failed_invoice(front, sub["id"], "invoice.paid"))
    answer = post(client, late_failure)
    assert "went through" in answer.json["outcome"]
    assert db.session.get(BillingSubscription, sub["id"]).grace_until is None
    assert reader_row(reader.id).plan_until is None
    assert db.session.scalar(select(func.count()).select_from(AccountMail)
                             .where(AccountMail.kind == "payment_failed")) == 0
    # The next renewal fails for real.
    front.override(sub["id"], status="past_due")
    post(client, failed_invoice(front, sub["id"]))
    assert db.session.get(BillingSubscription, sub["id"]).grace_until is not None
    assert reader_row(reader.id).plan == "paid"
    assert db.session.scalar(select(func.count()).select_from(AccountMail)
                             .where(AccountMail.kind == "payment_failed")) == 1


def test_another_sites_subscription_on_the_same_stripe_account_is_not_ours(client, front):
    reader = make_reader("ada@example.com")
    _, sub = front.customer_with_subscription(reader.id, "someone@else.example",
                                              site="another.example")
    answer = post(client, subscription_event("customer.subscription.created", front,
                                             sub["id"]))
    assert "no reader" in answer.json["outcome"]
    assert reader_row(reader.id).plan == "free"
    assert db.session.get(BillingAccount, reader.id) is None


def test_a_payment_link_naming_a_reader_links_nothing(client, front):
    """A checkout we did not make (a Payment Link with ?client_reference_id=…) names no
    reader of ours, even with a real subscription behind it."""
    victim = make_reader("victim@example.com")
    customer = front.localstripe.json("POST", "/v1/customers", {"email": "x@else.example"})
    sub = front.subscribe(customer["id"], 999, "price_monthly", site="payment-link")
    session = {"id": "cs_test_link", "object": "checkout.session", "mode": "subscription",
               "customer": customer["id"], "subscription": sub["id"],
               "client_reference_id": str(victim.id), "metadata": {}}
    assert post(client, fake.event("checkout.session.completed", session)).status_code == 200
    assert reader_row(victim.id).plan == "free"
    assert db.session.get(BillingAccount, victim.id) is None


def test_paying_in_a_tab_left_open_across_an_erasure_is_cancelled(client, front):
    from newsletter.subscribers.privacy import erase_reader
    from newsletter.subscribers.service import Actor
    from newsletter.wiring import reader_services

    reader = make_reader("leaving@example.com")
    erase_reader(reader_services(), reader_row(reader.id), Actor(source="preferences"))
    # The Checkout opened before the erasure is paid after it.
    customer = front.localstripe.json("POST", "/v1/customers", {"email": "leaving@x.example"})
    sub = front.subscribe(customer["id"], reader.id, "price_monthly")
    answer = post(client, subscription_event("customer.subscription.created", front,
                                             sub["id"]))
    assert "its reader was erased" in answer.json["outcome"]
    assert front.localstripe.json("GET", f"/v1/subscriptions/{sub['id']}")["status"] \
        == "canceled"
    assert reader_row(reader.id).plan == "free"
