"""gunicorn's settings for production: ``.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app``.

Every value comes from the product's own settings (``NEWSLETTER_WEB_BIND``,
``NEWSLETTER_WEB_PROCESSES``; see the README's configuration table), so the web server and
the app read one environment. The app is checked once before any worker starts: a setting
that would refuse to start (a missing secret key, a broken DKIM key, a wrong relay option)
stops gunicorn with that one line instead of a crash loop of workers, and several web
processes with per-process rate limits (``memory://``) are refused.
"""

import sys

from newsletter.config import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as exc:
    sys.exit(f"newsletter: {exc}")

bind = _settings["WEB_BIND"]
workers = _settings["WEB_PROCESSES"]
# Threads per process: a slow client (or Stripe) does not hold a whole process.
threads = 4
worker_class = "gthread"
timeout = 60
graceful_timeout = 30
keepalive = 5
# Headers are trusted through NEWSLETTER_TRUSTED_PROXIES (werkzeug's ProxyFix in the app)
# and only there: gunicorn's own X-Forwarded-Proto handling is switched off.
forwarded_allow_ips = ""
secure_scheme_headers = {}
accesslog = "-"
errorlog = "-"
# Requests larger than this never reach the app (the app's own limit is
# NEWSLETTER_MAX_REQUEST_BYTES); long header lines are refused by gunicorn itself.
limit_request_line = 8190
proc_name = "newsletter-web"
# No control socket: several servers on one machine (tests, staging) would share its path.
control_socket_disable = True


def unsafe_rate_limits(processes: int, storage_uri: str) -> str | None:
    """Why this many processes must not start with these rate-limit counters, or None."""
    if processes > 1 and storage_uri.startswith("memory://"):
        return (f"refusing to start {processes} web processes with rate limits kept in "
                "memory (each process would count on its own, multiplying every limit): set "
                "NEWSLETTER_RATELIMIT_STORAGE_URL=redis://host:6379, or "
                "NEWSLETTER_WEB_PROCESSES=1")
    return None


def on_starting(server):
    """Build the app once in the master, so a setting that refuses stops gunicorn here."""
    why = unsafe_rate_limits(server.cfg.workers, _settings["RATELIMIT_STORAGE_URI"])
    if why:
        sys.exit(f"newsletter: {why}")
    from newsletter import create_app

    try:
        create_app()
    except ConfigError as exc:
        sys.exit(f"newsletter: {exc}")
