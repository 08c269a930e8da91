"""Reader statistics for the dashboard: readers over time in all, by topic and by tier, new
and lost per day, and today's readers by topic and tier."""

from __future__ import annotations

from datetime import timedelta

from newsletter.db import db, utcnow
from newsletter.subscribers import stats
from tests.factories_readers import make_reader


def _reader(email, joined_days_ago, left_days_ago=None, **fields):
    now = utcnow()
    reader = make_reader(email, **fields)
    reader.confirmed_at = now - timedelta(days=joined_days_ago)
    if left_days_ago is not None:
        reader.status = "unsubscribed"
        reader.unsubscribed_at = now - timedelta(days=left_days_ago)
    db.session.commit()
    return reader


def test_readers_over_time_count_joins_and_leaves_on_their_days(app, topics):
    _reader("old@example.com", 40)                       # before the window, still here
    _reader("gone@example.com", 40, left_days_ago=5)     # left inside the window
    _reader("new@example.com", 3, topics=("models-and-research",))
    _reader("paid@example.com", 10, plan="paid")
    _reader("brief@example.com", 2, left_days_ago=1)     # came and went inside it
    series = stats.readers_over_time(utcnow(), 30)
    assert len(series.days) == 30 and series.days[-1] == utcnow().date()
    assert series.readers[0] == 2                        # old and gone
    assert series.readers[-1] == 3                       # old, new, paid
    assert sum(series.new) == 3 and sum(series.lost) == 2
    assert series.new[-4] == 1 and series.lost[-6] == 1   # on the right days
    assert stats.paying_over_time(utcnow(), 30).readers[-1] == 1
    assert stats.paying_over_time(utcnow(), 30).readers[0] == 0
    research = stats.topics_over_time(utcnow(), 30)["Models and research"]
    assert research.readers[-1] == 3  # old, new and paid: readers follow it by default
    today = {row["topic"]: row for row in stats.by_topic_and_tier()}
    assert today["Models and research"] == {"topic": "Models and research", "premium": False,
                                             "free": 2, "paid": 1}
    totals = stats.totals()
    assert (totals["active"], totals["unsubscribed"], totals["paid"], totals["free"]) == (
        3, 2, 1, 2)


def test_the_readers_chart_draws_all_and_paying(client, topics):
    from tests.support.admins import make_admin, sign_in

    make_admin()
    sign_in(client)
    _reader("paid@example.com", 10, plan="paid")
    svg = client.get("/admin/charts/readers.svg").get_data(as_text=True)
    assert "All readers" in svg and "Paying" in svg
