"""Digests at each reader's local time, across DST changes, with restarts and late workers.

The clock is moved with time-machine and the worker's digest job (``jobs.compose_digests``,
what APScheduler runs every minute) is called at each step, against the real database.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.db import db
from newsletter.delivery.models import Delivery
from newsletter.editions.models import Edition
from newsletter.subscribers.models import Reader
from tests.factories import make_synthesis
from tests.factories_readers import make_reader
from tests.support.digests import (
    compose_at,
    deliveries_by_reader,
    local_times,
    publish_every,
    sections_of,
    synthesis_ids_of,
    utc,
    walk,
)

ZONES = ("America/New_York", "Europe/London", "Asia/Shanghai", "UTC")


def _readers_in_every_zone(minute: int = 7 * 60, **fields) -> dict[str, Reader]:
    return {tz: make_reader(f"{tz.split('/')[-1].lower()}@example.com", timezone=tz,
                            delivery_minute=minute, topics=("ai-policy-and-safety",), **fields)
            for tz in ZONES}


def _confirmed_before(readers, when: datetime) -> None:
    for reader in readers:
        reader.confirmed_at = when
    db.session.commit()


def _handled_until(readers, when: datetime) -> None:
    """As if each reader had had their digest for the local date of ``when`` already."""
    from zoneinfo import ZoneInfo

    for reader in readers:
        reader.last_digest_on = when.astimezone(ZoneInfo(reader.timezone)).date()
    db.session.commit()


@pytest.mark.parametrize("days", [
    # US spring forward (8 March 2026) and Europe's (29 March 2026)
    (date(2026, 3, 7), date(2026, 3, 9)),
    (date(2026, 3, 28), date(2026, 3, 30)),
    # Europe falls back (25 October 2026), the US a week later (1 November 2026)
    (date(2026, 10, 24), date(2026, 10, 26)),
    (date(2026, 10, 31), date(2026, 11, 2)),
], ids=["us-march", "eu-march", "eu-october", "us-november"])
def test_each_reader_gets_one_digest_a_day_at_their_local_time_across_dst(app, topics, days):
    first, last = days
    start = utc(first.year, first.month, first.day) - timedelta(days=1)
    end = utc(last.year, last.month, last.day) + timedelta(days=1)
    readers = _readers_in_every_zone()
    gap_reader = make_reader("gap@example.com", timezone="America/New_York",
                             delivery_minute=2 * 60 + 30, topics=("ai-policy-and-safety",))
    _confirmed_before([*readers.values(), gap_reader], start - timedelta(days=1))
    _handled_until([*readers.values(), gap_reader], start)
    publish_every(start - timedelta(days=1), end, hours=4)

    walk(app, start, end)

    got = deliveries_by_reader()
    for tz, reader in readers.items():
        times = local_times(got[reader.id], tz)
        local_days = [t.date() for t in times]
        assert len(local_days) == len(set(local_days)), f"{tz}: two digests on one day {times}"
        for day in (first, first + timedelta(days=1), last):
            assert datetime.combine(day, time(7, 0)) in times, f"{tz}: none at 07:00 on {day}"
        assert all(t.time() == time(7, 0) for t in times), f"{tz}: {times}"
    # 02:30 does not exist in New York on 8 March 2026: that day it comes at 03:30 (once).
    gap_times = local_times(got[gap_reader.id], "America/New_York")
    assert len({t.date() for t in gap_times}) == len(gap_times)
    if first == date(2026, 3, 7):
        assert datetime(2026, 3, 8, 3, 30) in gap_times
        assert datetime(2026, 3, 9, 2, 30) in gap_times


def test_digest_holds_what_was_published_since_the_previous_one(app, topics):
    reader = make_reader("ada@example.com", timezone="Europe/London", delivery_minute=8 * 60,
                         topics=("ai-policy-and-safety",))
    _confirmed_before([reader], utc(2026, 1, 1))
    old = make_synthesis(title="Two days old", published_at="2026-01-08T09:00:00+00:00")
    day1 = make_synthesis(title="Yesterday evening", published_at="2026-01-09T20:00:00+00:00")
    compose_at(app, utc(2026, 1, 10, 8, 0))
    day2 = make_synthesis(title="This morning", published_at="2026-01-10T09:00:00+00:00")
    compose_at(app, utc(2026, 1, 11, 8, 0))

    first, second = deliveries_by_reader()[reader.id]
    assert synthesis_ids_of(first) == [day1.id]  # the first digest reaches back one day
    assert old.id not in synthesis_ids_of(first)
    assert synthesis_ids_of(second) == [day2.id]


def test_no_digest_goes_out_when_nothing_is_new(app, topics):
    reader = make_reader("quiet@example.com", timezone="UTC", delivery_minute=6 * 60,
                         topics=("models-and-research",))
    _confirmed_before([reader], utc(2026, 2, 1))
    make_synthesis(title="Only policy news", topics=["ai-policy-and-safety"],
                   published_at="2026-02-02T03:00:00+00:00")
    compose_at(app, utc(2026, 2, 2, 6, 0))

    assert deliveries_by_reader() == {}
    assert db.session.scalar(select(func.count()).select_from(Edition)) == 0
    db.session.refresh(reader)
    assert reader.last_digest_on == date(2026, 2, 2)  # handled: not looked at again today
    # What arrives later waits for tomorrow's digest, which reaches back to the last one.
    research = make_synthesis(title="Research at noon", topics=["models-and-research"],
                              published_at="2026-02-02T12:00:00+00:00")
    compose_at(app, utc(2026, 2, 2, 12, 30))
    assert deliveries_by_reader() == {}
    compose_at(app, utc(2026, 2, 3, 6, 0))
    (delivery,) = deliveries_by_reader()[reader.id]
    assert synthesis_ids_of(delivery) == [research.id]


def test_a_synthesis_in_two_followed_topics_appears_once_under_the_first(app, topics):
    policy_first = make_reader("p@example.com", delivery_minute=7 * 60,
                               topics=("ai-policy-and-safety", "models-and-research"))
    research_first = make_reader("r@example.com", delivery_minute=7 * 60,
                                 topics=("models-and-research", "ai-policy-and-safety"))
    _confirmed_before([policy_first, research_first], utc(2026, 4, 1))
    both = make_synthesis(title="Both topics", published_at="2026-04-02T05:00:00+00:00",
                          topics=["ai-policy-and-safety", "models-and-research"])
    research = make_synthesis(title="Research only", published_at="2026-04-02T04:00:00+00:00",
                              topics=["models-and-research"])
    compose_at(app, utc(2026, 4, 2, 7, 0))

    got = deliveries_by_reader()
    (p,) = got[policy_first.id]
    (r,) = got[research_first.id]
    assert [(s["topic"], s["synthesis_ids"]) for s in sections_of(p)] == [
        ("ai-policy-and-safety", [both.id]), ("models-and-research", [research.id])]
    assert [(s["topic"], s["synthesis_ids"]) for s in sections_of(r)] == [
        ("models-and-research", [both.id, research.id])]
    assert p.edition_id != r.edition_id  # different sections, different renderings


def test_readers_with_the_same_sections_in_one_slot_share_one_edition(app, topics):
    alike = [make_reader(f"alike{i}@example.com", timezone="Europe/Paris",
                         delivery_minute=8 * 60 + 5 * i, topics=("ai-policy-and-safety",))
             for i in range(3)]  # 08:00, 08:05, 08:10 Paris: one 15-minute slot
    text_reader = make_reader("text@example.com", timezone="Europe/Paris", format="text",
                              delivery_minute=8 * 60, topics=("ai-policy-and-safety",))
    _confirmed_before([*alike, text_reader], utc(2026, 5, 1))
    make_synthesis(title="Shared news", published_at="2026-05-04T05:00:00+00:00")
    walk(app, utc(2026, 5, 4, 5, 50), utc(2026, 5, 4, 6, 20), step=timedelta(minutes=1))

    got = deliveries_by_reader()
    editions = {d.edition_id for reader in (*alike, text_reader) for d in got[reader.id]}
    assert len(editions) == 1
    # Each went out at the reader's own minute (08:00, 08:05, 08:10 Paris = 06:xx UTC).
    assert [got[r.id][0].created_at.minute for r in alike] == [0, 5, 10]
    variants = {got[r.id][0].variant_id for r in alike}
    assert len(variants) == 1 and got[text_reader.id][0].variant_id not in variants


def test_weekly_reader_gets_exactly_one_a_week_on_their_day(app, topics):
    weekly = make_reader("weekly@example.com", timezone="Europe/London", frequency="weekly",
                         weekly_day=2, delivery_minute=8 * 60, topics=("ai-policy-and-safety",))
    _confirmed_before([weekly], utc(2026, 6, 1))
    publish_every(utc(2026, 6, 1), utc(2026, 6, 20), hours=12)
    walk(app, utc(2026, 6, 1), utc(2026, 6, 19), step=timedelta(hours=1))

    deliveries = deliveries_by_reader()[weekly.id]
    times = local_times(deliveries, "Europe/London")
    assert times == [datetime(2026, 6, 3, 8, 0), datetime(2026, 6, 10, 8, 0),
                     datetime(2026, 6, 17, 8, 0)]  # Wednesdays, 08:00 BST
    second = synthesis_ids_of(deliveries[1])
    assert len(second) == 14  # the week since the previous one: 7 days × 2
    assert not set(second) & set(synthesis_ids_of(deliveries[0]))


def test_paused_reader_gets_nothing_until_the_pause_ends(app, topics):
    paused = make_reader("paused@example.com", frequency="paused",
                         paused_until=date(2026, 7, 4), delivery_minute=9 * 60,
                         topics=("ai-policy-and-safety",))
    _confirmed_before([paused], utc(2026, 6, 1))
    publish_every(utc(2026, 6, 28), utc(2026, 7, 5), hours=12)
    walk(app, utc(2026, 7, 1), utc(2026, 7, 5, 12), step=timedelta(hours=1))

    times = local_times(deliveries_by_reader()[paused.id], "UTC")
    assert times == [datetime(2026, 7, 4, 9, 0), datetime(2026, 7, 5, 9, 0)]


def test_a_late_worker_catches_up_once_within_the_grace(app, topics):
    reader = make_reader("late@example.com", delivery_minute=7 * 60,
                         topics=("ai-policy-and-safety",))
    _confirmed_before([reader], utc(2026, 8, 1))
    make_synthesis(title="Overnight", published_at="2026-08-03T02:00:00+00:00")
    compose_at(app, utc(2026, 8, 3, 9, 30))  # the worker was down from 06:00 to 09:30
    compose_at(app, utc(2026, 8, 3, 9, 31))
    compose_at(app, utc(2026, 8, 3, 18, 0))

    (delivery,) = deliveries_by_reader()[reader.id]
    assert delivery.created_at == utc(2026, 8, 3, 9, 30)


def test_a_digest_older_than_the_grace_is_skipped_logged_and_its_content_kept(app, topics,
                                                                            caplog):
    reader = make_reader("down@example.com", delivery_minute=7 * 60,
                         topics=("ai-policy-and-safety",))
    _confirmed_before([reader], utc(2026, 8, 1))
    missed = make_synthesis(title="Missed", published_at="2026-08-03T02:00:00+00:00")
    with caplog.at_level(logging.WARNING, logger="newsletter.editions.digests"):
        compose_at(app, utc(2026, 8, 3, 10, 1))  # 3 h 1 min late: beyond the 3 h grace
    assert deliveries_by_reader() == {}
    assert "skipped 1 digest(s)" in caplog.text
    compose_at(app, utc(2026, 8, 3, 12, 0))
    assert deliveries_by_reader() == {}  # skipped once, not retried all day

    later = make_synthesis(title="Next day", published_at="2026-08-04T01:00:00+00:00")
    compose_at(app, utc(2026, 8, 4, 7, 0))
    (delivery,) = deliveries_by_reader()[reader.id]
    assert synthesis_ids_of(delivery) == [later.id, missed.id]


def test_grace_is_a_setting(app_config, tmp_path, topics):
    from newsletter import create_app

    short = create_app({**app_config, "DIGEST_GRACE": 30})
    with short.app_context():
        reader = make_reader("short@example.com", delivery_minute=7 * 60,
                             topics=("ai-policy-and-safety",))
        _confirmed_before([reader], utc(2026, 8, 1))
        make_synthesis(title="News", published_at="2026-08-03T02:00:00+00:00")
        compose_at(short, utc(2026, 8, 3, 7, 45))
        assert deliveries_by_reader() == {}


def test_a_reader_who_subscribes_after_their_time_starts_the_next_day(app, topics):
    reader = make_reader("new@example.com", delivery_minute=7 * 60,
                         topics=("ai-policy-and-safety",))
    _confirmed_before([reader], utc(2026, 9, 1, 8, 0))
    make_synthesis(title="Noon", published_at="2026-09-01T12:00:00+00:00")
    compose_at(app, utc(2026, 9, 1, 8, 1))
    assert deliveries_by_reader() == {}
    compose_at(app, utc(2026, 9, 2, 7, 0))
    (delivery,) = deliveries_by_reader()[reader.id]
    assert delivery.created_at == utc(2026, 9, 2, 7, 0)


def test_a_restart_in_the_middle_of_the_day_sends_nothing_twice(app_config, topics):
    from newsletter import create_app

    readers = _readers_in_every_zone(minute=7 * 60)
    _confirmed_before(readers.values(), utc(2026, 9, 1))
    publish_every(utc(2026, 9, 9), utc(2026, 9, 10, 12), hours=3)
    first_worker = create_app(app_config)
    walk(first_worker, utc(2026, 9, 9, 22), utc(2026, 9, 10, 12))
    before = {r: len(d) for r, d in deliveries_by_reader().items()}
    assert sorted(before.values()) == [1, 1, 1, 1]  # Shanghai's 07:00 is 23:00 UTC

    restarted = create_app(app_config)  # a new process: nothing in memory
    walk(restarted, utc(2026, 9, 10, 12), utc(2026, 9, 10, 15))
    after = {r: len(d) for r, d in deliveries_by_reader().items()}
    assert after == before


def test_a_cancelled_digest_is_not_sent_to_readers_due_later_in_its_slot(app, topics):
    from newsletter.delivery import service as sending

    first = make_reader("first@example.com", delivery_minute=7 * 60,
                        topics=("ai-policy-and-safety",))
    second = make_reader("second@example.com", delivery_minute=7 * 60 + 10,
                         topics=("ai-policy-and-safety",))
    _confirmed_before([first, second], utc(2026, 9, 1))
    make_synthesis(title="Mistake", published_at="2026-09-02T06:00:00+00:00")
    compose_at(app, utc(2026, 9, 2, 7, 0))
    (delivery,) = deliveries_by_reader()[first.id]
    sending.cancel(delivery.edition_id)
    compose_at(app, utc(2026, 9, 2, 7, 10))

    assert second.id not in deliveries_by_reader()
    db.session.refresh(second)
    assert second.last_digest_on == date(2026, 9, 2)


def test_premium_topics_only_for_paying_readers(app, topics):
    free = make_reader("free@example.com", topics=("analyst-briefings", "ai-policy-and-safety"))
    paid = make_reader("paid@example.com", plan="paid",
                       topics=("analyst-briefings", "ai-policy-and-safety"))
    _confirmed_before([free, paid], utc(2026, 9, 1))
    briefing = make_synthesis(title="Briefing", topics=["analyst-briefings"],
                              published_at="2026-09-02T05:00:00+00:00")
    news = make_synthesis(title="News", published_at="2026-09-02T05:00:00+00:00")
    compose_at(app, utc(2026, 9, 2, 7, 0))

    got = deliveries_by_reader()
    assert synthesis_ids_of(got[free.id][0]) == [news.id]
    assert synthesis_ids_of(got[paid.id][0]) == [briefing.id, news.id]


def test_suppressed_and_unconfirmed_readers_get_no_digest(app, topics):
    from newsletter.wiring import reader_services

    pending = make_reader("pending@example.com", status="pending")
    suppressed = make_reader("gone@example.com")
    reader_services()  # the suppression list is keyed by the app's hash key
    from newsletter.subscribers.models import Suppression

    db.session.add(Suppression(email_hash=suppressed.email_hash, reason="hard_bounce"))
    _confirmed_before([suppressed], utc(2026, 9, 1))
    make_synthesis(title="News", published_at="2026-09-02T05:00:00+00:00")
    compose_at(app, utc(2026, 9, 2, 7, 0))

    got = deliveries_by_reader()
    assert pending.id not in got and suppressed.id not in got
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_a_back_dated_or_late_published_synthesis_goes_in_the_next_digest(app, topics):
    reader = make_reader("late-items@example.com", delivery_minute=7 * 60,
                         topics=("ai-policy-and-safety",))
    _confirmed_before([reader], utc(2026, 1, 1))
    make_synthesis(title="Before", published_at="2026-01-10T05:00:00+00:00")
    compose_at(app, utc(2026, 1, 10, 7, 0))
    # Listed after that digest, but dated before it: a feed entry polled late, and a draft
    # written at 06:00 and published at 09:00.
    back_dated = make_synthesis(title="Feed entry dated 06:30",
                                published_at="2026-01-10T06:30:00+00:00",
                                listed_at=utc(2026, 1, 10, 7, 10))
    draft = make_synthesis(title="Draft", status="draft",
                           published_at="2026-01-10T06:00:00+00:00")
    with time_machine.travel(utc(2026, 1, 10, 9, 0), tick=False):
        from newsletter.content.service import ingest
        from tests.factories import synthesis_payload

        ingest(synthesis_payload(external_id=draft.external_id, title="Draft",
                                 status="published",
                                 published_at="2026-01-10T06:00:00+00:00"))
    compose_at(app, utc(2026, 1, 11, 7, 0))

    first, second = deliveries_by_reader()[reader.id]
    assert set(synthesis_ids_of(second)) == {back_dated.id, draft.id}


def test_same_local_date_and_utc_time_on_two_utc_days_make_two_editions(app, topics):
    # 21:00 on Wednesday 14 January is 07:00 UTC that Wednesday in Kiritimati (UTC+14) and
    # 07:00 UTC on Thursday in Honolulu (UTC-10): same local date, same UTC clock time.
    kiritimati = make_reader("kiritimati@example.com", timezone="Pacific/Kiritimati",
                             delivery_minute=21 * 60, topics=("ai-policy-and-safety",))
    honolulu = make_reader("honolulu@example.com", timezone="Pacific/Honolulu",
                           delivery_minute=21 * 60, topics=("ai-policy-and-safety",))
    london = make_reader("london@example.com", timezone="Europe/London",
                         delivery_minute=8 * 60, topics=("ai-policy-and-safety",))
    _confirmed_before([kiritimati, honolulu, london], utc(2026, 1, 1))
    honolulu.last_digest_on = date(2026, 1, 13)
    honolulu.digest_covered_until = utc(2026, 1, 13, 8)
    london.last_digest_on = date(2026, 1, 14)
    london.digest_covered_until = utc(2026, 1, 13, 8)
    db.session.commit()
    make_synthesis(title="Tuesday noon", published_at="2026-01-13T12:00:00+00:00")
    walk(app, utc(2026, 1, 14, 6), utc(2026, 1, 15, 9), step=timedelta(hours=1))

    got = deliveries_by_reader()
    k, h = got[kiritimati.id][0], got[honolulu.id][0]
    assert synthesis_ids_of(k) == synthesis_ids_of(h)  # same sections, same local date
    assert k.edition_id != h.edition_id
    assert got[london.id][0].created_at == utc(2026, 1, 15, 8)  # nothing blocked the next


def test_a_reader_added_to_a_finished_digest_edition_reopens_it(app, topics):
    from newsletter.delivery import queue as dq

    early = make_reader("early@example.com", delivery_minute=7 * 60,
                        topics=("ai-policy-and-safety",))
    later = make_reader("later@example.com", delivery_minute=7 * 60 + 10,
                        topics=("ai-policy-and-safety",))
    _confirmed_before([early, later], utc(2026, 1, 1))
    make_synthesis(title="Shared", published_at="2026-01-20T05:00:00+00:00")
    compose_at(app, utc(2026, 1, 20, 7, 0))
    edition = db.session.get(Edition, deliveries_by_reader()[early.id][0].edition_id)
    edition.status, edition.open_until = "sent", utc(2026, 1, 20, 7, 5)  # finished early
    db.session.commit()

    compose_at(app, utc(2026, 1, 20, 7, 10))

    db.session.refresh(edition)
    (delivery,) = deliveries_by_reader()[later.id]
    assert delivery.edition_id == edition.id
    assert edition.status == "sending" and edition.finished_at is None
    assert edition.open_until >= utc(2026, 1, 20, 7, 20)
    with db.engine.connect() as conn:
        claimed = dq.claim(conn, worker="t", limit=10, lease_seconds=60,
                           now=utc(2026, 1, 20, 7, 11))
    assert delivery.id in {job.id for job in claimed}


def test_a_skipped_weekly_digest_loses_nothing(app, topics):
    weekly = make_reader("weekly-skip@example.com", frequency="weekly", weekly_day=2,
                         delivery_minute=8 * 60, topics=("ai-policy-and-safety",))
    _confirmed_before([weekly], utc(2026, 6, 1))
    make_synthesis(title="Before the first", published_at="2026-06-02T12:00:00+00:00")
    compose_at(app, utc(2026, 6, 3, 8, 0))
    friday = make_synthesis(title="Friday", published_at="2026-06-05T12:00:00+00:00")
    compose_at(app, utc(2026, 6, 10, 12, 0))  # the worker was down: skipped
    compose_at(app, utc(2026, 6, 17, 8, 0))

    first, second = deliveries_by_reader()[weekly.id]
    assert second.created_at == utc(2026, 6, 17, 8, 0)
    assert friday.id in synthesis_ids_of(second)


def test_digest_now_counts_as_the_readers_next_digest(app, topics):
    from newsletter.delivery.fanout import queue_readers
    from newsletter.editions.digests import compose_now
    from newsletter.wiring import mail_setup

    reader = make_reader("now@example.com", delivery_minute=7 * 60,
                         topics=("ai-policy-and-safety",))
    _confirmed_before([reader], utc(2026, 1, 1))
    make_synthesis(title="Morning", published_at="2026-01-10T05:00:00+00:00")
    compose_at(app, utc(2026, 1, 10, 7, 0))
    make_synthesis(title="Mid-morning", published_at="2026-01-10T09:00:00+00:00")
    compose_now(mail_setup(), queue=queue_readers, now=utc(2026, 1, 10, 10, 0),
                slot_minutes=15)  # tomorrow's
    db.session.expire_all()
    compose_at(app, utc(2026, 1, 11, 7, 0))
    assert len(deliveries_by_reader()[reader.id]) == 2  # nothing more on the 11th
    afternoon = make_synthesis(title="Afternoon", published_at="2026-01-11T15:00:00+00:00")
    compose_at(app, utc(2026, 1, 12, 7, 0))
    third = deliveries_by_reader()[reader.id][2]
    assert synthesis_ids_of(third) == [afternoon.id]
