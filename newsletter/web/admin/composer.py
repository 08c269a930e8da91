"""The composer: a special edition from Markdown and/or picked syntheses, its audience
with a live count, previews (desktop, mobile, text), a test send, and sending behind a
confirmation that states the number of recipients."""

from __future__ import annotations

from datetime import datetime

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from newsletter.accounts.roles import Permission
from newsletter.billing.entitlements import TIER_ALL, TIER_PAID, TIERS, edition_needs_payment
from newsletter.content import service as content
from newsletter.content.models import TOPIC_ORDER, Synthesis, Topic
from newsletter.db import db, utcnow
from newsletter.delivery import service as sending
from newsletter.editions import drafts
from newsletter.editions.audience import nobody_would_receive
from newsletter.editions.markdown import MAX_BYTES
from newsletter.editions.models import Edition, EditionKind, EditionStatus
from newsletter.editions.preview import PreviewError, preview_edition, send_edition_test
from newsletter.editions.service import EditionStateError
from newsletter.validation import InvalidInput, whole_number
from newsletter.web.admin import bp, record, requires
from newsletter.web.admin.editions import _edition_or_404
from newsletter.wiring import mail_setup

PICKABLE = 40
MAX_TOPICS = 100
PREVIEW_CSP = ("default-src 'none'; img-src * data:; style-src 'unsafe-inline'; "
               "frame-ancestors 'self'")


def _form() -> dict:
    """The composer's fields from the form, as the domain takes them (ids that are not
    whole numbers are dropped: they cannot name a synthesis)."""
    ids = [whole_number(v, 1, 2**62) for v in request.form.getlist("synthesis")]
    tier = request.form.get("tier", TIER_ALL)
    return {"subject": request.form.get("subject", ""),
            "preheader": request.form.get("preheader", ""),
            "markdown": request.form.get("markdown", "").replace("\r\n", "\n"),
            "synthesis_ids": [i for i in ids if i is not None],
            "topics": [t for t in request.form.getlist("topics") if t][:100],
            "tier": tier if tier in TIERS else "?"}


def _page(edition: Edition | None, fields: dict, errors=None, status: int = 200):
    topics = list(db.session.scalars(select(Topic).order_by(*TOPIC_ORDER)))
    pickable = content.latest_syntheses(PICKABLE)
    # Syntheses the draft already has stay on the list, however old, so saving keeps them.
    shown = {s.id for s in pickable}
    older = [i for i in fields.get("synthesis_ids", []) if i not in shown]
    if older:
        pickable = list(db.session.scalars(
            select(Synthesis).where(Synthesis.id.in_(older)))) + pickable
    count = sending.audience_size(edition) if edition is not None else None
    return render_template("admin/composer.html", edition=edition, fields=fields,
                           errors=errors or [], topics=topics, pickable=pickable,
                           count=count, tiers=(TIER_ALL, TIER_PAID)), status


def _fields_of(edition: Edition) -> dict:
    sections = (edition.content or {}).get("sections", [])
    return {"subject": edition.subject, "preheader": edition.preheader,
            "markdown": drafts.markdown_source(edition),
            "synthesis_ids": [i for s in sections for i in s.get("synthesis_ids", [])],
            "topics": edition.audience.get("topics", []),
            "tier": edition.audience.get("tier", TIER_ALL)}


def _draft_or_404(edition_id: int) -> Edition:
    edition = _edition_or_404(edition_id)
    if edition.kind != EditionKind.SPECIAL.value:
        abort(404, "Digests are written by the system, not in the composer.")
    return edition


@bp.route("/editions/new", methods=["GET", "POST"])
@requires(Permission.COMPOSE)
def compose():
    if request.method != "POST":
        return _page(None, {"subject": "", "preheader": "", "markdown": "",
                            "synthesis_ids": [], "topics": [], "tier": TIER_ALL})
    return _save(None)


@bp.route("/editions/<int:edition_id>/edit", methods=["GET", "POST"])
@requires(Permission.COMPOSE)
def edit(edition_id: int):
    edition = _draft_or_404(edition_id)
    if request.method != "POST":
        if edition.status != EditionStatus.DRAFT.value:
            return redirect(url_for("admin.edition", edition_id=edition.id))
        return _page(edition, _fields_of(edition))
    return _save(edition)


def _save(edition: Edition | None):
    if request.content_length and request.content_length > 2 * MAX_BYTES:
        abort(413, "This edition is too large to save.")
    fields = _form()
    try:
        saved = drafts.save_draft(edition.id if edition else None, **fields)
    except InvalidInput as exc:
        db.session.rollback()
        return _page(edition, fields, exc.errors, 400)
    except EditionStateError as exc:
        flash(f"Not saved: {exc}.")
        return redirect(url_for("admin.edition", edition_id=edition.id), 303)
    record("saved draft", f"edition {saved.id}", subject=saved.subject)
    flash("Draft saved.")
    return redirect(url_for("admin.edit", edition_id=saved.id), 303)


