"""Readers in the admin area: the search, a reader's page with its actions (topics,
unsubscribe, suppress, lift, erase), the CSV export of a search, and the suppression list.

Every action is a POST behind its role; the audit log names readers by id only, so an
erased reader's address does not live on there.
"""

from __future__ import annotations

from datetime import date

from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import select

from newsletter.accounts.roles import Permission
from newsletter.billing import access as billing_access
from newsletter.billing.gateway import BillingUnavailable
from newsletter.db import db, utcnow
from newsletter.delivery import reader_history
from newsletter.subscribers import csv_export, privacy, reader_admin, search, service
from newsletter.subscribers import suppression_list as suppressions
from newsletter.subscribers.models import ConsentEvent, Reader, ReaderStatus
from newsletter.subscribers.preferences import WEEKDAYS
from newsletter.validation import InvalidInput
from newsletter.web.actors import request_actor
from newsletter.web.admin import bp, record, requires
from newsletter.web.pagination import NO_SUCH_PAGE, page_number
from newsletter.wiring import reader_services

HISTORY = 100


def _filter() -> search.ReaderFilter:
    try:
        return search.make_filter(request.args.get("q", ""), request.args.get("status", ""),
                                  request.args.get("topic", ""))
    except search.BadFilter as exc:
        abort(400, str(exc))


def _filter_args(found: search.ReaderFilter) -> dict:
    return {"q": found.query or None, "status": found.status or None,
            "topic": found.topic.slug if found.topic else None}


@bp.route("/readers")
@requires(Permission.READ)
def readers_list():
    found = _filter()
    page = page_number()
    result = search.search(found, page)
    if page > result.pages:
        abort(404, NO_SUCH_PAGE)
    return render_template("admin/readers.html", found=found, result=result, page=page,
                           counts=search.status_counts(), args=_filter_args(found),
                           statuses=search.STATUSES,
                           topics=reader_services().offered_topics())


@bp.route("/readers/export.csv")
@requires(Permission.READERS)
def readers_export():
    found = _filter()
    if request.method == "GET":  # not HEAD: nothing is sent then, nor any query run
        record("exported readers", "readers", **_filter_args(found))
        response = Response(stream_with_context(csv_export.export_readers(found)),
                            mimetype="text/csv")
    else:
        response = Response(mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="readers-{date.today().isoformat()}.csv"')
    return response


def _reader_or_404(reader_id: int) -> Reader:
    reader = db.session.get(Reader, reader_id)
    if reader is None:
        abort(404, "There is no such reader.")
    return reader


def _reader_page(reader: Reader, errors: dict | None = None, status: int = 200):
    services = reader_services()
    events = list(db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.reader_id == reader.id)
        .order_by(ConsentEvent.occurred_at.desc(), ConsentEvent.id.desc()).limit(HISTORY)))
    entry = suppressions.entry_for(services, reader.email) if reader.email else None
    return render_template(
        "admin/reader.html", reader=reader, events=events, suppression=entry,
        liftable=entry is not None and entry.reason in suppressions.LIFTABLE,
        deliveries=reader_history.deliveries(reader.id),
        activity=reader_history.activity(reader.id),
        totals=reader_history.totals(reader.id), topics=services.offered_topics(reader),
        standing=billing_access.standing(reader, utcnow()),
        weekdays=WEEKDAYS, errors=errors or {}), status


@bp.route("/readers/<int:reader_id>")
@requires(Permission.READ)
def reader_page(reader_id: int):
    return _reader_page(_reader_or_404(reader_id))


def _active_or_409(reader: Reader) -> None:
    if reader.status == ReaderStatus.ERASED.value:
        abort(409, "This reader was erased: nothing of theirs can change any more.")


def _back(reader: Reader):
    return redirect(url_for("admin.reader_page", reader_id=reader.id), 303)


@bp.route("/readers/<int:reader_id>/topics", methods=["POST"])
@requires(Permission.READERS)
def reader_topics(reader_id: int):
    reader = _reader_or_404(reader_id)
    _active_or_409(reader)
    try:
        change = reader_admin.change_topics(reader_services(), reader,
                                            request.form.getlist("topic")[:100],
                                            request_actor("admin"))
    except InvalidInput as exc:
        db.session.rollback()
        return _reader_page(reader, {"topics": "; ".join(e.message for e in exc.errors)}, 400)
    if change is None:
        flash("The topics were already these: nothing changed.")
    else:
        record("changed reader topics", f"reader {reader.id}", before=change[0],
               after=change[1])
        flash("Topics saved.")
    return _back(reader)


@bp.route("/readers/<int:reader_id>/unsubscribe", methods=["POST"])
@requires(Permission.READERS)
def reader_unsubscribe(reader_id: int):
    reader = _reader_or_404(reader_id)
    _active_or_409(reader)
    if service.unsubscribe(reader_services(), reader, request_actor("admin")):
        record("unsubscribed reader", f"reader {reader.id}")
        flash("Unsubscribed: no list mail goes to this address until the person subscribes "
              "and confirms again.")
    else:
        flash("This reader had unsubscribed already: nothing changed.")
    return _back(reader)


