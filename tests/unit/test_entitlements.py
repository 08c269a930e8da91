"""billing.entitlements: the one home of "may this reader have this premium thing"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.billing import entitlements as e

PREMIUM = {"analyst-briefings"}


@pytest.mark.parametrize("plan,paying", [("paid", True), ("free", False), (None, False),
                                         ("PAID", False), ("", False)])
def test_only_the_paid_plan_pays(plan, paying):
    assert e.is_paying(plan) is paying
    assert e.may_follow(plan, premium=True) is paying
    assert e.may_follow(plan, premium=False) is True
    assert e.may_read(e.is_paying(plan), premium=True) is paying
    assert e.may_read(e.is_paying(plan), premium=False) is True


@pytest.mark.parametrize("audience,content,premium", [
    ({"topics": [], "tier": "all"}, {"sections": []}, False),
    ({"topics": [], "tier": "paid"}, {}, True),
    ({"topics": ["analyst-briefings"], "tier": "all"}, {}, True),
    ({"topics": ["analyst-briefings", "ai-policy"], "tier": "all"}, {}, False),
    ({"topics": [], "tier": "all"}, {"sections": [{"topic": "analyst-briefings"}]}, True),
    ({"topics": [], "tier": "all"}, {"sections": [{"topic": "ai-policy"}, {}]}, False),
    (None, None, False),
])
def test_an_edition_is_premium_by_tier_section_or_an_all_premium_audience(audience, content,
                                                                          premium):
    assert e.edition_is_premium(audience, content, PREMIUM) is premium


def test_the_sql_form_names_the_paid_plan_and_its_end():
    assert e.paid_sql("r") == ("(r.plan = 'paid' AND (r.plan_until IS NULL"
                               " OR r.plan_until > :now))")


NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_paid_plan_ends_at_its_end_date():
    assert e.is_paying("paid", None, NOW)
    assert e.is_paying("paid", NOW + DAY, NOW)
    assert not e.is_paying("paid", NOW, NOW)
    assert not e.is_paying("paid", NOW - DAY, NOW)
    assert not e.is_paying("free", NOW + DAY, NOW)
    assert e.effective_plan("paid", NOW - DAY, NOW) == "free"


def access(status, **fields):
    values = {"cancel_at_period_end": False, "current_period_end": NOW + 30 * DAY,
              "cancel_at": None, "grace_until": None, **fields}
    return e.subscription_access(status, **values)


def test_what_each_subscription_state_gives():
    assert access("active") == e.Access(True, None)
    assert access("trialing") == e.Access(True, None)
    # Cancelled at the period's end: paid until then, not after.
    assert access("active", cancel_at_period_end=True) == e.Access(True, NOW + 30 * DAY)
    assert access("active", cancel_at=NOW + 3 * DAY) == e.Access(True, NOW + 3 * DAY)
    # A failed payment: paid through the grace period only.
    assert access("past_due", grace_until=NOW + 7 * DAY) == e.Access(True, NOW + 7 * DAY)
    assert access("unpaid", grace_until=NOW + 7 * DAY) == e.Access(True, NOW + 7 * DAY)
    assert access("past_due") == e.Access(False)
    for status in ("canceled", "incomplete", "incomplete_expired", "paused", "whatever"):
        assert access(status) == e.Access(False), status


def test_the_plan_lasts_as_long_as_the_longest_access():
    assert e.plan_from([], NOW) == ("free", None)
    assert e.plan_from([e.Access(False)], NOW) == ("free", None)
    assert e.plan_from([e.Access(True, NOW - DAY)], NOW) == ("free", None)  # over
    assert e.plan_from([e.Access(True, NOW + DAY), e.Access(True, NOW + 3 * DAY)],
                       NOW) == ("paid", NOW + 3 * DAY)
    # Complimentary access (open-ended) beside a cancelled subscription: no end.
    assert e.plan_from([e.Access(True, NOW + DAY), e.Access(True)], NOW) == ("paid", None)
