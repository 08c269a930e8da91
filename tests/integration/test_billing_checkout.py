"""The upgrade journey up to Stripe and back: the plans page, Checkout, the Billing Portal,
the success page; every request the app sends to Stripe checked as sent."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from newsletter.billing.models import BillingAccount
from newsletter.db import db
from newsletter.subscribers.models import Reader
from tests.factories_readers import links, make_reader
from tests.support import stripe as fake
from tests.support.readers import csrf_from

pytestmark = pytest.mark.usefixtures("topics")


@pytest.fixture
def app_config(app_config, stripe_server):
    stripe_server.reset()
    app_config.update(fake.settings(stripe_server, STRIPE_TRIAL_DAYS=14))
    return app_config


@pytest.fixture
def front(stripe_server, app):
    return stripe_server


def sign_in(client, reader) -> str:
    """Follow the reader's preference link, as from an email; a CSRF token of the session."""
    path = urlsplit(links().manage(reader.id)).path
    assert client.get(path).status_code == 303
    return csrf_from(client, "/preferences")


def checkout(client, token, plan="monthly"):
    return client.post("/billing/checkout", data={"plan": plan, "csrf_token": token})


def test_the_plans_page_shows_prices_from_stripe_and_the_premium_topics(client, front):
    reader = make_reader()
    sign_in(client, reader)
    html = client.get("/upgrade").get_data(as_text=True)
    assert "Analyst briefings" in html  # the premium topic
    assert "€8 a month" in html and "€80 a year" in html
    assert "The first 14 days are free." in html
    assert "Upgrade monthly" in html and "Upgrade yearly" in html
    # A visitor is asked to sign in by email link instead.
    visitor = client.application.test_client()
    html = visitor.get("/upgrade").get_data(as_text=True)
    assert "Email me a sign-in link" in html and "Upgrade monthly" not in html


def test_checkout_sends_exactly_this_to_stripe_and_hands_the_reader_over(client, front):
    reader = make_reader()
    token = sign_in(client, reader)
    answer = checkout(client, token)
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith(f"{front.url}/pay/cs_test_")

    [customer] = front.calls("POST", "/v1/customers")
    assert customer.form == {"email": "ada@example.com", "metadata[reader_id]": str(reader.id),
                             "metadata[site]": "news.example"}
    assert customer.headers["idempotency-key"].startswith(f"newsletter-customer-{reader.id}-")
    [session] = front.calls("POST", "/v1/checkout/sessions")
    customer_id = db.session.get(BillingAccount, reader.id).customer_id
    assert customer_id.startswith("cus_")
    assert session.form == {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": str(reader.id),
        "line_items[0][price]": "price_monthly",
        "line_items[0][quantity]": "1",
        "success_url": "https://news.example/billing/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://news.example/upgrade?cancelled=1",
        "metadata[reader_id]": str(reader.id),
        "metadata[site]": "news.example",
        "subscription_data[metadata][reader_id]": str(reader.id),
        "subscription_data[metadata][site]": "news.example",
        "subscription_data[trial_period_days]": "14",
    }
    assert session.headers["idempotency-key"].startswith(f"newsletter-checkout-{reader.id}-")
    assert session.headers["authorization"] == f"Bearer {fake.API_KEY}"

    # Again (another tab, or back from Checkout): the same customer, not a second one.
    assert checkout(client, token, "yearly").status_code == 303
    assert len(front.calls("POST", "/v1/customers")) == 1
    assert front.calls("POST", "/v1/checkout/sessions")[-1].form["line_items[0][price]"] \
        == "price_yearly"
    # Nothing changes the plan before Stripe says it was paid.
    assert db.session.get(Reader, reader.id).plan == "free"


def test_back_from_checkout_the_reader_is_paying_even_before_the_webhook(client, front):
    reader = make_reader()
    token = sign_in(client, reader)
    pay_url = checkout(client, token).headers["Location"]
    session_id = pay_url.rsplit("/", 1)[1]
    front.complete(session_id)  # the reader pays on Stripe's page; no webhook here
    answer = client.get(f"/billing/success?session_id={session_id}")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Welcome to the paid plan" in html
    assert answer.headers["Cache-Control"] == "no-store"
    assert db.session.get(Reader, reader.id).plan == "paid"
    assert front.calls("GET", f"/v1/checkout/sessions/{session_id}")


