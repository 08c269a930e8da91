"""Reader pages: subscribe, confirm, preference centre, one-click unsubscribe, privacy.

Views parse the request and call ``newsletter.subscribers``; they never decide policy.
"""

from __future__ import annotations

import json
import time
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
from flask_login import UserMixin, current_user, login_user, logout_user

from newsletter.billing import access as billing_access
from newsletter.billing import entitlements
from newsletter.billing import privacy as billing_privacy
from newsletter.billing.gateway import BillingUnavailable
from newsletter.db import db, utcnow
from newsletter.editions import next_digest
from newsletter.extensions import limiter
from newsletter.subscribers import privacy, service
from newsletter.subscribers import rejoin as topic_rejoin
from newsletter.subscribers.models import Reader, ReaderStatus
from newsletter.subscribers.preferences import WEEKDAYS, move_in_order
from newsletter.subscribers.tokens import Purpose, TokenExpired, TokenInvalid
from newsletter.validation import FieldError, InvalidInput
from newsletter.web.actors import request_actor
from newsletter.web.public import preference_form as choices
from newsletter.wiring import reader_services, services

bp = Blueprint("readers", __name__)
READER_PREFIX = "reader:"


# -- who is signed in ----------------------------------------------------------------------

class ReaderLogin(UserMixin):
    """A reader signed in through a link (admins are ``web.logins.AdminLogin``)."""

    def __init__(self, reader: Reader):
        self.reader = reader

    def get_id(self) -> str:
        return f"{READER_PREFIX}{self.reader.id}"


def load_reader_login(user_id: str):
    """The reader behind a session id ``reader:<id>`` (see ``web.logins``), or None."""
    number = user_id[len(READER_PREFIX):]
    if not user_id.startswith(READER_PREFIX) or not (number.isascii() and number.isdigit()):
        return None
    signed_in_at = session.get("reader_signed_in_at", 0)
    if time.time() - signed_in_at > current_app.config["READER_SESSION_MINUTES"] * 60:
        return None
    reader = service.get_reader(int(user_id[len(READER_PREFIX):]))
    return ReaderLogin(reader) if reader is not None else None


def _sign_in(reader: Reader, *, from_list_mail: bool = False) -> None:
    """Sign the reader in. ``from_list_mail``: through a link in a digest or an edition —
    mail people forward — which opens the preference centre but not billing or erasure
    (:func:`signed_in_from_own_inbox`)."""
    session.clear()
    login_user(ReaderLogin(reader))
    session["reader_signed_in_at"] = time.time()
    session["reader_link"] = "list" if from_list_mail else "account"


def signed_in_from_own_inbox() -> bool:
    """Whether the reader came in through a link sent to them alone (a confirmation, a
    sign-in link they asked for), not one in list mail that may have been forwarded."""
    return session.get("reader_link") == "account"


def send_fresh_link(reader: Reader) -> None:
    """Email the reader a sign-in link of their own (rate-limited by the caller's route)."""
    if reader.email:
        service.send_manage_link(reader_services(), reader.email)


def current_reader() -> Reader | None:
    """The reader signed in through a link, or None (a visitor, or an admin)."""
    if current_user.is_authenticated and isinstance(current_user, ReaderLogin):
        return current_user.reader
    return None




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
    _sign_in(reader)
    return redirect(url_for("readers.preferences", welcome=1), code=303)


@bp.get("/manage/<token>")
def manage(token: str):
    try:
        reader, link = service.reader_and_link(reader_services(), Purpose.MANAGE, token)
    except TokenInvalid as exc:
        return link_problem(exc)
    _sign_in(reader, from_list_mail=bool(link.get("l")))
    return redirect(url_for("readers.preferences"), code=303)


# -- preference centre ---------------------------------------------------------------------

def _preferences_page(reader: Reader, errors: InvalidInput | None = None, saved=None,
                      status: int = 200):
    billing = services().billing
    offered = reader_services().offered_topics(reader)
    now = utcnow()
    fmt = choices.hour_format(request.accept_languages)
    message = None
    if saved is not None and not saved.get("rejoined"):
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
    # Post/redirect/get: a reload of the answer must not send the form again.
    session["preferences_saved"] = {"changes": changes, "moved": moved}
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


@bp.route("/email-change/<token>", methods=["GET", "POST"])
def email_change(token: str):
    services = reader_services()
    try:
        payload = services.tokens.read(Purpose.EMAIL_CHANGE, token)
    except TokenInvalid as exc:
        return link_problem(exc)
    if request.method != "POST":  # GET and HEAD (Flask answers HEAD with the GET view)
        return render_template("readers/email_change.html", token=token,
                               new_email=payload.get("e"))
    try:
        reader = service.confirm_email_change(services, token, request_actor("email-link"))
    except TokenInvalid as exc:
        return link_problem(exc)
    _sign_in(reader)
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
        send_fresh_link(reader)
        return render_template("readers/fresh_link.html", reader=reader,
                               what="delete your data"), 403
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