@bp.route("/audience-count.json")
@requires(Permission.READ)
def audience_count():
    """The live recipient count while an editor picks topics and the tier."""
    # Each topic once, and all of them: counting only the first hundred named would
    # answer for another audience than the one asked about.
    slugs = list(dict.fromkeys(s for s in request.args.getlist("topics") if s))
    if len(slugs) > MAX_TOPICS:
        abort(400, f"At most {MAX_TOPICS} topics.")
    tier = request.args.get("tier", TIER_ALL)
    if tier not in TIERS:
        abort(400, "The tier is all or paid.")
    known = set(db.session.scalars(select(Topic.slug).where(Topic.slug.in_(slugs))))
    if set(slugs) - known:
        abort(400, "Unknown topic.")
    probe = Edition(kind=EditionKind.SPECIAL.value, audience={"topics": slugs, "tier": tier})
    return jsonify(count=sending.audience_size(probe))


@bp.route("/editions/<int:edition_id>/preview.<any(html, txt):fmt>")
@requires(Permission.READ)
def preview(edition_id: int, fmt: str):
    edition = _draft_or_404(edition_id)
    html, text = preview_edition(edition, mail_setup(), g.admin.email)
    if fmt == "txt":
        return Response(text, mimetype="text/plain")
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response


@bp.route("/editions/<int:edition_id>/test", methods=["POST"])
@requires(Permission.COMPOSE)
def send_test(edition_id: int):
    edition = _draft_or_404(edition_id)
    to = request.form.get("to", "").strip() or g.admin.email
    try:
        address, _ = send_edition_test(edition, to, mail_setup())
    except PreviewError as exc:
        flash(f"The test was not sent: {exc}")
    else:
        record("sent a test", f"edition {edition.id}", to=address)
        flash(f"A test was sent to {address}.")
    return redirect(url_for("admin.edit", edition_id=edition.id), 303)


def _no_recipients_reason(edition: Edition) -> str:
    reason = nobody_would_receive(edition.audience.get("topics", []),
                                  edition_needs_payment(edition.audience, edition.content))
    return f"{reason[0].upper()}{reason[1:]}. Change the audience first."


def _confirm_page(edition: Edition, count: int, problem: str | None = None, status=200):
    return render_template("admin/send.html", edition=edition, count=count, problem=problem,
                           reason=_no_recipients_reason(edition) if count == 0 else None,
                           premium=edition_needs_payment(edition.audience, edition.content),
                           now=utcnow()), status


@bp.route("/editions/<int:edition_id>/send", methods=["GET", "POST"])
@requires(Permission.SEND)
def send(edition_id: int):
    edition = _draft_or_404(edition_id)
    if edition.status != EditionStatus.DRAFT.value:
        flash(f"This edition is {edition.status}; only a draft can be sent from here.")
        return redirect(url_for("admin.edition", edition_id=edition.id), 303)
    count = sending.audience_size(edition)
    if request.method != "POST":
        return _confirm_page(edition, count, status=200 if count else 400)
    if count == 0:
        return _confirm_page(edition, count, status=400)
    expected = whole_number(request.form.get("expected", ""), 0, 10**9)
    if expected != count:
        return _confirm_page(edition, count, problem=(
            f"The audience changed since you looked: it is now {count:,} "
            f"reader{'s' if count != 1 else ''}. Check and confirm again."), status=409)
    when = request.form.get("when", "now")
    if when not in ("now", "later"):  # never read an unclear choice as "send now"
        return _confirm_page(edition, count, problem=(
            "Send now or schedule for a later time: choose one."), status=400)
    if when == "later":
        send_at = _parse_local(request.form.get("send_at", ""),
                               request.form.get("offset_minutes", ""))
        if send_at is None or send_at <= utcnow():
            return _confirm_page(edition, count, problem=(
                "Give a time in the future to schedule it."), status=400)
        try:
            drafts.schedule(edition.id, send_at)
        except EditionStateError as exc:
            flash(f"Not scheduled: {exc}.")
            return redirect(url_for("admin.edition", edition_id=edition.id), 303)
        record("scheduled edition", f"edition {edition.id}", recipients=count,
               send_at=send_at.isoformat())
        flash(f"Scheduled for {send_at:%Y-%m-%d %H:%M} UTC, to about {_readers(count)}.")
        return redirect(url_for("admin.edition", edition_id=edition.id), 303)
    try:
        queued = sending.start_sending(edition.id, mail_setup(), stale_after=_stale())
    except EditionStateError as exc:
        db.session.rollback()
        flash(f"Not sent: {exc}.")
        return redirect(url_for("admin.edition", edition_id=edition.id), 303)
    record("sent edition", f"edition {edition.id}", recipients=queued)
    flash(f"Sending to {_readers(queued)}.")
    return redirect(url_for("admin.edition", edition_id=edition.id), 303)


def _readers(n: int) -> str:
    return f"{n:,} reader{'s' if n != 1 else ''}"


def _stale():
    from datetime import timedelta

    return timedelta(seconds=current_app.config["START_STALE_SECONDS"])


def _parse_local(value: str, offset: str) -> datetime | None:
    """A ``datetime-local`` value and the browser's offset from UTC in minutes (what
    ``Date.getTimezoneOffset`` gives; UTC without JavaScript) as an aware UTC time."""
    from datetime import UTC, timedelta

    try:
        local = datetime.fromisoformat(value) if value.isascii() and len(value) <= 19 else None
    except ValueError:
        return None
    if local is None or local.tzinfo is not None or not 2000 <= local.year <= 9000:
        return None
    minutes = 0
    if offset:
        sign = -1 if offset.startswith("-") else 1
        number = whole_number(offset.lstrip("-+"), 0, 14 * 60)
        if number is None:
            return None
        minutes = sign * number
    return (local + timedelta(minutes=minutes)).replace(tzinfo=UTC)
