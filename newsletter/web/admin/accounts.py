"""Owners' pages: admin accounts (add, change role, disable, enable) and the audit log."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from newsletter.accounts import admins, audit, sessions
from newsletter.accounts.roles import ROLES, Permission
from newsletter.db import db, utcnow
from newsletter.web.admin import bp, record, requires
from newsletter.web.pagination import NO_SUCH_PAGE, page_number


@bp.route("/accounts", methods=["GET", "POST"])
@requires(Permission.ACCOUNTS)
def accounts():
    if request.method == "POST":
        email, role = request.form.get("email", ""), request.form.get("role", "")
        try:
            created = admins.create_admin(email, request.form.get("password", ""), role)
        except admins.AccountError as exc:
            return render_template("admin/accounts.html", admins=admins.list_admins(),
                                   roles=ROLES, error=str(exc), email=email[:320]), 400
        record("added admin", created.email, role=created.role)
        flash(f"{created.email} can now sign in as {created.role}.")
        return redirect(url_for("admin.accounts"), 303)
    return render_template("admin/accounts.html", admins=admins.list_admins(), roles=ROLES)


@bp.route("/accounts/<int:admin_id>", methods=["POST"])
@requires(Permission.ACCOUNTS)
def account_change(admin_id: int):
    target = db.session.get(admins.Admin, admin_id) if admin_id < 2**62 else None
    if target is None:
        abort(404, "There is no such admin.")
    change = request.form.get("change", "")
    if target.id == g.admin.id:
        abort(400, "Change your own account on the Account page; another owner can change "
                   "your role.")
    if change == "role":
        role = request.form.get("role", "")
        if role not in ROLES:
            abort(400, f"The role is one of {', '.join(ROLES)}.")
        old, target.role = target.role, role  # read at every request: effective at once
        db.session.commit()
        record("changed role", target.email, before=old, after=role)
        flash(f"{target.email} is now {role}.")
    elif change == "disable":
        target.disabled_at = utcnow()
        sessions.close_sessions(target.id)  # signed out in every browser at once
        db.session.commit()
        record("disabled admin", target.email)
        flash(f"{target.email} can no longer sign in.")
    elif change == "enable":
        target.disabled_at = None
        admins.clear_failures(target.email)
        db.session.commit()
        record("enabled admin", target.email)
        flash(f"{target.email} can sign in again.")
    else:
        abort(400, "Unknown change.")
    return redirect(url_for("admin.accounts"), 303)


@bp.route("/audit")
@requires(Permission.AUDIT)
def audit_log():
    page = page_number()
    rows, total = audit.entries(page)
    if page > max(1, -(-total // audit.PAGE)):
        abort(404, NO_SUCH_PAGE)
    return render_template("admin/audit.html", rows=rows, page=page,
                           pages=max(1, -(-total // audit.PAGE)), total=total)
