"""The Flask extension objects, created once and bound to each app in ``create_app``.

Only extension objects live here; the adapters built from settings are in
``newsletter.wiring``. No domain package imports this module.
"""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf import CSRFProtect

migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address)
