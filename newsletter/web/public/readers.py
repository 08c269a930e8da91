"""Reader pages: subscribe, confirm, preference centre, one-click unsubscribe, privacy.

Views parse the request and call ``newsletter.subscribers``; they never decide policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import logout_user

from newsletter.billing import access as billing_access
from newsletter.billing import entitlements
from newsletter.billing import privacy as billing_privacy
from newsletter.billing.gateway import BillingUnavailable
from newsletter.db import db, utcnow
from newsletter.editions import next_digest
from newsletter.extensions import limiter
from newsletter.subscribers import address_change, privacy, service
from newsletter.subscribers import rejoin as topic_rejoin
from newsletter.subscribers.models import Reader, ReaderStatus
from newsletter.subscribers.preferences import WEEKDAYS, move_in_order
from newsletter.subscribers.tokens import Purpose, TokenExpired, TokenInvalid
from newsletter.validation import FieldError, InvalidInput
from newsletter.web.actors import request_actor
from newsletter.web.public import preference_form as choices
from newsletter.web.public.reader_sessions import (
    LIST_MAIL,
    NEW_ADDRESS,
    OWN_INBOX,
    current_reader,
    own_inbox_needed,
    send_fresh_link,
    sign_in,
    signed_in_from_own_inbox,
)
from newsletter.wiring import reader_services, services

bp = Blueprint("readers", __name__)


@bp.after_request
def _private(response):
    """Reader pages carry a reader's data or links: never kept by a browser or a proxy."""
    response.headers["Cache-Control"] = "no-store"
    return response


# -- rate limits ---------------------------------------------------------------------------

def _address_key() -> str:
    return "addr:" + (request.form.get("email") or "").strip().lower()[:320]


def _ip_limit() -> str:
    return current_app.config["SUBSCRIBE_LIMIT_PER_IP"]


def _address_limit() -> str:
    return current_app.config["SUBSCRIBE_LIMIT_PER_ADDRESS"]


TOO_MANY = "Too many requests from here. Please wait a few minutes, then try again."
_post_only = {"methods": ["POST"]}
ip_limited = limiter.limit(_ip_limit, error_message=TOO_MANY, **_post_only)
address_limited = limiter.limit(_address_limit, key_func=_address_key,
                                error_message=TOO_MANY, **_post_only)


def link_problem(exc: TokenInvalid, status: int = 400):
    expired = isinstance(exc, TokenExpired)
    return render_template("readers/link_problem.html", expired=expired,
                           message=str(exc)), status


# -- subscribe and confirm -----------------------------------------------------------------

@bp.route("/subscribe", methods=["GET", "POST"])
@ip_limited
@address_limited
def subscribe():
    topics = reader_services().offered_topics()
    if request.method != "POST":  # GET and HEAD (Flask answers HEAD with the GET view)
        chosen = {request.args.get("topic", "")}
        return render_template("readers/subscribe.html", topics_available=topics,
                               chosen=chosen, errors=None, email="")
    form = request.form
    if form.get("website"):  # the honeypot: people never see this field
        return render_template("readers/subscribe_sent.html")
    try:
        service.request_subscription(
            reader_services(), form.get("email", ""), form.getlist("topic"),
            request_actor("form"), timezone=form.get("timezone", "UTC")[:64],
            first_name=form.get("first_name") or None,
        )
    except InvalidInput as exc:
        return render_template("readers/subscribe.html", topics_available=topics,
                               chosen=set(form.getlist("topic")), errors=exc,
                               email=form.get("email", "")[:320],
                               first_name=form.get("first_name", "")[:60]), 400
    return render_template("readers/subscribe_sent.html")


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    services = reader_services()
    try:
        payload = services.tokens.read(Purpose.CONFIRM, token)
    except TokenInvalid as exc:
        return link_problem(exc)
    if request.method != "POST":  # GET and HEAD (Flask answers HEAD with the GET view)
        # A button, not an action: mail scanners follow GET links and must not subscribe.
        reader = service.get_reader(payload["r"])
        return render_template("readers/confirm.html", token=token, reader=reader)
    try:
        reader = service.confirm_subscription(services, token, request_actor("email-link"))
    except TokenInvalid as exc:
        return link_problem(exc)
    sign_in(reader)
    return redirect(url_for("readers.preferences", welcome=1), code=303)


