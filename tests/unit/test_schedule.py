"""When a digest is due: local times to UTC instants, across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime

from newsletter.editions.schedule import Plan, floor_slot, latest_due, next_due, zone


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_seven_in_new_york_moves_with_dst():
    plan = Plan("America/New_York", 7 * 60, "daily", 0)
    assert latest_due(plan, utc(2026, 3, 7, 13)).instant == utc(2026, 3, 7, 12)  # EST
    assert latest_due(plan, utc(2026, 3, 9, 13)).instant == utc(2026, 3, 9, 11)  # EDT
    assert latest_due(plan, utc(2026, 11, 2, 13)).instant == utc(2026, 11, 2, 12)  # EST


def test_latest_due_is_yesterday_before_todays_time():
    plan = Plan("Asia/Shanghai", 7 * 60, "daily", 0)
    due = latest_due(plan, utc(2026, 6, 1, 22, 59))  # 06:59 on 2 June in Shanghai
    assert due.local_date == date(2026, 6, 1) and due.instant == utc(2026, 5, 31, 23)


def test_a_skipped_local_time_goes_out_an_hour_later_and_a_repeated_one_once():
    gap = Plan("America/New_York", 2 * 60 + 30, "daily", 0)
    assert latest_due(gap, utc(2026, 3, 8, 8)).instant == utc(2026, 3, 8, 7, 30)  # 03:30 EDT
    repeated = Plan("America/New_York", 1 * 60 + 30, "daily", 0)
    # 01:30 happens twice on 1 November 2026; the first (EDT, 05:30 UTC) is the one.
    assert latest_due(repeated, utc(2026, 11, 1, 7)).instant == utc(2026, 11, 1, 5, 30)


def test_weekly_is_due_on_its_weekday_only():
    plan = Plan("Europe/London", 8 * 60, "weekly", 2)  # Wednesday
    due = latest_due(plan, utc(2026, 6, 8, 12))  # a Monday
    assert due.local_date == date(2026, 6, 3) and due.local_date.weekday() == 2
    assert next_due(plan, utc(2026, 6, 8, 12)).local_date == date(2026, 6, 10)


def test_slots_and_unknown_zones():
    assert floor_slot(utc(2026, 1, 1, 7, 14, 59), 15) == utc(2026, 1, 1, 7, 0)
    assert floor_slot(utc(2026, 1, 1, 7, 15), 15) == utc(2026, 1, 1, 7, 15)
    assert zone("Not/AZone").key == "UTC"
    assert zone("").key == "UTC"
