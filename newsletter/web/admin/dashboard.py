"""The dashboard: readers over time, new and lost readers, recent editions with their
funnel, and the health of the workers and the queue."""

from __future__ import annotations

from flask import abort, render_template

from newsletter.accounts.roles import Permission
from newsletter.billing import stats as billing_stats
from newsletter.db import db, utcnow
from newsletter.delivery import stats as sending
from newsletter.delivery.breaker import relay_health
from newsletter.delivery.workers import workers
from newsletter.editions.models import EditionKind
from newsletter.subscribers import stats as reading
from newsletter.web.admin import bp, charts, requires

DAYS = 30


def _label(day) -> str:
    return day.strftime("%d %b")


@bp.route("/")
@requires(Permission.READ)
def dashboard():
    now = utcnow()
    series = reading.readers_over_time(now, DAYS)
    recent = [(edition, sending.funnel(edition.id))
              for edition in sending.recent_editions_of(EditionKind.SPECIAL.value, 8)]
    digests = sending.digest_days(now, 7)
    return render_template(
        "admin/dashboard.html", totals=reading.totals(), series=series,
        new_total=sum(series.new), lost_total=sum(series.lost),
        by_topic=reading.by_topic_and_tier(), recent=recent, digests=digests,
        workers=workers(now), queue=sending.queue_health(now), now=now, days=DAYS,
        relays=relay_health(db.session, now),
        billing=billing_stats.figures(now))


@bp.route("/charts/<name>.svg")
@requires(Permission.READ)
def chart(name: str):
    now = utcnow()
    if name == "readers":
        s = reading.readers_over_time(now, DAYS)
        paying = reading.paying_over_time(now, DAYS)
        svg = charts.line(f"Readers, last {DAYS} days", [_label(d) for d in s.days],
                          {"All readers": s.readers, "Paying": paying.readers})
    elif name == "joined-left":
        s = reading.readers_over_time(now, DAYS)
        svg = charts.bars("New and lost readers per day", [_label(d) for d in s.days],
                          {"New": s.new, "Lost": s.lost})
    elif name == "topics":
        by_topic = reading.topics_over_time(now, DAYS)
        labels = [_label(d) for d in next(iter(by_topic.values())).days] if by_topic else []
        svg = charts.line("Readers by topic", labels,
                          {name: s.readers for name, s in by_topic.items()})
    else:
        abort(404)
    return charts.svg_response(svg)