@bp.get("/manage/<token>")
def manage(token: str):
    try:
        reader, link = service.reader_and_link(reader_services(), Purpose.MANAGE, token)
    except TokenInvalid as exc:
        return link_problem(exc)
    sign_in(reader, LIST_MAIL if link.get("l") else OWN_INBOX)
    return redirect(url_for("readers.preferences"), code=303)


# -- preference centre ---------------------------------------------------------------------

def _preferences_page(reader: Reader, errors: InvalidInput | None = None, saved=None,
                      status: int = 200):
    billing = services().billing
    offered = reader_services().offered_topics(reader)
    now = utcnow()
    fmt = choices.hour_format(request.accept_languages)
    message = None
    notice_only = saved is not None and not saved.get("changes") and (
        saved.get("address_link") or saved.get("address_back"))
    if saved is not None and not saved.get("rejoined") and not notice_only:
        message = choices.saved_message(saved.get("changes", {}),
                                        {topic.slug: topic for topic in offered}, fmt,
                                        saved.get("moved"))
    return render_template(
        "readers/preferences.html", reader=reader, errors=errors, saved=message,
        rows=choices.ordered_topics(reader, offered), weekdays=WEEKDAYS,
        locked_topics=[topic for topic in entitlements.premium_topics()
                       if topic not in offered],
        standing=billing_access.standing(reader, now),
        takes_payment=billing.takes_payment,
        zone_groups=choices.zone_groups(now), times=choices.time_choices(
            reader.delivery_minute, fmt),
        pauses=choices.pause_choices(date.today(), reader.paused_until),
        pause_state=choices.pause_state(reader, date.today()),
        next_digest=next_digest.sentence(reader, now, fmt),
        welcome=bool(request.args.get("welcome")),
        rejoined=saved.get("rejoined") if saved else None,
        address_link=saved.get("address_link") if saved else None,
        address_back=saved.get("address_back") if saved else None,
        own_inbox=signed_in_from_own_inbox(),
        field_labels=choices.FIELD_LABELS,
        unsubscribe_url=reader_services().mailer.links.unsubscribe(reader.id),
    ), status


@bp.route("/preferences", methods=["GET", "POST"])
def preferences():
    reader = current_reader()
    if reader is None:
        return render_template("readers/request_link.html", errors=None), 200
    if request.method != "POST":  # GET and HEAD (Flask answers HEAD with the GET view)
        return _preferences_page(reader, saved=session.pop("preferences_saved", None))
    if reader.status != ReaderStatus.ACTIVE.value:
        abort(409, "You are not subscribed. Subscribe again to choose preferences.")
    form = request.form.to_dict(flat=False)
    address_link = None
    if any(value.strip() for value in form.get("new_email") or []) \
            and not signed_in_from_own_inbox():
        # A forwarded link must not move the account: the rest is saved, and the link to
        # change the address goes to the current one.
        del form["new_email"]
        address_link = reader.email
    moved = None
    move = request.form.get("move")
    if move:  # an up/down button of the topic list (without JavaScript): save, and move
        form["order"], moved = move_in_order(form.get("order") or [], move[:100],
                                             form.get("topic") or [])
    try:
        changes = service.update_preferences(reader_services(), reader, form,
                                             request_actor("preferences"), date.today())
    except InvalidInput as exc:
        return _preferences_page(reader, errors=exc, status=400)
    if address_link:
        send_fresh_link(reader)
    # Post/redirect/get: a reload of the answer must not send the form again.
    session["preferences_saved"] = {"changes": changes, "moved": moved,
                                    "address_link": address_link}
    # After an arrow, back to that topic's row (keyboard users go on from there).
    return redirect(url_for("readers.preferences",
                            _anchor=f"topic-{moved}" if moved else ("topics" if move else None)),
                    code=303)


@bp.post("/preferences/rejoin")
def rejoin():
    """Undo leaving a topic, from the saved message that named it."""
    reader = current_reader()
    if reader is None:
        abort(401, "Follow the link in one of our emails to change your topics.")
    try:
        topic = topic_rejoin.rejoin_topic(reader_services(), reader,
                                     request.form.get("topic", "")[:80],
                                     request_actor("preferences"))
    except InvalidInput as exc:
        return _preferences_page(reader, errors=exc, status=400)
    session["preferences_saved"] = {"changes": {}, "rejoined": topic.name}
    return redirect(url_for("readers.preferences"), code=303)


