"""The admin's edition pages as an editor uses them: scheduling from the composer,
cancelling, the figures the dashboard and an edition's page show, digests grouped by day,
and the composer's live recipient count."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from newsletter.accounts.models import AuditEntry
from newsletter.db import db, utcnow
from newsletter.delivery import service as sending
from newsletter.delivery.events import BouncePolicy, Event, handle
from newsletter.delivery.models import Delivery
from newsletter.delivery.workers import beat
from newsletter.editions.models import Edition, EditionLink, EditionVariant
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.models import ConsentEvent, Reader
from newsletter.wiring import mail_setup, reader_services, services
from tests.factories_readers import make_reader
from tests.support.admins import csrf, make_admin, sign_in
from tests.support.editions import audience, special_edition

PERSON = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Safari/605.1.15")
SCANNER = "Barracuda Sentinel link scanner/2.0"
POLICY, RESEARCH, BRIEFINGS = "ai-policy-and-safety", "models-and-research", "analyst-briefings"


def _editor(client, role: str = "editor", email: str = "editor@news.example"):
    make_admin(email, role)
    assert sign_in(client, email).status_code == 302


def _draft(client, **fields) -> int:
    data = {"subject": "Breaking: a model", "preheader": "", "tier": "all",
            "markdown": "Hello **readers**.", "topics": POLICY,
            "csrf_token": csrf(client, "/admin/editions/new"), **fields}
    response = client.post("/admin/editions/new", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    return int(re.search(r"/editions/(\d+)/edit", response.headers["Location"])[1])


def _text(response) -> str:
    """The page as a reader sees it: no markup, runs of white space as one space."""
    plain = html.unescape(re.sub(r"<[^>]+>", "", response.get_data(as_text=True)))
    return re.sub(r"\s+", " ", plain)


def _deliveries(edition_id: int) -> list[Delivery]:
    return list(db.session.scalars(select(Delivery).where(Delivery.edition_id == edition_id)
                                   .order_by(Delivery.id)))


def _statuses(edition_id: int) -> list[str]:
    return [d.status for d in _deliveries(edition_id)]


def _actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# -- 1. Scheduling from the composer ------------------------------------------------------


def test_a_draft_scheduled_for_later_waits_for_its_instant(client, topics):
    _editor(client)
    make_reader("ada@example.com", topics=(POLICY,))
    edition_id = _draft(client)
    form = client.get(f"/admin/editions/{edition_id}/send").get_data(as_text=True)
    # The form the browser fills: a datetime-local field and the browser's UTC offset.
    assert 'name="send_at" type="datetime-local"' in form and 'name="offset_minutes"' in form
    year = utcnow().year + 1
    # A browser at UTC+2 says getTimezoneOffset() = -120: 09:30 there is 07:30 UTC.
    response = client.post(f"/admin/editions/{edition_id}/send", data={
        "expected": "1", "when": "later", "send_at": f"{year}-03-04T09:30",
        "offset_minutes": "-120", "csrf_token": csrf(client)})
    assert response.status_code == 303
    edition = db.session.get(Edition, edition_id)
    assert edition.status == "scheduled"
    assert edition.send_at == datetime(year, 3, 4, 7, 30, tzinfo=UTC)
    assert edition.started_at is None
    assert db.session.scalar(select(func.count(Delivery.id))) == 0  # nothing queued yet
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "scheduled edition"))
    assert entry is not None and entry.target == f"edition {edition_id}"
    assert entry.actor == "editor@news.example"
    assert entry.detail == {"recipients": 1, "send_at": f"{year}-03-04T07:30:00+00:00"}
    assert "sent edition" not in _actions()
    page = _text(client.get(response.headers["Location"]))
    assert f"Scheduled for {year}-03-04 07:30 UTC, to about 1 reader." in page
    assert f"scheduled {year}-03-04 07:30 UTC" in page
    # Once scheduled, it cannot be sent or scheduled again from the confirmation page.
    again = client.post(f"/admin/editions/{edition_id}/send", data={
        "expected": "1", "when": "now", "csrf_token": csrf(client)})
    assert again.status_code == 303
    assert db.session.get(Edition, edition_id).status == "scheduled"
    assert db.session.scalar(select(func.count(Delivery.id))) == 0


def test_without_javascript_the_time_is_read_as_utc(client, topics):
    _editor(client)
    make_reader("ada@example.com", topics=(POLICY,))
    edition_id = _draft(client)
    year = utcnow().year + 1
    client.post(f"/admin/editions/{edition_id}/send", data={
        "expected": "1", "when": "later", "send_at": f"{year}-11-30T23:05",
        "offset_minutes": "", "csrf_token": csrf(client)})
    edition = db.session.get(Edition, edition_id)
    assert edition.status == "scheduled"
    assert edition.send_at == datetime(year, 11, 30, 23, 5, tzinfo=UTC)


def test_a_time_in_the_past_or_unreadable_is_refused_with_a_message(client, topics):
    _editor(client)
    make_reader("ada@example.com", topics=(POLICY,))
    edition_id = _draft(client)
    url = f"/admin/editions/{edition_id}/send"
    token = csrf(client, url)
    soon_local = (utcnow() + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    refused = [
        ((utcnow() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"), "0"),
        ("2020-01-01T09:00", ""),
        # Half an hour from now on the UTC clock is 90 minutes ago at UTC+2.
        (soon_local, "-120"),
        ("", ""),
        ("tomorrow at nine", ""),
        ("2031-02-30T09:00", ""),
        ("٢٠٣١-01-01T09:00", ""),
        (f"{utcnow().year + 1}-01-01T09:00", "٦٠"),
    ]
    for send_at, offset in refused:
        response = client.post(url, data={"expected": "1", "when": "later",
                                          "send_at": send_at, "offset_minutes": offset,
                                          "csrf_token": token})
        assert response.status_code == 400, (send_at, offset)
        assert "Give a time in the future to schedule it." in _text(response)
    edition = db.session.get(Edition, edition_id)
    assert edition.status == "draft" and edition.send_at is None
    assert db.session.scalar(select(func.count(Delivery.id))) == 0
    assert "scheduled edition" not in _actions() and "sent edition" not in _actions()


def test_an_unknown_choice_of_when_sends_nothing(client, topics):
    _editor(client)
    make_reader("ada@example.com", topics=(POLICY,))
    edition_id = _draft(client)
    year = utcnow().year + 1
    for when in ("Later", "soon", ""):
        response = client.post(f"/admin/editions/{edition_id}/send", data={
            "expected": "1", "when": when, "send_at": f"{year}-03-04T09:30",
            "csrf_token": csrf(client)})
        assert response.status_code == 400, when
        assert "Send now or schedule for a later time: choose one." in _text(response)
    assert db.session.get(Edition, edition_id).status == "draft"
    assert db.session.scalar(select(func.count(Delivery.id))) == 0


# -- 2. Cancelling ------------------------------------------------------------------------


def _sending_edition(n: int = 3) -> int:
    audience(n)
    edition = special_edition()
    assert sending.start_sending(edition.id, mail_setup()) == n
    return edition.id


def test_cancelling_with_the_box_ticked_stops_what_is_not_sent(client, topics):
    _editor(client)
    edition_id = _sending_edition(4)
    first, second, *_ = _deliveries(edition_id)
    first.status, first.sent_at = "sent", utcnow()
    second.status = "deferred"
    db.session.commit()
    page = client.get(f"/admin/editions/{edition_id}").get_data(as_text=True)
    assert 'name="confirm" value="yes" required' in page  # the box the form asks for
    response = client.post(f"/admin/editions/{edition_id}/cancel",
                           data={"confirm": "yes", "csrf_token": csrf(client)})
    assert response.status_code == 303
    edition = db.session.get(Edition, edition_id)
    assert edition.status == "cancelled" and edition.finished_at is not None
    assert _statuses(edition_id) == ["sent", "cancelled", "cancelled", "cancelled"]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "cancelled edition"))
    assert entry is not None and entry.target == f"edition {edition_id}"
    assert entry.actor == "editor@news.example"
    shown = _text(client.get(response.headers["Location"]))
    assert "Cancelled: 3 deliveries not sent." in shown
    assert "I want to cancel" not in shown  # nothing left to cancel


def test_cancelling_without_the_box_changes_nothing(client, topics):
    _editor(client)
    edition_id = _sending_edition(2)
    token = csrf(client)
    for data in ({"csrf_token": token}, {"csrf_token": token, "confirm": "no"}):
        response = client.post(f"/admin/editions/{edition_id}/cancel", data=data)
        assert response.status_code == 400
        assert "Cancelling needs the box ticked" in _text(response)
    assert client.head(f"/admin/editions/{edition_id}/cancel").status_code == 405
    assert db.session.get(Edition, edition_id).status == "sending"
    assert _statuses(edition_id) == ["queued", "queued"]
    assert "cancelled edition" not in _actions()


def test_a_sent_edition_cannot_be_cancelled(client, topics):
    _editor(client)
    edition_id = _sending_edition(2)
    for delivery in _deliveries(edition_id):
        delivery.status, delivery.sent_at = "sent", utcnow()
    db.session.get(Edition, edition_id).status = "sent"
    db.session.commit()
    assert "I want to cancel" not in client.get(f"/admin/editions/{edition_id}").get_data(
        as_text=True)
    response = client.post(f"/admin/editions/{edition_id}/cancel",
                           data={"confirm": "yes", "csrf_token": csrf(client)})
    assert response.status_code == 303
    shown = _text(client.get(response.headers["Location"]))
    assert f"Nothing changed: edition {edition_id} cannot be cancelled now." in shown
    assert db.session.get(Edition, edition_id).status == "sent"
    assert _statuses(edition_id) == ["sent", "sent"]
    assert "cancelled edition" not in _actions()


# -- 3. What the dashboard and an edition's page show --------------------------------------


def _row_numbers(page: str, start: str) -> list[str]:
    """The numeric cells of the table row that begins with ``start``."""
    row = re.search(re.escape(start) + r".*?</tr>", page, re.S)
    assert row, start
    return re.findall(r'<td class="num">([^<]*)</td>', row[0])


@pytest.fixture
def world(app, topics, monkeypatch):
    """Six readers and a special edition sent to them, with a known outcome for each.

    Both pages read the clock through their view module; it is held at ``now`` so the
    figures that depend on it (sent in the last minute, seconds since a heartbeat) are
    exact."""
    now = utcnow().replace(microsecond=0)
    for module in ("dashboard", "editions"):
        monkeypatch.setattr(f"newsletter.web.admin.{module}.utcnow", lambda: now)
    readers = audience(6)
    edition = special_edition("Figures you can check")
    assert sending.start_sending(edition.id, mail_setup()) == 6
    d = _deliveries(edition.id)
    for row in d[:2]:
        row.status, row.sent_at, row.attempts = "sent", now - timedelta(hours=2), 1
    d[2].status, d[2].sent_at, d[2].attempts = "sent", now - timedelta(seconds=20), 1
    d[3].status, d[3].attempts = "failed", 5
    d[3].relay_reply = "550 5.1.1 <reader3@example.com>: Recipient address rejected"
    d[4].status, d[4].attempts = "deferred", 1
    d[4].relay_reply = "451 4.7.1 Greylisted, try again in 5 minutes"
    d[4].next_attempt_at = now + timedelta(minutes=10)
    d[4].created_at = now - timedelta(hours=3)
    d[5].created_at = d[5].next_attempt_at = now - timedelta(hours=1)
    # A reader who left a topic the day before the edition went out: not its doing.
    db.session.add(ConsentEvent(reader_id=readers[0].id, kind="unsubscribe_topic",
                                source="preferences", occurred_at=now - timedelta(days=1)))
    db.session.commit()

    tokens = services().delivery_tokens
    # The two stories' sources, as tracked links of the edition: (n, url).
    sources = [(n, url) for n, url in db.session.execute(
        select(EditionLink.n, EditionLink.url).where(EditionLink.edition_id == edition.id)
        .order_by(EditionLink.n)) if re.fullmatch(r"https://news\.example/\d+", url)]
    assert len(sources) == 2
    return {"now": now, "edition": edition, "d": d, "readers": readers, "tokens": tokens,
            "first": sources[0], "second": sources[1]}


def _engage(client, world) -> None:
    """Opens and clicks through the public pixel and redirect, as mail clients make them."""
    d, tokens = world["d"], world["tokens"]

    def hit(delivery, agent, n=None):
        token = tokens.make(delivery.id)
        url = f"/o/{token}" if n is None else f"/c/{token}/{n[0]}"
        assert client.get(url, headers={"User-Agent": agent}).status_code in (200, 302)

    hit(d[0], PERSON)
    hit(d[0], PERSON)
    hit(d[0], SCANNER)
    hit(d[0], PERSON, world["first"])
    hit(d[0], PERSON, world["first"])
    # Opened once by its reader, and twice by a scanner: a person opened it all the same.
    hit(d[1], PERSON)
    hit(d[1], SCANNER)
    hit(d[1], SCANNER)
    hit(d[1], PERSON, world["second"])
    # Only a scanner ever touched this one: no reader opened or clicked it.
    hit(d[2], SCANNER)
    hit(d[2], SCANNER, world["first"])


def _complain_and_unsubscribe(world) -> None:
    d, tokens, readers = world["d"], world["tokens"], world["readers"]
    for event_id in ("arf-1", "arf-2"):  # two reports about one message: one complaint
        outcome = handle(Event(source="arf", event_id=event_id, kind="complaint",
                               token=tokens.make(d[1].id), detail="abuse"),
                         tokens=tokens, services=reader_services(), policy=BouncePolicy())
        assert outcome == "complaint"
    reader = db.session.get(Reader, readers[2].id)
    assert subscribers.unsubscribe(reader_services(), reader,
                                   subscribers.Actor(source="one-click"))


def test_the_edition_page_shows_the_funnel_links_and_failures(app, client, world):
    _editor(client)
    _engage(client, world)
    _complain_and_unsubscribe(world)
    edition = world["edition"]
    page = client.get(f"/admin/editions/{edition.id}").get_data(as_text=True)
    text = _text(client.get(f"/admin/editions/{edition.id}"))
    assert "Opened by people: 2 (machine opens: 4)" in text
    assert "Clicked: 2" in text
    assert "Unsubscribed within 7 days: 2 · complaints: 1" in text
    # Clicks by link: people's clicks, and how many readers made them.
    first, second = world["first"][1], world["second"][1]
    assert _row_numbers(page, f'<td class="url">{first}</td>') == ["2", "1"]
    assert _row_numbers(page, f'<td class="url">{second}</td>') == ["1", "1"]
    assert _row_numbers(page, '<td class="url">https://news.example</td>') == ["0", "0"]
    # Progress: 4 of 6 finished, one accepted in the last minute, two waiting.
    assert re.search(r"66\.7\s*% done · sent 3 · deferred 1 · bounced 0 · failed 1 · "
                     r"waiting 2 · 1/min · ETA 120 s", text), text
    # The failures, with the relay's own words (escaped, not markup).
    assert ("<td>reader3@example.com</td><td><span class=\"status status--failed\">failed"
            "</span></td><td class=\"num\">5</td><td class=\"reply\">550 5.1.1 "
            "&lt;reader3@example.com&gt;: Recipient address rejected</td>") in page
    assert "451 4.7.1 Greylisted, try again in 5 minutes" in text
    assert "reader0@example.com" not in text  # a sent delivery is no failure


def test_the_progress_json_counts_rate_and_eta(app, client, world):
    _editor(client)
    edition = world["edition"]
    progress = client.get(f"/admin/editions/{edition.id}/progress.json").get_json()
    assert progress == {
        "status": "sending", "queued": 1, "claimed": 0, "sent": 3, "deferred": 1,
        "bounced": 0, "failed": 1, "cancelled": 0, "open": 2, "total": 6, "done": 4,
        "percent": 66.7, "rate_per_minute": 1,
        "eta_seconds": 120,  # two waiting at one a minute
    }
    # Nothing accepted in the last minute: no rate, so no made-up ETA.
    db.session.get(Delivery, world["d"][2].id).sent_at = world["now"] - timedelta(minutes=5)
    db.session.commit()
    quiet = client.get(f"/admin/editions/{edition.id}/progress.json").get_json()
    assert quiet["rate_per_minute"] == 0 and quiet["eta_seconds"] is None
    # Once cancelled, the finished share is of what was meant to go.
    client.post(f"/admin/editions/{edition.id}/cancel",
                data={"confirm": "yes", "csrf_token": csrf(client)})
    done = client.get(f"/admin/editions/{edition.id}/progress.json").get_json()
    assert done["status"] == "cancelled" and done["cancelled"] == 2 and done["open"] == 0
    assert done["percent"] == 100.0 and done["eta_seconds"] is None
    assert client.get("/admin/editions/999999/progress.json").status_code == 404


def test_the_dashboard_shows_the_funnel_queue_and_workers(app, client, world):
    _editor(client)
    _engage(client, world)
    _complain_and_unsubscribe(world)
    now, edition = world["now"], world["edition"]
    beat("mailer-1:4242", now - timedelta(seconds=4))
    beat("mailer-2:77", now - timedelta(minutes=10))
    page = client.get("/admin/").get_data(as_text=True)
    text = _text(client.get("/admin/"))
    # Queued, sent, deferred, bounced, failed, opened, clicked, unsubscribed, complaints.
    assert _row_numbers(page, f'<td><a href="/admin/editions/{edition.id}">') == [
        "1", "3", "1", "0", "1", "2", "2", "2", "1"]
    assert "2 deliveries waiting (1 due now)" in text
    oldest = now - timedelta(hours=3)
    assert f"Oldest waiting since: {oldest:%Y-%m-%d %H:%M:%S} UTC" in text
    assert "Sent in the last minute: 1 · last hour: 1" in text
    assert re.search(r"mailer-1:4242\s*running\s*4 s ago", text), text
    assert re.search(r"mailer-2:77\s*not seen\s*600 s ago", text), text
    assert "No worker has reported" not in text
    # Four readers are left: one unsubscribed, and the complaint unsubscribed another.
    assert re.search(r"(?<![\d,])4 readers", text)


# -- 4. Digests grouped by day --------------------------------------------------------------


DAY_SIZE = 1400


def _digests(day_start: datetime, n: int, *, first_subject: str = "Digest") -> list[int]:
    """``n`` digest editions made on one day, in one set-based insert; their ids in order."""
    before = db.session.scalar(select(func.max(Edition.id))) or 0
    db.session.execute(insert(Edition), [
        {"kind": "digest", "subject": f"{first_subject} {i}", "status": "sent",
         "content": {}, "audience": {"topics": [], "tier": "all"},
         "slot_at": day_start + timedelta(minutes=15 * (i % 96)),
         "created_at": day_start + timedelta(seconds=30 + 60 * (i % 1380))}
        for i in range(n)])
    db.session.commit()
    return list(db.session.scalars(select(Edition.id).where(Edition.id > before)
                                   .order_by(Edition.id)))


def _deliver(edition_id: int, readers: list[Reader], statuses: list[str]) -> None:
    variant = EditionVariant(edition_id=edition_id, key="default", format="html",
                             subject="Digest", text={"literals": [""], "fields": []})
    db.session.add(variant)
    db.session.flush()
    db.session.execute(insert(Delivery), [
        {"edition_id": edition_id, "reader_id": r.id, "variant_id": variant.id,
         "email": r.email, "status": s} for r, s in zip(readers, statuses, strict=True)])
    db.session.commit()


@pytest.fixture
def digest_world(app, topics, monkeypatch):
    now = datetime.combine(utcnow().date(), datetime.min.time(), tzinfo=UTC) + timedelta(
        hours=12)
    monkeypatch.setattr("newsletter.web.admin.editions.utcnow", lambda: now)
    monkeypatch.setattr("newsletter.web.admin.dashboard.utcnow", lambda: now)
    busy = now.replace(hour=0) - timedelta(days=1)
    ids = _digests(busy, DAY_SIZE)
    readers = audience(3)
    _deliver(ids[0], readers, ["sent", "bounced", "queued"])
    _deliver(ids[1], readers[:2], ["failed", "deferred"])
    quiet = now.replace(hour=0) - timedelta(days=3)
    _digests(quiet, 2, first_subject="Quiet digest")
    # Fourteen days back, early and late in the day: the whole day is counted.
    oldest = now.replace(hour=0) - timedelta(days=14)
    db.session.execute(insert(Edition), [
        {"kind": "digest", "subject": f"Old digest {i}", "status": "sent", "content": {},
         "audience": {}, "created_at": oldest + timedelta(hours=h)} for i, h in
        enumerate((0.01, 23.9))])
    db.session.commit()
    return {"now": now, "busy": busy.date(), "quiet": quiet.date(), "oldest": oldest.date(),
            "ids": ids}


def test_the_editions_list_shows_a_day_of_digests_once_with_its_counts(client, digest_world):
    _editor(client)
    special_edition("The one special edition")
    page = client.get("/admin/editions").get_data(as_text=True)
    busy, quiet = digest_world["busy"].isoformat(), digest_world["quiet"].isoformat()
    assert page.count(f'/admin/editions/digests/{busy}"') == 1
    # Editions, open, sent, deferred, bounced, failed.
    assert _row_numbers(page, f'/admin/editions/digests/{busy}"') == [
        "1,400", "2", "1", "1", "1", "1"]
    assert _row_numbers(page, f'/admin/editions/digests/{quiet}"') == [
        "2", "0", "0", "0", "0", "0"]
    assert _row_numbers(page, f'/admin/editions/digests/{digest_world["oldest"]}"')[0] == "2"
    assert "Digest 7<" not in page  # no row per digest edition
    linked = {int(i) for i in re.findall(r'href="/admin/editions/(\d+)', page)}
    assert not linked & set(digest_world["ids"])
    assert "The one special edition" in page
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert _row_numbers(dashboard, f'/admin/editions/digests/{busy}"') == [
        "1,400", "2", "1", "1", "1"]


def test_a_day_of_digests_lists_its_editions_page_by_page(client, digest_world):
    _editor(client)
    busy = digest_world["busy"].isoformat()
    first = client.get(f"/admin/editions/digests/{busy}")
    assert first.status_code == 200
    page, text = first.get_data(as_text=True), _text(first)
    assert "1,400 digest editions made this day (UTC)." in text
    assert "Page 1 of 14" in text
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr>") == 100
    ids = digest_world["ids"]
    # Queued, sent, deferred, bounced, failed of the two editions with deliveries.
    assert _row_numbers(page, f'<a href="/admin/editions/{ids[0]}">') == [
        "1", "1", "0", "1", "0"]
    assert _row_numbers(page, f'<a href="/admin/editions/{ids[1]}">') == [
        "0", "0", "1", "0", "1"]
    shown = set()
    for n in range(1, 15):
        listing = client.get(f"/admin/editions/digests/{busy}?page={n}").get_data(as_text=True)
        shown |= {int(i) for i in re.findall(r'<a href="/admin/editions/(\d+)">', listing)}
    assert shown == set(ids)  # every edition of the day, each on one page
    assert client.get(f"/admin/editions/digests/{busy}?page=15").status_code == 404
    assert client.get(f"/admin/editions/digests/{busy}?page=٢").status_code == 404


def test_a_day_without_digests_says_so(client, digest_world):
    _editor(client)
    empty = client.get("/admin/editions/digests/2001-01-01")
    assert empty.status_code == 200
    text = _text(empty)
    assert "0 digest editions made this day (UTC)." in text and "No digest this day." in text
    old = client.get(f"/admin/editions/digests/{digest_world['oldest'].isoformat()}")
    assert "2 digest editions made this day" in _text(old)
    for day in ("2024-13-01", "٢٠٢٤-01-01", "9999-12-31", "yesterday", "2024-1-1"):
        assert client.get(f"/admin/editions/digests/{day}").status_code == 404, day


# -- 5. The live recipient count ------------------------------------------------------------


@pytest.fixture
def readers_for_counting(app, topics):
    make_reader("a@example.com", topics=(POLICY,))
    make_reader("b@example.com", topics=(POLICY, RESEARCH), plan="paid")
    make_reader("c@example.com", topics=(RESEARCH,))
    make_reader("d@example.com", topics=(RESEARCH,), gets_specials=False)
    make_reader("e@example.com", topics=(POLICY,), status="pending")
    make_reader("f@example.com", topics=(BRIEFINGS,), plan="paid")


def _count(client, **query):
    return client.get("/admin/audience-count.json", query_string=query)


@pytest.mark.parametrize(("topics_", "tier", "expected"), [
    ([], "all", 4),
    ([POLICY], "all", 2),
    ([RESEARCH], "all", 2),
    ([POLICY, RESEARCH], "all", 3),
    ([BRIEFINGS], "all", 1),
    ([], "paid", 2),
    ([POLICY], "paid", 1),
    ([RESEARCH, "", ""], "all", 2),
])
def test_the_recipient_count_follows_topics_and_tier(client, readers_for_counting,
                                                     topics_, tier, expected):
    _editor(client)
    response = _count(client, topics=topics_, tier=tier)
    assert response.status_code == 200
    assert response.get_json() == {"count": expected}


def test_odd_input_to_the_count_gets_a_clear_answer(client, readers_for_counting, topics):
    _editor(client)
    refused = [
        {"topics": ["no-such-topic"]},
        {"topics": [str(topics[0].id)]},  # an id is not a slug
        {"topics": ["١٢"]},
        {"topics": ["x" * 10_000]},
        {"topics": [f"topic-{i}" for i in range(3000)]},
        {"topics": [POLICY], "tier": "PAID"},
        {"topics": [POLICY], "tier": "٢"},
    ]
    for query in refused:
        response = _count(client, **query)
        assert response.status_code == 400, query
        assert response.is_json and response.get_json()["message"], query
    assert "Unknown topic" in _count(client, topics=["١٢"]).get_json()["message"]
    # The same topic named thousands of times, then another: both count.
    many = _count(client, topics=[POLICY] * 3000 + [RESEARCH])
    assert many.status_code == 200 and many.get_json() == {"count": 3}
    assert client.head("/admin/audience-count.json").status_code == 200


def test_a_viewer_may_read_the_count_and_strangers_may_not(app, client, readers_for_counting):
    assert _count(client, topics=[POLICY]).status_code == 401
    _editor(client, "viewer", "viewer@news.example")
    response = _count(client, topics=[POLICY])
    assert response.status_code == 200 and response.get_json() == {"count": 2}
