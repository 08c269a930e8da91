"""Admin accounts and signing in, for the admin-area tests."""

from __future__ import annotations

from tests.support.readers import csrf_from

PASSWORD = "correct horse battery staple"  # noqa: S105


def make_admin(email: str = "editor@news.example", role: str = "editor"):
    from newsletter.accounts.admins import create_admin

    return create_admin(email, PASSWORD, role)


def browser(app, ip: str = "127.0.0.1", agent: str = "Firefox/128.0 (test)"):
    """A test client that sends requests from ``ip`` with the user agent ``agent``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    client.environ_base["HTTP_USER_AGENT"] = agent
    return client


def sign_in(client, email: str = "editor@news.example", password: str = PASSWORD):
    token = csrf_from(client, "/admin/login")
    return client.post("/admin/login", data={"email": email, "password": password,
                                             "csrf_token": token})


def csrf(client, url: str = "/admin/account") -> str:
    return csrf_from(client, url)


def signed_in(app, role: str = "editor"):
    """A new client signed in as ``<role>@news.example`` (the account made once)."""
    from sqlalchemy import select

    from newsletter.accounts.models import Admin
    from newsletter.db import db

    client = app.test_client()
    email = f"{role}@news.example"
    if db.session.scalar(select(Admin.id).where(Admin.email == email)) is None:
        make_admin(email, role)
    assert sign_in(client, email).status_code == 302
    return client
