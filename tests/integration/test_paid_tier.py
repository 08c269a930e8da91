"""The paid tier end to end: who receives premium editions and digest sections, what the
site shows to whom, the preference centre, complimentary access, privacy.

Plans come from Stripe (a real local Stripe-compatible server, localstripe, through the
webhook) or from an owner's complimentary grant; mail goes through a real SMTP server.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from newsletter.accounts.models import AuditEntry
from newsletter.billing.models import BillingAccount, BillingSubscription
from newsletter.db import db, utcnow
from newsletter.delivery.models import Delivery
from newsletter.editions import service as editions
from newsletter.editions.models import Edition
from newsletter.subscribers.models import Reader
from tests.factories import make_synthesis
from tests.factories_readers import links, make_reader
from tests.support import stripe as fake
from tests.support.admins import signed_in
from tests.support.digests import compose_at, utc
from tests.support.editions import send
from tests.support.readers import csrf_from

pytestmark = pytest.mark.usefixtures("topics")
PREMIUM = "analyst-briefings"
FREE = "ai-policy-and-safety"


@pytest.fixture
def app_config(app_config, stripe_server, smtp_server):
    stripe_server.reset()
    app_config.update(fake.settings(stripe_server), MAIL_TRANSPORT="smtp",
                      SMTP_URL=smtp_server.url, RETRY_BASE_SECONDS=3600)
    return app_config


@pytest.fixture
def front(stripe_server, app):
    return stripe_server


def webhook(client, event):
    body, headers = fake.signed(event)
    answer = client.post("/hooks/stripe", data=body, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer


def pays_through_stripe(client, front, email: str, topics=(FREE, PREMIUM)) -> Reader:
    """A reader who paid at Stripe, as the app learns it: by the signed webhook."""
    reader = make_reader(email, topics=topics)
    customer, sub = front.customer_with_subscription(reader.id, email)
    db.session.add(BillingAccount(reader_id=reader.id, customer_id=customer))
    db.session.commit()
    webhook(client, fake.event("customer.subscription.created", front.subscription(sub["id"])))
    assert db.session.get(Reader, reader.id).plan == "paid"
    return reader


def lapsed_after_grace(client, front, email: str) -> Reader:
    """A reader whose renewal failed and whose grace period is over."""
    reader = pays_through_stripe(client, front, email)
    row = db.session.scalar(select(BillingSubscription)
                            .where(BillingSubscription.reader_id == reader.id))
    front.override(row.id, status="past_due")
    webhook(client, fake.event("invoice.payment_failed", {
        "id": "in_" + row.id, "object": "invoice", "subscription": row.id,
        "customer": row.customer_id}))
    # Eight days on: the grace period (7 days) is over; nothing else happened.
    ended = utcnow() - timedelta(days=8)
    db.session.execute(BillingSubscription.__table__.update()
                       .where(BillingSubscription.id == row.id)
                       .values(grace_until=ended + timedelta(days=7)))
    db.session.execute(Reader.__table__.update().where(Reader.id == reader.id)
                       .values(plan_until=ended + timedelta(days=7)))
    db.session.commit()
    return reader


def comped(app, email: str) -> Reader:
    reader = make_reader(email, topics=(FREE, PREMIUM))
    owner = signed_in(app, "owner")
    token = csrf_from(owner, f"/admin/readers/{reader.id}")
    answer = owner.post(f"/admin/readers/{reader.id}/comp",
                        data={"action": "grant", "note": "press", "csrf_token": token})
    assert answer.status_code == 303
    return reader


def population(app, client, front):
    return {
        "free": make_reader("free@example.com", topics=(FREE, PREMIUM)),  # kept after a downgrade
        "paying": pays_through_stripe(client, front, "paying@example.com"),
        "lapsed": lapsed_after_grace(client, front, "lapsed@example.com"),
        "comp": comped(app, "comp@example.com"),
    }


def test_a_premium_edition_reaches_only_those_entitled(app, client, front, smtp_server):
    people = population(app, client, front)
    story = make_synthesis(title="Inside the briefing", topics=[PREMIUM])
    edition = editions.create_edition(
        subject="Premium briefing", topics=[PREMIUM],
        sections=[{"title": "Briefing", "topic": PREMIUM, "synthesis_ids": [story.id]}])
    send(app, edition.id)
    received = sorted(m.rcpt_tos[0] for m in smtp_server.messages)
    assert received == ["comp@example.com", "paying@example.com"]
    assert {p: r.email for p, r in people.items()}["free"] not in received


def test_a_free_topic_edition_still_reaches_free_readers(app, client, front, smtp_server):
    population(app, client, front)
    editions.create_edition(subject="For everyone", topics=[FREE], sections=[
        {"title": "News", "synthesis_ids": [make_synthesis(topics=[FREE]).id]}])
    edition = db.session.scalar(select(Edition).where(Edition.subject == "For everyone"))
    send(app, edition.id)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "comp@example.com", "free@example.com", "lapsed@example.com", "paying@example.com"]


def test_premium_digest_sections_go_only_to_those_entitled(app, client, front):
    people = population(app, client, front)
    for reader in db.session.scalars(select(Reader)):
        reader.delivery_minute, reader.timezone = 7 * 60, "UTC"
        reader.confirmed_at = datetime(2026, 11, 1, tzinfo=utcnow().tzinfo)
    db.session.commit()
    today = utcnow().date()
    make_synthesis(title="A free story", topics=[FREE],
                   published_at=(utc(today.year, today.month, today.day, 1)).isoformat())
    make_synthesis(title="A premium story", topics=[PREMIUM],
                   published_at=(utc(today.year, today.month, today.day, 2)).isoformat())
    compose_at(app, utc(today.year, today.month, today.day, 7, 5))
    topics_of = {}
    for delivery in db.session.scalars(select(Delivery)):
        edition = db.session.get(Edition, delivery.edition_id)
        topics_of[delivery.reader_id] = {s.get("topic") for s in edition.content["sections"]}
    assert topics_of[people["paying"].id] == {FREE, PREMIUM}
    assert topics_of[people["comp"].id] == {FREE, PREMIUM}
    assert topics_of[people["free"].id] == {FREE}
    assert topics_of[people["lapsed"].id] == {FREE}


def test_a_premium_synthesis_is_a_teaser_except_to_a_paying_reader(app, client, front):
    story = make_synthesis(title="Premium story", topics=[PREMIUM],
                           analysis="The secret analyst take.", summary="A public summary.")
    visitor = client.get(f"/syntheses/{story.slug}")
    html = visitor.get_data(as_text=True)
    assert visitor.status_code == 200
    assert "A public summary." in html and "The secret analyst take." not in html
    assert "Upgrade to read it" in html
    assert visitor.headers["Cache-Control"] == "private, no-store"
    assert "Cookie" in visitor.headers["Vary"]

    reader = pays_through_stripe(client, front, "reader@example.com")
    client.get(urlsplit(links().manage(reader.id)).path)
    html = client.get(f"/syntheses/{story.slug}").get_data(as_text=True)
    assert "The secret analyst take." in html and "Upgrade to read it" not in html

    free = app.test_client()
    free.get(urlsplit(links().manage(make_reader("free@example.com").id)).path)
    assert "The secret analyst take." not in free.get(f"/syntheses/{story.slug}").get_data(
        as_text=True)
    # A synthesis also in a free topic is not premium.
    both = make_synthesis(title="Both", topics=[FREE, PREMIUM], analysis="Open take.")
    assert "Open take." in app.test_client().get(f"/syntheses/{both.slug}").get_data(
        as_text=True)


def test_a_premium_web_edition_opens_for_a_paying_reader(app, client, front):
    story = make_synthesis(title="Briefing story", topics=[PREMIUM])
    edition = editions.create_edition(
        subject="Members briefing", topics=[PREMIUM], body_html="<p>Members only body</p>",
        body_text="Members only body",
        sections=[{"title": "B", "topic": PREMIUM, "synthesis_ids": [story.id]}])
    edition.status, edition.sent_at = "sent", utcnow()
    db.session.commit()
    html = client.get(f"/editions/{edition.slug}").get_data(as_text=True)
    assert "Members briefing" in html and "Members only body" not in html
    assert "Upgrade to read it" in html
    reader = pays_through_stripe(client, front, "member@example.com")
    client.get(urlsplit(links().manage(reader.id)).path)
    html = client.get(f"/editions/{edition.slug}").get_data(as_text=True)
    assert "Members only body" in html and "Briefing story" in html


def test_the_preference_centre_offers_premium_topics_by_plan(app, client, front):
    free = make_reader("free@example.com", topics=(FREE,))
    client.get(urlsplit(links().manage(free.id)).path)
    html = client.get("/preferences").get_data(as_text=True)
    assert "Your plan" in html and "<strong>Free</strong>" in html
    assert "The paid plan adds Analyst briefings" in html
    assert 'value="analyst-briefings"' not in html  # shown, but not to tick
    assert "With the paid plan" in html
    token = csrf_from(client, "/preferences")
    refused = client.post("/preferences", data={"topic": [FREE, PREMIUM], "csrf_token": token,
                                                "delivery_time": "07:00", "timezone": "UTC"})
    assert refused.status_code == 400
    assert [t.slug for t in db.session.get(Reader, free.id).topics] == [FREE]

    paying = pays_through_stripe(client, front, "paying@example.com", topics=(FREE,))
    other = app.test_client()
    other.get(urlsplit(links().manage(paying.id)).path)
    html = other.get("/preferences").get_data(as_text=True)
    assert 'value="analyst-briefings"' in html and "Renews on" in html
    assert "Manage billing" in html
    token = csrf_from(other, "/preferences")
    saved = other.post("/preferences", data={"topic": [FREE, PREMIUM], "csrf_token": token,
                                             "delivery_time": "07:00", "timezone": "UTC",
                                             "frequency": "daily", "format": "html"})
    assert saved.status_code == 303
    assert [t.slug for t in db.session.get(Reader, paying.id).topics] == [FREE, PREMIUM]


def test_a_lapsed_reader_keeps_their_premium_topic_across_a_save(app, client, front):
    reader = lapsed_after_grace(client, front, "lapsed@example.com")
    client.get(urlsplit(links().manage(reader.id)).path)
    html = client.get("/preferences").get_data(as_text=True)
    assert "sent again once you pay" in html
    token = csrf_from(client, "/preferences")
    saved = client.post("/preferences", data={"topic": [FREE, PREMIUM], "csrf_token": token,
                                              "delivery_time": "08:00", "timezone": "UTC",
                                              "frequency": "daily", "format": "html"})
    assert saved.status_code == 303
    assert [t.slug for t in db.session.get(Reader, reader.id).topics] == [FREE, PREMIUM]


def test_an_owner_grants_and_revokes_complimentary_access(app, client, front):
    reader = comped(app, "friend@example.com")
    assert db.session.get(Reader, reader.id).plan == "paid"
    entry = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "granted complimentary access"))
    assert entry.target == f"reader {reader.id}" and entry.detail == {"note": "press"}
    owner = signed_in(app, "owner")
    html = owner.get(f"/admin/readers/{reader.id}").get_data(as_text=True)
    assert "complimentary" in html and "Revoke complimentary access" in html
    assert "friend@example.com" in owner.get("/admin/billing").get_data(as_text=True)

    token = csrf_from(owner, f"/admin/readers/{reader.id}")
    answer = owner.post(f"/admin/readers/{reader.id}/comp",
                        data={"action": "revoke", "csrf_token": token})
    assert answer.status_code == 303
    assert db.session.get(Reader, reader.id).plan == "free"
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "revoked complimentary access")) == 1


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_only_owners_may_comp(app, front, role):
    reader = make_reader("friend@example.com")
    admin = signed_in(app, role)
    token = csrf_from(admin, f"/admin/readers/{reader.id}")
    answer = admin.post(f"/admin/readers/{reader.id}/comp",
                        data={"action": "grant", "csrf_token": token})
    assert answer.status_code == 403
    assert db.session.get(Reader, reader.id).plan == "free"
    assert db.session.get(BillingAccount, reader.id) is None


@pytest.mark.parametrize("form", [{"action": "steal"}, {}, {"action": "grant\x00"}])
def test_odd_comp_forms_change_nothing(app, front, form):
    reader = make_reader("friend@example.com")
    owner = signed_in(app, "owner")
    token = csrf_from(owner, f"/admin/readers/{reader.id}")
    assert owner.post(f"/admin/readers/{reader.id}/comp",
                      data={**form, "csrf_token": token}).status_code == 400
    assert owner.post("/admin/readers/99999999/comp",
                      data={"action": "grant", "csrf_token": token}).status_code == 404
    assert db.session.get(Reader, reader.id).plan == "free"


def test_the_dashboard_and_paid_page_count_revenue(app, client, front):
    pays_through_stripe(client, front, "one@example.com")
    pays_through_stripe(client, front, "two@example.com")
    comped(app, "comp@example.com")
    owner = signed_in(app, "owner")
    html = owner.get("/admin/billing").get_data(as_text=True)
    assert "€16" in html  # two monthly subscriptions at €8
    assert '<span class="tile__n">3</span> paying readers' in html
    assert "one@example.com" in html and "comp@example.com" in html
    dashboard = owner.get("/admin/").get_data(as_text=True)
    assert "€16" in dashboard and "MRR" in dashboard


def test_download_my_data_includes_the_billing(app, client, front):
    reader = pays_through_stripe(client, front, "mine@example.com")
    client.get(urlsplit(links().manage(reader.id)).path)
    data = client.get("/preferences/export").json
    billing = data["billing"]
    assert billing["plan"] == "paid" and billing["complimentary"] is False
    assert billing["stripe_customer"].startswith("cus_")
    [sub] = billing["subscriptions"]
    assert (sub["status"], sub["interval"], sub["amount"], sub["currency"]) == (
        "active", "month", 800, "eur")


def test_erasure_cancels_the_subscription_and_drops_the_customer_link(app, client, front):
    reader = pays_through_stripe(client, front, "leaving@example.com")
    sub_id = db.session.scalar(select(BillingSubscription.id))
    client.get(urlsplit(links().manage(reader.id)).path)
    token = csrf_from(client, "/preferences")
    answer = client.post("/preferences/delete", data={"confirm": "erase", "csrf_token": token})
    assert answer.status_code == 200
    # Cancelled at Stripe for real (localstripe), with an idempotency key.
    assert front.localstripe.json("GET", f"/v1/subscriptions/{sub_id}")["status"] == "canceled"
    [cancel] = front.calls("DELETE", f"/v1/subscriptions/{sub_id}")
    assert cancel.headers["idempotency-key"] == f"newsletter-erase-{sub_id}"
    # Nothing here points to the Stripe customer any more; the figures keep the amount.
    assert db.session.get(BillingAccount, reader.id) is None
    row = db.session.get(BillingSubscription, sub_id)
    assert (row.reader_id, row.customer_id, row.status, row.amount) == (None, None,
                                                                        "canceled", 800)
    assert db.session.get(Reader, reader.id).plan == "free"


def test_erasure_waits_when_stripe_cannot_cancel(app, client, front):
    reader = pays_through_stripe(client, front, "leaving@example.com")
    client.get(urlsplit(links().manage(reader.id)).path)
    token = csrf_from(client, "/preferences")
    front.down = True
    answer = client.post("/preferences/delete", data={"confirm": "erase", "csrf_token": token})
    assert answer.status_code == 503
    assert "nothing was erased" in answer.get_data(as_text=True)
    current = db.session.get(Reader, reader.id)
    assert current.email == "leaving@example.com" and current.plan == "paid"
    assert db.session.get(BillingAccount, reader.id).customer_id.startswith("cus_")


def test_a_special_edition_holding_a_premium_synthesis_is_premium(app, client, front,
                                                                  smtp_server):
    """Sections made by the composer or the API name syntheses, not topics: one premium
    synthesis makes the edition premium, by email and on the web."""
    population(app, client, front)
    story = make_synthesis(title="Premium inside", topics=[PREMIUM], analysis="Secret take.")
    edition = editions.create_edition(subject="Mixed", sections=[
        {"title": "Stories", "synthesis_ids": [make_synthesis(topics=[FREE]).id, story.id]}])
    send(app, edition.id)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "comp@example.com", "paying@example.com"]
    db.session.refresh(edition)
    html = app.test_client().get(f"/editions/{edition.slug}").get_data(as_text=True)
    assert "Mixed" in html and "Secret take." not in html and "Upgrade to read it" in html
    assert "Premium" in app.test_client().get("/editions").get_data(as_text=True)


def test_erasure_also_ends_subscriptions_only_stripe_knows(app, client, front):
    reader = make_reader("leaving@example.com")
    customer, sub = front.customer_with_subscription(reader.id, "leaving@example.com")
    db.session.add(BillingAccount(reader_id=reader.id, customer_id=customer))
    db.session.commit()  # the webhook has not come yet: nothing of it here
    client.get(urlsplit(links().manage(reader.id)).path)
    token = csrf_from(client, "/preferences")
    assert client.post("/preferences/delete",
                       data={"confirm": "erase", "csrf_token": token}).status_code == 200
    assert front.localstripe.json("GET", f"/v1/subscriptions/{sub['id']}")["status"] \
        == "canceled"
