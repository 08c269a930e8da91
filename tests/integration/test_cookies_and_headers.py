"""Cookie flags and caching headers that really apply (Flask defines the keys, so they are
assigned, not defaulted)."""

from __future__ import annotations

import pytest

from newsletter import create_app
from tests.factories_readers import links, make_reader


def _session_cookie(response) -> str:
    cookies = [v for k, v in response.headers.items() if k == "Set-Cookie"
               and v.startswith("session=")]
    assert cookies, "the page sets the session cookie"
    return cookies[0]


@pytest.mark.parametrize("base_url,secure", [("https://news.example", True),
                                             ("http://127.0.0.1:5000", False)])
def test_session_cookie_flags_follow_the_base_url(app_config, base_url, secure):
    app_config["BASE_URL"] = base_url
    app = create_app(app_config)
    with app.app_context():
        from newsletter.db import db

        response = app.test_client().get("/subscribe")  # a form: the CSRF token's session
        cookie = _session_cookie(response)
        assert "SameSite=Lax" in cookie
        assert "HttpOnly" in cookie
        assert ("Secure" in cookie.split("; ")) is secure
        assert ("Strict-Transport-Security" in response.headers) is secure
        if secure:
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert app.config["WTF_CSRF_TIME_LIMIT"] is None
        db.engine.dispose()


def test_reader_pages_are_never_cached(app, topics):
    reader = make_reader()
    client = app.test_client()
    manage = client.get(links().manage(reader.id).split("news.example", 1)[1])
    assert manage.headers["Cache-Control"] == "no-store"
    for path in ("/preferences", "/preferences/export", "/preferences/link", "/subscribe",
                 links().unsubscribe(reader.id).split("news.example", 1)[1]):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path
    assert "no-store" not in client.get("/").headers.get("Cache-Control", ""), \
        "public pages may be cached"