def test_a_session_that_is_not_the_readers_gives_nothing(client, front):
    owner = make_reader("owner@example.com")
    token = sign_in(client, owner)
    session_id = checkout(client, token).headers["Location"].rsplit("/", 1)[1]
    front.complete(session_id)
    other = client.application.test_client()
    intruder = make_reader("intruder@example.com")
    sign_in(other, intruder)
    html = other.get(f"/billing/success?session_id={session_id}").get_data(as_text=True)
    assert "confirming your payment" in html
    assert db.session.get(Reader, intruder.id).plan == "free"


def test_the_success_page_waits_for_stripe_and_looks_again(client, front):
    reader = make_reader()
    sign_in(client, reader)
    html = client.get("/billing/success?session_id=cs_test_unknown").get_data(as_text=True)
    assert "confirming your payment" in html
    assert 'http-equiv="refresh"' in html and "tries=1" in html
    html = client.get("/billing/success?session_id=cs_test_unknown&tries=20").get_data(
        as_text=True)
    assert 'http-equiv="refresh"' not in html and "taking longer than usual" in html
    for odd in ("tries=%C2%B2", "tries=99999999999", "session_id=%00", "session_id=" + "x" * 9999):
        assert client.get(f"/billing/success?{odd}").status_code == 200


def test_signed_out_checkout_and_portal_ask_to_sign_in(client, front):
    token = csrf_from(client, "/subscribe")
    for path in ("/billing/checkout", "/billing/portal"):
        answer = client.post(path, data={"plan": "monthly", "csrf_token": token})
        assert answer.status_code == 401
        assert "Sign in with the link" in answer.get_data(as_text=True)
    assert not front.calls("POST", "/v1/")


def test_no_csrf_token_is_400_and_nothing_reaches_stripe(client, front):
    sign_in(client, make_reader())
    assert client.post("/billing/checkout", data={"plan": "monthly"}).status_code == 400
    assert client.post("/billing/portal", data={}).status_code == 400
    assert not front.calls("POST", "/v1/")


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_checkout_and_portal_are_post_only(client, front, method):
    sign_in(client, make_reader())
    for path in ("/billing/checkout", "/billing/portal"):
        assert client.open(path, method=method).status_code == 405
    assert not front.calls("POST", "/v1/")


@pytest.mark.parametrize("plan", ["", "weekly", "MONTHLY", "monthly\x00", "é" * 300])
def test_an_unknown_plan_is_refused_and_nothing_is_made(client, front, plan):
    token = sign_in(client, make_reader())
    answer = checkout(client, token, plan)
    assert answer.status_code == 409
    assert "Choose monthly or yearly" in answer.get_data(as_text=True)
    assert not front.calls("POST", "/v1/")


def test_an_unconfirmed_reader_cannot_upgrade(client, front):
    reader = make_reader(status="pending")
    token = sign_in(client, reader)
    assert checkout(client, token).status_code == 409
    assert not front.calls("POST", "/v1/")


def test_a_paying_reader_is_sent_to_manage_billing_instead(client, front):
    reader = make_reader(plan="paid")
    token = sign_in(client, reader)
    answer = checkout(client, token)
    assert answer.status_code == 409
    assert "already have the paid plan" in answer.get_data(as_text=True)


def test_a_stripe_outage_gives_a_clear_page_and_no_half_made_state(client, front):
    reader = make_reader()
    token = sign_in(client, reader)
    front.down = True
    answer = checkout(client, token)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 503
    assert "Payments are unavailable right now. Nothing was charged" in html
    assert db.session.scalar(select(func.count()).select_from(BillingAccount)) == 0
    assert db.session.get(Reader, reader.id).plan == "free"
    front.down = False
    assert checkout(client, token).status_code == 303  # and it works once Stripe is back


