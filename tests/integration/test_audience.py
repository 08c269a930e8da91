"""The one rule of who may receive an edition (editions.audience), checked at its home and
in each of its three users: fan-out, the claim and the digests."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Date, bindparam, select, text

from newsletter.db import UTCDateTime, db, utcnow
from newsletter.delivery import queue as dq
from newsletter.delivery import service as sending
from newsletter.delivery.models import Delivery
from newsletter.editions import audience
from newsletter.editions.digests.due import due_items, next_items
from newsletter.subscribers.models import Reader, Suppression
from newsletter.wiring import mail_setup
from tests.factories_readers import make_reader
from tests.support.editions import special_edition

# The claim reads the real clock, so the population's pauses are set around today.
TODAY = utcnow().date()


def _population():
    """One reader per case, by name."""
    readers = {
        "active": make_reader("active@example.com"),
        "research_only": make_reader("research@example.com", topics=("models-and-research",)),
        "paid": make_reader("paid@example.com", plan="paid"),
        "paid_until_later": make_reader("cancelling@example.com", plan="paid",
                                        plan_until=utcnow() + timedelta(days=3)),
        "lapsed": make_reader("lapsed@example.com", plan="paid",
                              plan_until=utcnow() - timedelta(minutes=1)),
        "pending": make_reader("pending@example.com", status="pending"),
        "unsubscribed": make_reader("gone@example.com", status="unsubscribed"),
        "paused_open": make_reader("paused@example.com", frequency="paused"),
        "paused_later": make_reader("later@example.com", frequency="paused",
                                    paused_until=TODAY + timedelta(days=3)),
        "pause_over": make_reader("back@example.com", frequency="paused",
                                  paused_until=TODAY - timedelta(days=1)),
        "suppressed": make_reader("bounced@example.com"),
        "no_digests": make_reader("specials-only@example.com", gets_digests=False),
        "no_specials": make_reader("digests-only@example.com", gets_specials=False),
    }
    db.session.add(Suppression(email_hash=readers["suppressed"].email_hash,
                               reason="hard_bounce"))
    erased = make_reader("erased@example.com")
    erased.email = None  # erased readers keep their row without an address
    readers["no_address"] = erased
    db.session.commit()
    return readers


def _who(rule: str, **params) -> set[int]:
    statement = text(f"SELECT r.id FROM readers r WHERE {rule}").bindparams(  # noqa: S608
        *(bindparam(name, type_=Date()) for name in ("today",) if name in params),
        *(bindparam(name, type_=UTCDateTime()) for name in ("now",) if name in params))
    return set(db.session.scalars(statement, params))


def _names(readers, ids) -> set[str]:
    return {name for name, reader in readers.items() if reader.id in ids}


def test_list_mail_needs_active_with_an_address_and_not_suppressed(app, topics):
    readers = _population()
    assert _names(readers, _who(audience.may_get_list_mail("r"))) == {
        "active", "research_only", "paid", "paid_until_later", "lapsed", "paused_open",
        "paused_later", "pause_over", "no_digests", "no_specials"}


def test_an_edition_also_needs_no_pause_that_day_the_audience_topic_and_the_tier(app, topics):
    readers = _population()
    special = {"kind": "special", "today": TODAY, "paid_only": 0, "now": utcnow()}
    everyone = _who(audience.receives_edition("r"), **special)
    assert _names(readers, everyone) == {"active", "research_only", "paid", "paid_until_later",
                                         "lapsed", "pause_over", "no_digests"}
    digest = _who(audience.receives_edition("r"), **{**special, "kind": "digest"})
    assert _names(readers, digest) == {"active", "research_only", "paid", "paid_until_later",
                                       "lapsed", "pause_over", "no_specials"}
    policy = _who(audience.receives_edition("r", ["t0"]), **special, t0=topics[0].id)
    assert _names(readers, policy) == {"active", "paid", "paid_until_later", "lapsed",
                                       "pause_over", "no_digests"}
    paid = _who(audience.receives_edition("r"), **{**special, "paid_only": 1})
    assert _names(readers, paid) == {"paid", "paid_until_later"}  # not the lapsed one
    # Four days on, the cancelled plan has ended too, with no job run and no webhook.
    later_paid = _who(audience.receives_edition("r"), **{
        **special, "paid_only": 1, "now": utcnow() + timedelta(days=4)})
    assert _names(readers, later_paid) == {"paid"}
    # The day a pause ends, it no longer holds.
    later = _who(audience.receives_edition("r"),
                 **{**special, "today": TODAY + timedelta(days=3)})
    assert "paused_later" in _names(readers, later)


def test_python_form_of_the_pause_agrees_with_the_sql(app, topics):
    readers = _population()
    for name, reader in readers.items():
        paused = audience.is_paused(reader.frequency, reader.paused_until, TODAY)
        in_sql = reader.id in _who(audience.not_paused("r"), today=TODAY)
        assert paused is not in_sql, name


def test_fan_out_queues_exactly_the_rule(app, topics):
    readers = _population()
    edition = special_edition(topics=["ai-policy-and-safety"])
    sending.start_sending(edition.id, mail_setup(),
                          now=datetime(2026, 12, 1, 8, tzinfo=utcnow().tzinfo), today=TODAY)
    queued = set(db.session.scalars(select(Delivery.reader_id)
                                    .where(Delivery.edition_id == edition.id)))
    assert _names(readers, queued) == {"active", "paid", "paid_until_later", "lapsed",
                                       "pause_over", "no_digests"}


def test_claim_checks_the_list_mail_rule_again_before_sending(app, topics):
    readers = _population()
    edition = special_edition()
    sending.start_sending(edition.id, mail_setup())
    # After fan-out, one reader leaves, one stops special editions and one is suppressed:
    # the claim says so.
    db.session.get(Reader, readers["active"].id).status = "unsubscribed"
    db.session.get(Reader, readers["no_digests"].id).gets_specials = False
    db.session.add(Suppression(email_hash=readers["paid"].email_hash, reason="complaint"))
    db.session.commit()
    with db.engine.connect() as conn:
        claimed = dq.claim(conn, worker="t", limit=100, lease_seconds=60,
                           now=utcnow() + timedelta(seconds=1))
    eligible = {job.reader_id for job in claimed if job.eligible}
    assert _names(readers, {job.reader_id for job in claimed}) == {
        "active", "research_only", "paid", "paid_until_later", "lapsed", "pause_over",
        "no_digests"}
    assert _names(readers, eligible) == {"research_only", "pause_over", "paid_until_later",
                                         "lapsed"}


def test_digests_take_only_readers_the_rule_allows(app, topics):
    readers = _population()
    for reader in db.session.scalars(select(Reader)):
        reader.delivery_minute = 7 * 60
        reader.confirmed_at = datetime(2026, 11, 1, tzinfo=utcnow().tzinfo)
    db.session.commit()
    now = datetime(TODAY.year, TODAY.month, TODAY.day, 7, 5, tzinfo=utcnow().tzinfo)
    fresh, stale = due_items(now, timedelta(hours=3))
    assert not stale
    assert _names(readers, {item.reader_id for item in fresh}) == {
        "active", "research_only", "paid", "paid_until_later", "lapsed", "pause_over",
        "no_specials"}
    assert _names(readers, {item.reader_id for item in next_items(now)}) == {
        "active", "research_only", "paid", "paid_until_later", "lapsed", "pause_over",
        "no_specials"}
