"""The paid tier for readers: the upgrade page, the hand-off to Stripe Checkout and the
Billing Portal, and the pages Checkout sends them back to.

Views parse the request and call ``newsletter.billing``; what a plan gives is decided there.
Every POST needs the reader signed in (a link from one of our emails) and a CSRF token;
each is rate-limited per IP, since each makes objects at Stripe.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, redirect, render_template, request, url_for

from newsletter.billing import access as billing_access
from newsletter.billing import checkout as billing_checkout
from newsletter.billing import entitlements
from newsletter.billing import service as billing_service
from newsletter.billing.gateway import BillingRefused, BillingUnavailable
from newsletter.db import utcnow
from newsletter.extensions import limiter
from newsletter.subscribers.models import Reader
from newsletter.web.public.reader_sessions import (
    current_reader,
    own_inbox_needed,
    signed_in_from_own_inbox,
)
from newsletter.web.public.readers import TOO_MANY, ip_limited
from newsletter.wiring import services

bp = Blueprint("billing", __name__)

UNAVAILABLE = ("Payments are unavailable right now. Nothing was charged and nothing changed; "
               "please try again in a few minutes.")
REFUSED = ("Stripe refused this request, so nothing was charged and nothing changed. Please "
           "try again; if it happens again, reply to one of our emails and we will sort it out.")
# The success page asks Stripe about the session on each GET: a person needs a few.
SUCCESS_LIMIT = "20/minute;200/hour"


@bp.after_request
def _private(response):
    """These pages speak of one reader's plan: never kept by a browser or a proxy."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _billing():
    return services().billing


def _page(status: int = 200, **context):
    billing = _billing()
    now = utcnow()
    reader = current_reader()
    prices = {}
    if billing.takes_payment:
        try:
            prices = billing.prices(now)
        except BillingUnavailable:
            prices = {}
    standing = billing_access.standing(reader, now) if reader is not None else None
    return render_template(
        "billing/upgrade.html", reader=reader, standing=standing, prices=prices,
        plans=[name for name in billing_service.PLANS if name in billing.settings.prices],
        takes_payment=billing.takes_payment, trial_days=billing.settings.trial_days,
        premium_topics=entitlements.premium_topics(), **context), status


@bp.get("/upgrade")
def upgrade():
    """What the paid plan gives and what it costs; the buttons to Checkout."""
    return _page(cancelled=request.args.get("cancelled") == "1")


def _to_stripe(make_url: Callable[[Reader], str]):
    """Send the reader to the Stripe page ``make_url`` makes for them (303: the browser
    follows with a GET), or say in a page why not."""
    try:
        url = make_url(current_reader())
    except billing_service.PaymentsOff:
        abort(404, "Paid subscriptions are not available on this site yet.")
    except (billing_service.CannotUpgrade, billing_service.NoCustomer) as exc:
        return _page(409, problem=str(exc))
    except BillingUnavailable:
        return _page(503, problem=UNAVAILABLE)
    except BillingRefused:
        return _page(502, problem=REFUSED)
    return redirect(url, code=303)


@bp.post("/billing/checkout")
@ip_limited
def checkout():
    if current_reader() is None:
        return _page(401, problem="Sign in with the link from one of our emails to upgrade.")
    return _to_stripe(lambda reader: billing_checkout.start_checkout(
        _billing(), reader, request.form.get("plan", ""), utcnow()))


@bp.post("/billing/portal")
@ip_limited
def portal():
    reader = current_reader()
    if reader is None:
        return _page(401, problem="Sign in with the link from one of our emails to manage "
                                  "your billing.")
    if not signed_in_from_own_inbox():
        # A link from a digest may have been forwarded: billing opens from a link we send
        # to the reader's own inbox now.
        return own_inbox_needed(reader, "manage your billing")
    return _to_stripe(lambda reader: billing_checkout.open_portal(_billing(), reader, utcnow()))


@bp.get("/billing/success")
@limiter.limit(SUCCESS_LIMIT, methods=["GET"], error_message=TOO_MANY)
def success():
    """Where Checkout sends the reader after paying. The reader's plan changes when Stripe
    says so (its webhook, or the session read here at once); until then the page says it is
    waiting and looks again by itself."""
    billing = _billing()
    if not billing.takes_payment:
        abort(404, "Paid subscriptions are not available on this site yet.")
    reader = current_reader()
    paying = False
    if reader is not None:
        session_id = request.args.get("session_id", "")[:255]
        if request.method == "GET" and session_id:  # not HEAD: Stripe is asked on GET only
            paying = billing_checkout.confirm_checkout(billing, reader, session_id, utcnow())
        else:
            paying = entitlements.reader_is_paying(reader, utcnow())
    tries = request.args.get("tries", "0")
    tries = int(tries) if tries.isascii() and tries.isdigit() and len(tries) < 3 else 0
    again = None
    if reader is not None and not paying and tries < 20:
        again = url_for("billing.success", session_id=request.args.get("session_id", "")[:255],
                        tries=tries + 1)
    return render_template("billing/success.html", reader=reader, paying=paying, again=again)