@bp.route("/readers/<int:reader_id>/suppress", methods=["POST"])
@requires(Permission.READERS)
def reader_suppress(reader_id: int):
    reader = _reader_or_404(reader_id)
    _active_or_409(reader)
    try:
        _, added = suppressions.add(reader_services(), reader.email,
                                    request_actor("admin"), request.form.get("note", ""))
    except InvalidInput as exc:
        db.session.rollback()
        return _reader_page(reader, {"suppress": "; ".join(e.message for e in exc.errors)},
                            400)
    if added:
        record("suppressed reader", f"reader {reader.id}",
               note=request.form.get("note", "")[:200])
        flash("Suppressed: no list mail goes to this address.")
    else:
        flash("This address was on the suppression list already: nothing changed.")
    return _back(reader)


@bp.route("/readers/<int:reader_id>/lift", methods=["POST"])
@requires(Permission.READERS)
def reader_lift(reader_id: int):
    reader = _reader_or_404(reader_id)
    _active_or_409(reader)
    entry = suppressions.entry_for(reader_services(), reader.email)
    if entry is None:
        flash("This address is not suppressed: nothing changed.")
        return _back(reader)
    try:
        lifted = suppressions.lift(reader_services(), entry.id, request_actor("admin"))
    except suppressions.NotLiftable as exc:
        abort(409, str(exc))
    record("lifted suppression", f"reader {reader.id}", reason=lifted.reason)
    flash("The suppression is lifted." + (
        "" if reader.status == ReaderStatus.ACTIVE.value
        else f" The reader is still {reader.status}: they get no list mail."))
    return _back(reader)


@bp.route("/readers/<int:reader_id>/erase", methods=["POST"])
@requires(Permission.ERASE)
def reader_erase(reader_id: int):
    reader = _reader_or_404(reader_id)
    _active_or_409(reader)
    typed = request.form.get("confirm_email", "").strip().lower()
    if not reader.email or typed != reader.email:
        return _reader_page(reader, {"erase": "Type the reader's address exactly to erase "
                                              "them: nothing was erased."}, 400)
    try:
        privacy.erase_reader(reader_services(), reader, request_actor("admin"))
    except BillingUnavailable:
        db.session.rollback()
        return _reader_page(reader, {"erase": "The reader's paid subscription could not be "
                                              "cancelled at Stripe just now: nothing was "
                                              "erased. Try again in a few minutes."}, 503)
    record("erased reader", f"reader {reader.id}")
    flash("Erased: the address and everything personal are gone; the address is kept only "
          "as a keyed hash, so no import can bring it back.")
    return _back(reader)


# -- the suppression list ---------------------------------------------------------------

@bp.route("/readers/suppressions")
@requires(Permission.READ)
def suppressions_list(errors: dict | None = None, status: int = 200, email: str = ""):
    page = page_number()
    reason = request.args.get("reason", "")
    if reason and reason not in suppressions.REASONS:
        abort(400, f"The reason is one of {', '.join(suppressions.REASONS)}.")
    rows, total = suppressions.entries(page, reason)
    pages = max(1, -(-total // suppressions.PAGE))
    if page > pages:
        abort(404, NO_SUCH_PAGE)
    return render_template("admin/suppressions.html", rows=rows, total=total, page=page,
                           pages=pages, reason=reason, reasons=suppressions.REASONS,
                           errors=errors or {}, email=email), status


@bp.route("/readers/suppressions/add", methods=["POST"])
@requires(Permission.READERS)
def suppression_add():
    raw = request.form.get("email", "")
    try:
        _, added = suppressions.add(reader_services(), raw, request_actor("admin"),
                                    request.form.get("note", ""))
    except InvalidInput as exc:
        db.session.rollback()
        return suppressions_list({e.field: e.message for e in exc.errors}, 400,
                                 raw[:320] if isinstance(raw, str) else "")
    if added:
        record("suppressed address", "suppression list", note=request.form.get("note", "")[:200])
        flash("Added to the suppression list: no list mail goes to this address.")
    else:
        flash("This address was on the suppression list already: nothing changed.")
    return redirect(url_for("admin.suppressions_list"), 303)


@bp.route("/readers/suppressions/<int:suppression_id>/lift", methods=["POST"])
@requires(Permission.READERS)
def suppression_lift(suppression_id: int):
    try:
        lifted = suppressions.lift(reader_services(), suppression_id, request_actor("admin"))
    except LookupError as exc:
        abort(404, str(exc))
    except suppressions.NotLiftable as exc:
        abort(409, str(exc))
    record("lifted suppression", f"suppression {lifted.id}", reason=lifted.reason,
           reader=lifted.reader_id)
    flash("The suppression is lifted.")
    return redirect(url_for("admin.suppressions_list"), 303)
