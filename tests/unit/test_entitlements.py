"""billing.entitlements: the one home of "may this reader have this premium thing"."""

from __future__ import annotations

import pytest

from newsletter.billing import entitlements as e

PREMIUM = {"analyst-briefings"}


@pytest.mark.parametrize("plan,paying", [("paid", True), ("free", False), (None, False),
                                         ("PAID", False), ("", False)])
def test_only_the_paid_plan_pays(plan, paying):
    assert e.is_paying(plan) is paying
    assert e.may_follow(plan, premium=True) is paying
    assert e.may_follow(plan, premium=False) is True
    assert e.may_read_edition(plan, premium=True) is paying


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


def test_the_sql_form_names_the_paid_plan():
    assert e.paid_sql("r") == "r.plan = 'paid'"