def test_the_billing_portal_for_a_reader_with_a_customer(client, front):
    reader = make_reader()
    token = sign_in(client, reader)
    assert client.post("/billing/portal", data={"csrf_token": token}).status_code == 409
    checkout(client, token)
    answer = client.post("/billing/portal", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["Location"].startswith(
        f"{front.url}/portal/bps_")
    [portal] = front.calls("POST", "/v1/billing_portal/sessions")
    assert portal.form == {"customer": db.session.get(BillingAccount, reader.id).customer_id,
                           "return_url": "https://news.example/preferences"}
    assert portal.headers["idempotency-key"].startswith(f"newsletter-portal-{reader.id}-")


def test_without_stripe_the_upgrade_page_says_so(app, client, front):
    from newsletter.wiring import build_billing, services

    services().billing = build_billing({**app.config, "STRIPE_SECRET_KEY": None})
    token = sign_in(client, make_reader())
    html = client.get("/upgrade").get_data(as_text=True)
    assert "not available on this site yet" in html
    assert checkout(client, token).status_code == 404
    assert client.get("/billing/success").status_code == 404


def test_forms_may_lead_to_stripe_and_nowhere_else(app, client, front):
    policy = client.get("/upgrade").headers["Content-Security-Policy"]
    form_action = next(part for part in policy.split(";") if "form-action" in part).split()
    assert form_action == ["form-action", "'self'", "https://checkout.stripe.com",
                           "https://billing.stripe.com", front.url]


def test_without_stripe_forms_lead_only_here(tmp_path, database_url):
    from newsletter import create_app
    from tests.conftest import make_config

    plain = create_app(make_config(tmp_path, database_url))
    policy = plain.test_client().get("/healthz").headers["Content-Security-Policy"]
    assert "form-action 'self'" in policy and "stripe" not in policy


def test_the_free_trial_is_for_a_first_subscription_only(client, front):
    reader = make_reader()
    token = sign_in(client, reader)
    session_id = checkout(client, token).headers["Location"].rsplit("/", 1)[1]
    subscription, _ = front.complete(session_id)
    client.get(f"/billing/success?session_id={session_id}")
    assert db.session.get(Reader, reader.id).plan == "paid"
    # Cancelled (the trial ended without paying, say); back to free; a new checkout.
    front.overrides.pop(subscription["id"])
    front.localstripe.json("DELETE", f"/v1/subscriptions/{subscription['id']}")
    from newsletter.billing.sync import sync_subscription
    from newsletter.db import utcnow
    from newsletter.wiring import services

    sync_subscription(services().billing, subscription["id"], utcnow())
    db.session.commit()
    assert db.session.get(Reader, reader.id).plan == "free"
    assert checkout(client, token).status_code == 303
    again = front.calls("POST", "/v1/checkout/sessions")[-1]
    assert "subscription_data[trial_period_days]" not in again.form


def test_a_reader_whose_payment_failed_is_sent_to_the_portal_not_a_second_checkout(
        client, front):
    from newsletter.billing.models import BillingSubscription

    reader = make_reader()
    token = sign_in(client, reader)
    db.session.add(BillingSubscription(id="sub_failing", reader_id=reader.id,
                                       status="unpaid"))
    db.session.commit()
    answer = checkout(client, token)
    assert answer.status_code == 409
    assert "update your card in Manage billing" in answer.get_data(as_text=True)
    assert not front.calls("POST", "/v1/checkout/sessions")


def test_a_customer_deleted_at_stripe_is_replaced(client, front):
    reader = make_reader()
    token = sign_in(client, reader)
    db.session.add(BillingAccount(reader_id=reader.id, customer_id="cus_deleted_in_dashboard"))
    db.session.commit()
    assert checkout(client, token).status_code == 303
    customer_id = db.session.get(BillingAccount, reader.id).customer_id
    assert customer_id != "cus_deleted_in_dashboard" and customer_id.startswith("cus_")
    assert front.calls("POST", "/v1/checkout/sessions")[-1].form["customer"] == customer_id


def test_a_refusal_from_stripe_is_a_page_not_an_error(client, front):
    reader = make_reader()
    token = sign_in(client, reader)
    db.session.add(BillingAccount(reader_id=reader.id, customer_id="cus_gone"))
    db.session.commit()
    answer = client.post("/billing/portal", data={"csrf_token": token})
    assert answer.status_code == 502
    assert "Stripe refused this request" in answer.get_data(as_text=True)


def test_the_success_page_is_rate_limited(client, front):
    sign_in(client, make_reader())
    codes = [client.get("/billing/success?session_id=cs_test_x").status_code
             for _ in range(21)]
    assert codes[:20] == [200] * 20 and codes[20] == 429
    assert len(front.calls("GET", "/v1/checkout/sessions/")) == 20


def test_a_failed_price_lookup_is_not_asked_again_at_every_view(app, client, front):
    from newsletter.wiring import services

    sign_in(client, make_reader())
    front.down = True
    for _ in range(5):
        assert "Upgrade monthly" in client.get("/upgrade").get_data(as_text=True)
    services().billing._prices = None
    assert len(front.calls("GET", "/v1/prices/")) <= 2 * 3  # one round (and stripe's retries)


def sign_in_from_a_digest(client, reader) -> str:
    path = urlsplit(links().manage(reader.id, in_list_mail=True)).path
    assert client.get(path).status_code == 303
    return csrf_from(client, "/preferences")


def test_billing_from_a_forwarded_digest_link_needs_a_link_of_ones_own(app, client, front):
    from newsletter.subscribers.models import AccountMail

    reader = make_reader()
    db.session.add(BillingAccount(reader_id=reader.id, customer_id="cus_x"))
    db.session.commit()
    token = sign_in_from_a_digest(client, reader)
    answer = client.post("/billing/portal", data={"csrf_token": token})
    assert answer.status_code == 403
    assert "Check your inbox" in answer.get_data(as_text=True)
    assert not front.calls("POST", "/v1/billing_portal/sessions")
    sent = db.session.scalar(select(AccountMail).where(AccountMail.reader_id == reader.id))
    assert sent.kind == "manage_link" and sent.to_email == "ada@example.com"
    # Deleting the reader's data from there is refused the same way.
    answer = client.post("/preferences/delete", data={"confirm": "erase", "csrf_token": token})
    assert answer.status_code == 403
    assert db.session.get(Reader, reader.id).email == "ada@example.com"
    # The link from their own inbox goes through to Stripe (which does not know cus_x).
    own = app.test_client()
    own_token = sign_in(own, reader)
    assert own.post("/billing/portal", data={"csrf_token": own_token}).status_code == 502
    assert front.calls("POST", "/v1/billing_portal/sessions")


def test_the_api_erasing_a_paying_reader_waits_for_stripe(app, client, front, auth):
    reader = make_reader()
    customer, sub = front.customer_with_subscription(reader.id, reader.email)
    db.session.add(BillingAccount(reader_id=reader.id, customer_id=customer))
    db.session.commit()
    front.down = True
    answer = client.delete(f"/api/v1/subscribers/{reader.id}", headers=auth)
    assert answer.status_code == 503 and "nothing was erased" in answer.json["message"]
    assert db.session.get(Reader, reader.id).email == "ada@example.com"
    front.down = False
    assert client.delete(f"/api/v1/subscribers/{reader.id}", headers=auth).status_code == 204
    assert front.localstripe.json("GET", f"/v1/subscriptions/{sub['id']}")["status"] \
        == "canceled"


def test_a_double_click_opens_the_same_checkout_session(client, front):
    token = sign_in(client, make_reader())
    first, second = checkout(client, token), checkout(client, token)
    assert first.headers["Location"] == second.headers["Location"]
    keys = {r.headers["idempotency-key"] for r in front.calls("POST", "/v1/checkout/sessions")}
    assert len(keys) == 1 and len(front.sessions) == 1  # Stripe made one session
