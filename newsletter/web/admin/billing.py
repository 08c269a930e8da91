"""The paid tier in the admin area: paying readers and the revenue figures, and
complimentary access granted or revoked by an owner (audited)."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from newsletter.accounts.roles import Permission
from newsletter.billing import access as billing_access
from newsletter.billing import stats as billing_stats
from newsletter.db import db, utcnow
from newsletter.subscribers.models import Reader, ReaderStatus
from newsletter.web.admin import bp, record, requires
from newsletter.wiring import services


@bp.route("/billing")
@requires(Permission.READ)
def billing_page():
    now = utcnow()
    return render_template("admin/billing.html", figures=billing_stats.figures(now),
                           paying=billing_stats.paying_readers(now),
                           takes_payment=services().billing.takes_payment)


@bp.route("/readers/<int:reader_id>/comp", methods=["POST"])
@requires(Permission.COMP)
def reader_comp(reader_id: int):
    reader = db.session.get(Reader, reader_id)
    if reader is None:
        abort(404, "There is no such reader.")
    if reader.status == ReaderStatus.ERASED.value:
        abort(409, "This reader was erased: nothing of theirs can change any more.")
    action = request.form.get("action")
    if action not in ("grant", "revoke"):
        abort(400, "Grant or revoke complimentary access.")
    note = " ".join(request.form.get("note", "").split())[:200]
    changed = billing_access.set_comp(reader, action == "grant", note=note,
                                       by=g.admin.email, now=utcnow())
    if changed:
        record("granted complimentary access" if action == "grant"
               else "revoked complimentary access", f"reader {reader.id}", note=note)
        flash("Complimentary access granted: the reader has the paid plan."
              if action == "grant" else
              "Complimentary access revoked." + (
                  " The reader still pays through Stripe." if reader.plan == "paid" else
                  " The reader is on the free plan."))
    else:
        db.session.rollback()
        flash("Nothing changed.")
    return redirect(url_for("admin.reader_page", reader_id=reader.id), code=303)
