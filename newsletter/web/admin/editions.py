"""Editions in the admin area: the list (special editions, and digests grouped by day), an
edition's page with live progress, its funnel, link clicks and failures, and the pause,
resume and cancel buttons."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select

from newsletter.accounts.roles import Permission
from newsletter.db import db, utcnow
from newsletter.delivery import service as sending
from newsletter.delivery import stats
from newsletter.editions import service as editions
from newsletter.editions.models import Edition, EditionKind
from newsletter.web.admin import bp, record, requires
from newsletter.web.pagination import NO_SUCH_PAGE, page_number
from newsletter.wiring import mail_setup

PAGE = 25
DIGEST_DAYS = 14


def _edition_or_404(edition_id: int) -> Edition:
    edition = db.session.get(Edition, edition_id) if edition_id < 2**62 else None
    if edition is None:
        abort(404, "There is no such edition.")
    return edition


@bp.route("/editions")
@requires(Permission.READ)
def editions_list():
    page = page_number()
    specials = list(db.session.scalars(
        select(Edition).where(Edition.kind == EditionKind.SPECIAL.value)
        .order_by(Edition.id.desc()).offset((page - 1) * PAGE).limit(PAGE)))
    total = db.session.scalar(select(func.count(Edition.id)).where(
        Edition.kind == EditionKind.SPECIAL.value)) or 0
    if page > max(1, -(-total // PAGE)):
        abort(404, NO_SUCH_PAGE)
    rows = [(e, stats.counts(e.id)) for e in specials]
    return render_template("admin/editions.html", rows=rows, page=page,
                           pages=max(1, -(-total // PAGE)),
                           digests=stats.digest_days(utcnow(), DIGEST_DAYS) if page == 1 else [])


@bp.route("/editions/digests/<day>")
@requires(Permission.READ)
def digest_day(day: str):
    try:
        when = date.fromisoformat(day) if len(day) == 10 and day.isascii() else None
    except ValueError:
        when = None
    if when is None or when >= date.max:  # the day after 9999-12-31 does not exist
        abort(404, "A day is written YYYY-MM-DD.")
    start = datetime.combine(when, datetime.min.time(), tzinfo=UTC)
    page = page_number()
    query = select(Edition).where(Edition.kind == EditionKind.DIGEST.value,
                                  Edition.created_at >= start,
                                  Edition.created_at < start + timedelta(days=1))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if page > max(1, -(-total // 100)):
        abort(404, NO_SUCH_PAGE)
    found = list(db.session.scalars(query.order_by(Edition.slot_at, Edition.id)
                                    .offset((page - 1) * 100).limit(100)))
    return render_template("admin/digest_day.html", day=when, total=total, page=page,
                           pages=max(1, -(-total // 100)),
                           rows=[(e, stats.counts(e.id)) for e in found])


@bp.route("/editions/<int:edition_id>")
@requires(Permission.READ)
def edition(edition_id: int):
    edition = _edition_or_404(edition_id)
    return render_template(
        "admin/edition.html", edition=edition, progress=stats.progress(edition.id, utcnow()),
        funnel=stats.funnel(edition.id), links=stats.link_clicks(edition.id),
        failures=stats.failures(edition.id))


@bp.route("/editions/<int:edition_id>/progress.json")
@requires(Permission.READ)
def edition_progress(edition_id: int):
    edition = _edition_or_404(edition_id)
    return jsonify(status=edition.status, **stats.progress(edition.id, utcnow()))


@bp.route("/editions/<int:edition_id>/<any(pause, resume, cancel):action>", methods=["POST"])
@requires(Permission.SEND)
def edition_action(edition_id: int, action: str):
    edition = _edition_or_404(edition_id)
    stale = timedelta(seconds=current_app.config["START_STALE_SECONDS"])
    try:
        if action == "pause":
            editions.pause(edition.id)
            message = "Paused: workers stop within a second; resume goes on where it stopped."
        elif action == "resume":
            queued = sending.resume(edition.id, mail_setup(), stale_after=stale)
            message = "Sending again." + (f" {queued:,} deliveries queued." if queued else "")
        else:
            if request.form.get("confirm") != "yes":
                abort(400, "Cancelling needs the box ticked: it cannot be undone.")
            cancelled = sending.cancel(edition.id)
            message = f"Cancelled: {cancelled:,} deliveries not sent."
    except editions.EditionStateError as exc:
        db.session.rollback()
        flash(f"Nothing changed: {exc}.")
        return redirect(url_for("admin.edition", edition_id=edition.id), 303)
    record(f"{action}d edition" if action != "cancel" else "cancelled edition",
           f"edition {edition.id}", subject=edition.subject)
    flash(message)
    return redirect(url_for("admin.edition", edition_id=edition.id), 303)