@bp.route("/preferences/link", methods=["GET", "POST"])
@ip_limited
@address_limited
def request_link():
    if request.method != "POST":  # GET and HEAD (Flask answers HEAD with the GET view)
        return render_template("readers/request_link.html", errors=None)
    try:
        service.send_manage_link(reader_services(), request.form.get("email", ""))
    except InvalidInput as exc:
        return render_template("readers/request_link.html", errors=exc), 400
    return render_template("readers/link_sent.html")


def _by_its_button(purpose: Purpose, token: str, template: str, shown: dict[str, str],
                   act: Callable[..., Reader]) -> Reader | tuple[str, int] | str:
    """A link from an email that acts only on its page's button: GET and HEAD show
    ``template`` with ``shown`` (template name → payload key), because mail scanners follow
    links; a POST calls ``act(services, token, actor)`` and returns the reader. A bad link
    gets the page saying why."""
    services = reader_services()
    try:
        payload = services.tokens.read(purpose, token)
    except TokenInvalid as exc:
        return link_problem(exc)
    if request.method != "POST":  # GET and HEAD (Flask answers HEAD with the GET view)
        return render_template(template, token=token,
                               **{name: payload.get(key) for name, key in shown.items()})
    try:
        return act(services, token, request_actor("email-link"))
    except TokenInvalid as exc:
        return link_problem(exc)


@bp.route("/email-change/<token>", methods=["GET", "POST"])
def email_change(token: str):
    reader = _by_its_button(Purpose.EMAIL_CHANGE, token, "readers/email_change.html",
                            {"new_email": "e"}, address_change.confirm_email_change)
    if not isinstance(reader, Reader):
        return reader
    # The new inbox is proved, not the account: billing, export and erasure still need a
    # link sent to it afresh.
    sign_in(reader, NEW_ADDRESS)
    return redirect(url_for("readers.preferences"), code=303)


@bp.route("/email-change/undo/<token>", methods=["GET", "POST"])
def email_undo(token: str):
    """From the email the address left gets: put it back."""
    reader = _by_its_button(Purpose.EMAIL_UNDO, token, "readers/email_undo.html",
                            {"old_email": "o"}, address_change.undo_email_change)
    if not isinstance(reader, Reader):
        return reader
    sign_in(reader, OWN_INBOX)  # the link went to this address alone
    session["preferences_saved"] = {"changes": {}, "address_back": reader.email}
    return redirect(url_for("readers.preferences"), code=303)


@bp.post("/preferences/signout")
def sign_out():
    logout_user()
    session.clear()
    return redirect(url_for("public.home"), code=303)


# -- privacy -------------------------------------------------------------------------------

@bp.get("/preferences/export")
def export():
    reader = current_reader()
    if reader is None:
        abort(401, "Follow the link in one of our emails to download your data.")
    from newsletter.delivery.history import sent_to_reader

    if not signed_in_from_own_inbox():
        return own_inbox_needed(reader, "download your data")
    data = privacy.export_reader(reader)
    data["emails_sent"] = sent_to_reader(reader.id)
    data["billing"] = billing_privacy.export(reader, utcnow())
    body = json.dumps(data, indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": 'attachment; filename="my-newsletter-data.json"',
        "Cache-Control": "no-store",
    })


@bp.post("/preferences/delete")
@ip_limited
def erase():
    reader = current_reader()
    if reader is None:
        abort(401, "Follow the link in one of our emails to delete your data.")
    if request.form.get("confirm") != "erase":
        problem = FieldError("confirm", "Tick the box to confirm that everything is erased.")
        return _preferences_page(reader, errors=InvalidInput([problem]), status=400)
    if not signed_in_from_own_inbox():
        return own_inbox_needed(reader, "delete your data")
    try:
        privacy.erase_reader(reader_services(), reader, request_actor("preferences"))
    except BillingUnavailable:
        db.session.rollback()
        problem = FieldError("confirm", "We could not cancel your paid subscription just now, "
                                        "so nothing was erased. Please try again in a few "
                                        "minutes.")
        return _preferences_page(reader, errors=InvalidInput([problem]), status=503)
    logout_user()
    session.clear()
    return render_template("readers/erased.html")
