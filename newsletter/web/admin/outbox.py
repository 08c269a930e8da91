"""The outbox viewer: with the file transport (``make run``), what was "sent", in the
browser — the list, and each message's headers, text and HTML."""

from __future__ import annotations

from flask import Response, abort, current_app, g, render_template

from newsletter.accounts.roles import Permission, may
from newsletter.mail.outbox import OutboxMessage, list_messages, read_message, withhold_links
from newsletter.subscribers.mailer import SIGN_IN_PATHS
from newsletter.web.admin import bp, requires
from newsletter.web.admin.composer import PREVIEW_CSP


def _folder() -> str:
    if current_app.config["MAIL_TRANSPORT"] != "file":
        abort(404, "The outbox viewer is there only with the file transport "
                   "(NEWSLETTER_MAIL_TRANSPORT=file).")
    return current_app.config["OUTBOX_DIR"]


def _read(name: str) -> OutboxMessage | None:
    """The message as this admin may see it: account mail's links sign a reader in as
    from their own inbox, so only owners get them whole."""
    message = read_message(_folder(), name)
    if message is not None and not may(g.admin.role, Permission.ACCOUNTS):
        message = withhold_links(message, SIGN_IN_PATHS)
    return message


# The outbox holds readers' personal links: only roles that may act for readers see it.
@bp.route("/outbox")
@requires(Permission.READERS)
def outbox():
    return render_template("admin/outbox.html", messages=list_messages(_folder()))


@bp.route("/outbox/<name>")
@requires(Permission.READERS)
def outbox_message(name: str):
    message = _read(name)
    if message is None:
        abort(404, "There is no such message in the outbox.")
    return render_template("admin/outbox_message.html", message=message)


@bp.route("/outbox/<name>/html")
@requires(Permission.READERS)
def outbox_html(name: str):
    message = _read(name)
    if message is None or message.html is None:
        abort(404, "This message has no HTML part.")
    response = Response(message.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response
