"""Signing in and out of the admin area, the second factor, and the admin's own account."""

from __future__ import annotations

import time

from flask import (
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import login_user, logout_user

from newsletter.accounts import admins, audit
from newsletter.extensions import limiter
from newsletter.web.admin import bp, record, safe_next
from newsletter.web.logins import AdminLogin, browser_fingerprint, current_admin

CODE_WAIT_SECONDS = 300
REFUSED = "That address and password do not match an admin account."
WRONG_CODE = "That code is not right, or it was used already. Try the next one."


def _login_limit() -> str:
    return current_app.config["ADMIN_LOGIN_LIMIT_PER_IP"]


login_limited = limiter.limit(_login_limit, methods=["POST"],
                              error_message="Too many sign-in attempts from here. "
                                            "Wait a few minutes, then try again.")


def _locked(exc: admins.LockedOut):
    minutes = max(1, round((exc.until.timestamp() - time.time()) / 60))
    return render_template(
        "admin/login.html", email=request.form.get("email", ""),
        error=f"Too many wrong attempts: this account is locked for {minutes} more "
              f"minute{'s' if minutes != 1 else ''}."), 429


def _complete(admin) -> None:
    next_url = session.get("admin_next")
    session.clear()
    login_user(AdminLogin(admin))
    session["admin_signed_in_at"] = time.time()
    session["admin_fp"] = browser_fingerprint()
    session["admin_next"] = next_url
    admins.signed_in(admin)
    audit.record(audit.AdminActor.of(admin, request.remote_addr), "signed in")


@bp.route("/login", methods=["GET", "POST"])
@login_limited
def login():
    if request.method != "POST":
        if current_admin() is not None:
            return redirect(safe_next(request.args.get("next")))
        return render_template("admin/login.html", next=request.args.get("next", ""))
    email = request.form.get("email", "")[:320]
    next_url = safe_next(request.form.get("next"))
    try:
        result = admins.check_password(email, request.form.get("password", ""))
    except admins.LockedOut as exc:
        return _locked(exc)
    except admins.SignInRefused:
        return render_template("admin/login.html", email=email, error=REFUSED,
                               next=request.form.get("next", "")), 401
    session.clear()
    session["admin_next"] = next_url
    if result.needs_code:
        session["admin_pending"] = [result.admin.id, time.time()]
        return redirect(url_for("admin.login_code"))
    _complete(result.admin)
    return redirect(session.pop("admin_next", None) or url_for("admin.dashboard"))


@bp.route("/login/code", methods=["GET", "POST"])
@login_limited
def login_code():
    pending = session.get("admin_pending")
    if not pending or time.time() - pending[1] > CODE_WAIT_SECONDS:
        session.pop("admin_pending", None)
        flash("Sign in again: the code step waits five minutes at most.")
        return redirect(url_for("admin.login"))
    if request.method != "POST":
        return render_template("admin/login_code.html")
    try:
        admin = admins.check_code(pending[0], request.form.get("code", ""))
    except admins.LockedOut as exc:
        session.pop("admin_pending", None)
        return _locked(exc)
    except admins.SignInRefused:
        return render_template("admin/login_code.html", error=WRONG_CODE), 401
    _complete(admin)
    return redirect(session.pop("admin_next", None) or url_for("admin.dashboard"))


@bp.route("/logout", methods=["POST"])
def logout():
    record("signed out")
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("admin.login"))


@bp.route("/logout/everywhere", methods=["POST"])
def logout_everywhere():
    admins.sign_out_everywhere(g.admin)
    record("signed out everywhere")
    logout_user()
    session.clear()
    flash("You are signed out in every browser.")
    return redirect(url_for("admin.login"))


@bp.route("/account", methods=["GET"])
def account():
    qr = None
    if g.admin.totp_pending:
        import segno

        qr = segno.make(admins.totp_uri(g.admin, g.admin.totp_pending,
                                        current_app.config["PUBLICATION_NAME"]),
                        error="m").svg_inline(scale=5, dark="#1f2933", light="#ffffff")
    return render_template("admin/account.html", qr=qr, secret=g.admin.totp_pending)


@bp.route("/account/two-factor", methods=["POST"])
def two_factor():
    step = request.form.get("step", "")
    if step == "start":
        admins.start_totp(g.admin)
        flash("Scan the code with your authenticator app, then enter the code it shows.")
    elif step == "confirm":
        if admins.confirm_totp(g.admin, request.form.get("code", "")):
            record("turned on two-factor sign-in")
            flash("Two-factor sign-in is on: you will be asked for a code at every sign-in.")
        else:
            flash(WRONG_CODE)
    elif step == "off":
        try:
            admins.check_password(g.admin.email, request.form.get("password", ""))
        except admins.SignInRefused:
            flash("Enter your password to turn two-factor sign-in off.")
            return redirect(url_for("admin.account"))
        admins.disable_totp(g.admin)
        record("turned off two-factor sign-in")
        flash("Two-factor sign-in is off.")
    else:
        abort(400, "Unknown step.")
    return redirect(url_for("admin.account"))


@bp.route("/account/password", methods=["POST"])
def change_password():
    try:
        admins.check_password(g.admin.email, request.form.get("current", ""))
    except admins.LockedOut as exc:
        return _locked(exc)
    except admins.SignInRefused:
        flash("Your current password is not right.")
        return redirect(url_for("admin.account"))
    try:
        admins.set_password(g.admin, request.form.get("new", ""))
    except admins.AccountError as exc:
        flash(str(exc))
        return redirect(url_for("admin.account"))
    record("changed password")
    # The new password moved the session epoch: keep this browser signed in.
    login_user(AdminLogin(g.admin))
    flash("Password changed; every other browser is signed out.")
    return redirect(url_for("admin.account"))
