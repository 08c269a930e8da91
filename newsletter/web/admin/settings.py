"""Owners' settings page: every setting in effect, secrets hidden.

Settings come from the environment (``NEWSLETTER_*``), the same on every web process and
worker; the page shows them and says where they are changed, instead of keeping a second
copy in the database that machines could disagree about.
"""

from __future__ import annotations

from flask import current_app, render_template

from newsletter.accounts.roles import Permission
from newsletter.config import settings_for_display
from newsletter.web.admin import bp, requires


@bp.route("/settings")
@requires(Permission.SETTINGS)
def settings():
    # Flask's command line resets DEBUG; DEVELOPMENT keeps what NEWSLETTER_DEBUG asked for.
    config = {**current_app.config,
              "DEBUG": current_app.config.get("DEVELOPMENT", current_app.config["DEBUG"])}
    return render_template("admin/settings.html", settings=settings_for_display(config))
