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

from newsletter.accounts import admins, audit, sessions
from newsletter.db import db
from newsletter.extensions import limiter
from newsletter.web.admin import bp, record, safe_next
from newsletter.web.logins import (
    SESSION_KEY,
    AdminLogin,
    browser,
    current_admin,
    current_session_row,
    forget_admin_session,
)

CODE_WAIT_SECONDS = 300
REFUSED = "That address and password do not match an admin account."
WRONG_CODE = "That code is not right, or it was used already. Try the next one."


def _login_limit() -> str:
    return current_app.config["ADMIN_LOGIN_LIMIT_PER_IP"]


login_limited = limiter.limit(_login_limit, methods=["POST"],
                              error_message="Too many sign-in attempts from here. "
                                            "Wait a few minutes, then try again.")


def _locked(exc: admins.LockedOut):
    """The same page for a known address and an unknown one (both lock)."""
    minutes = max(1, round((exc.until.timestamp() - time.time()) / 60))
    return render_template(
        "admin/login.html", email=request.form.get("email", "")[:320],
        error=f"Too many wrong attempts for this address from here. Try again in "
              f"{minutes} minute{'s' if minutes != 1 else ''}."), 429


def _complete(admin) -> None:
    """Open a server-side session for this browser and sign it in, in one commit."""
    next_url = session.get("admin_next")
    forget_admin_session()
    session.clear()
    session_id = sessions.open_session(admin, browser())
    login_user(AdminLogin(admin))
    session[SESSION_KEY] = session_id
    session["admin_next"] = next_url
    admins.signed_in(admin, request.remote_addr)
    audit.record(audit.AdminActor.of(admin, request.remote_addr), "signed in", commit=False)
    db.session.commit()


def _sign_out_here() -> None:
    sessions.close_session(session.get(SESSION_KEY))
    logout_user()
    session.clear()


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
        result = admins.check_password(email, request.form.get("password", ""),
                                       request.remote_addr)
    except admins.LockedOut as exc:
        return _locked(exc)
    except admins.SignInRefused:
        return render_template("admin/login.html", email=email, error=REFUSED,
                               next=request.form.get("next", "")), 401
    forget_admin_session()
    db.session.commit()
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
        admin = admins.check_code(pending[0], request.form.get("code", ""),
                                  request.remote_addr)
    except admins.LockedOut as exc:
        session.pop("admin_pending", None)
        return _locked(exc)
    except admins.SignInRefused:
        return render_template("admin/login_code.html", error=WRONG_CODE), 401
    _complete(admin)
    return redirect(session.pop("admin_next", None) or url_for("admin.dashboard"))


@bp.route("/logout", methods=["POST"])
def logout():
    """Delete this browser's session record: a copy of its cookie opens nothing after."""
    audit.record(audit.AdminActor.of(g.admin, request.remote_addr), "signed out",
                 commit=False)
    _sign_out_here()
    db.session.commit()
    flash("You are signed out.")
    return redirect(url_for("admin.login"))


@bp.route("/logout/everywhere", methods=["POST"])
def logout_everywhere():
    ended = sessions.close_sessions(g.admin.id)
    audit.record(audit.AdminActor.of(g.admin, request.remote_addr), "signed out everywhere",
                 detail={"sessions": ended}, commit=False)
    _sign_out_here()
    db.session.commit()
    flash("You are signed out in every browser.")
    return redirect(url_for("admin.login"))


@bp.route("/account/sessions/<int:row_id>", methods=["POST"])
def end_session(row_id: int):
    """Sign out one browser from the account page's list (only the admin's own)."""
    if row_id == current_session_row():
        return logout()
    if not sessions.close_one(g.admin.id, row_id):
        abort(404, "There is no such session of yours (it may have ended already).")
    audit.record(audit.AdminActor.of(g.admin, request.remote_addr), "ended a session",
                 detail={"session": row_id}, commit=False)
    db.session.commit()
    flash("That browser is signed out.")
    return redirect(url_for("admin.account"), 303)


@bp.route("/account", methods=["GET"])
def account():
    qr = None
    if g.admin.totp_pending:
        import segno

        qr = segno.make(admins.totp_uri(g.admin, g.admin.totp_pending,
                                        current_app.config["PUBLICATION_NAME"]),
                        error="m").svg_inline(scale=5, dark="#1f2933", light="#ffffff")
    return render_template("admin/account.html", qr=qr, secret=g.admin.totp_pending,
                           sessions=sessions.sessions_of(g.admin.id),
                           this_session=current_session_row())


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
            admins.check_password(g.admin.email, request.form.get("password", ""),
                                  request.remote_addr)
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
        admins.check_password(g.admin.email, request.form.get("current", ""),
                              request.remote_addr)
    except admins.LockedOut as exc:
        return _locked(exc)
    except admins.SignInRefused:
        flash("Your current password is not right.")
        return redirect(url_for("admin.account"))
    try:
        admins.set_password(g.admin, request.form.get("new", ""),
                            keep_session=current_session_row())
    except admins.AccountError as exc:
        flash(str(exc))
        return redirect(url_for("admin.account"))
    record("changed password")
    flash("Password changed; every other browser is signed out.")
    return redirect(url_for("admin.account"))
