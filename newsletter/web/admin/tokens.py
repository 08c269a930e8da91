"""Owners' page: API tokens — the list (name, prefix, scopes, created, last used, revoked),
a new token with the scopes ticked (ingest only unless an owner ticks more; the secret is
shown on the answer page and never again) and revoking one.

The answer to a creation is the page itself, not a redirect: a secret carried to the next
page would have to sit in the session cookie, which is signed, not encrypted.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from newsletter.accounts import scopes
from newsletter.accounts import service as tokens
from newsletter.accounts.roles import Permission
from newsletter.web.admin import actor, bp, requires


def _page(status: int = 200, **extra):
    ticked = extra.pop("ticked", {s.value for s in scopes.DEFAULT})
    return render_template("admin/tokens.html", tokens=tokens.list_tokens(),
                           all_scopes=scopes.ALL, ticked=ticked,
                           ordered=scopes.ordered, **extra), status


@bp.route("/tokens", methods=["GET", "POST"])
@requires(Permission.ACCOUNTS)
def api_tokens():
    if request.method != "POST":
        return _page()
    name = request.form.get("name", "").strip()
    picked = request.form.getlist("scope")[:len(scopes.ALL) + 1]
    try:
        created = tokens.create_token(name, scopes.parse(picked), actor=actor())
    except (tokens.TokenError, scopes.UnknownScope) as exc:
        return _page(400, error=str(exc), name=name[:100],
                     ticked={s for s in picked if s in {x.value for x in scopes.ALL}})
    return _page(201, created=created)


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@requires(Permission.ACCOUNTS)
def api_token_revoke(token_id: int):
    token = tokens.get_token(token_id)
    if token is None:
        abort(404, "There is no such token.")
    if tokens.revoke_token(token.name, actor=actor()):
        flash(f"Token {token.name} revoked: calls with it are refused from now on.")
    else:
        flash(f"Token {token.name} was revoked already.")
    return redirect(url_for("admin.api_tokens"), 303)
