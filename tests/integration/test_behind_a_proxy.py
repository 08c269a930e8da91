"""Production serving: the client's address, scheme and host behind a reverse proxy
(NEWSLETTER_TRUSTED_PROXIES), spoofed X-Forwarded-* headers, and gunicorn with two
processes — refused with per-process rate limits, serving with shared ones."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from flask import request
from sqlalchemy import select

from newsletter.accounts.models import AuditEntry
from newsletter.db import db
from newsletter.subscribers.models import ConsentEvent
from tests.support.admins import make_admin
from tests.support.readers import csrf_from
from tests.support.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/7"
PROXY = "10.0.0.2"  # the reverse proxy's address, as the web server sees it


def subscribe(client, email, **headers):
    return client.post("/subscribe", data={"csrf_token": csrf_from(client), "email": email,
                                           "topic": "ai-policy-and-safety"},
                       environ_base={"REMOTE_ADDR": PROXY}, headers=headers)


def consent_ips() -> list[str | None]:
    db.session.expire_all()
    return list(db.session.scalars(select(ConsentEvent.ip).order_by(ConsentEvent.id)))


def test_without_trusted_proxies_forwarded_headers_are_ignored(app_config, request_fixture):
    app_config.update(SUBSCRIBE_LIMIT_PER_IP="3/hour", SUBSCRIBE_LIMIT_PER_ADDRESS="100/hour")
    client = request_fixture("client")
    request_fixture("topics")
    for n in range(3):  # each claims to be someone else
        spoofed = {"X-Forwarded-For": f"203.0.113.{n}", "X-Forwarded-Proto": "https"}
        assert subscribe(client, f"r{n}@example.com", **spoofed).status_code == 200
    assert consent_ips() == [PROXY] * 3, "the address that connected, not the header"
    assert subscribe(client, "r9@example.com",
                     **{"X-Forwarded-For": "203.0.113.99"}).status_code == 429
    with client:
        client.get("/healthz", headers={"X-Forwarded-Proto": "https",
                                        "X-Forwarded-Host": "evil.example"})
        assert (request.scheme, request.host) == ("http", "localhost")


@pytest.fixture
def request_fixture(request):
    return request.getfixturevalue


@pytest.fixture
def behind_one_proxy(app_config):
    app_config.update(TRUSTED_PROXIES=1, SUBSCRIBE_LIMIT_PER_IP="2/hour",
                      SUBSCRIBE_LIMIT_PER_ADDRESS="100/hour")


def test_behind_a_trusted_proxy_each_reader_is_their_own_ip(behind_one_proxy, client, topics):
    # The proxy appends the address it saw; what the client put in front is not trusted.
    ada = {"X-Forwarded-For": "198.51.100.1, 203.0.113.10"}
    grace = {"X-Forwarded-For": "203.0.113.20"}
    assert subscribe(client, "a1@example.com", **ada).status_code == 200
    assert subscribe(client, "g1@example.com", **grace).status_code == 200
    assert subscribe(client, "a2@example.com", **ada).status_code == 200
    assert subscribe(client, "g2@example.com", **grace).status_code == 200
    assert consent_ips() == ["203.0.113.10", "203.0.113.20"] * 2
    # Each has their own limit: Ada's third is refused, the site is not.
    assert subscribe(client, "a3@example.com", **ada).status_code == 429
    assert subscribe(client, "n1@example.com",
                     **{"X-Forwarded-For": "203.0.113.30"}).status_code == 200
    with client:
        client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.10",
                                        "X-Forwarded-Proto": "https",
                                        "X-Forwarded-Host": "news.example"},
                   environ_base={"REMOTE_ADDR": PROXY})
        assert (request.scheme, request.host, request.remote_addr) == (
            "https", "news.example", "203.0.113.10")


def test_admin_sign_ins_are_limited_and_audited_per_real_client(behind_one_proxy, app_config,
                                                               client):
    make_admin("owner@news.example", "owner")
    data = {"email": "owner@news.example", "password": "correct horse battery staple"}
    token = csrf_from(client, "/admin/login")
    answer = client.post("/admin/login", data={**data, "csrf_token": token},
                         headers={"X-Forwarded-For": "203.0.113.77"},
                         environ_base={"REMOTE_ADDR": PROXY})
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:300]
    assert db.session.scalar(select(AuditEntry.ip).where(AuditEntry.action == "signed in")) \
        == "203.0.113.77"


# -- gunicorn, as production runs it ------------------------------------------------------

def _env(tmp_path, **settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_SECRET_KEY="s" * 48, NEWSLETTER_POSTAL_ADDRESS="Modelwire, 1 Way, X",
               NEWSLETTER_INSTANCE_DIR=str(tmp_path / "instance"),
               NEWSLETTER_DATABASE_URL=f"sqlite:///{tmp_path / 'web.db'}")
    env.update({f"NEWSLETTER_{k}": str(v) for k, v in settings.items()})
    return env


def _gunicorn(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_two_web_processes_with_memory_limits_refuse_to_start(tmp_path):
    server = _gunicorn(_env(tmp_path, WEB_PROCESSES=2, WEB_BIND=f"127.0.0.1:{free_port()}"))
    output, _ = server.communicate(timeout=60)
    assert server.returncode != 0
    assert "refusing to start 2 web processes with rate limits kept in memory" in output
    assert "NEWSLETTER_RATELIMIT_STORAGE_URL=redis://" in output


def test_a_wrong_setting_stops_gunicorn_at_once_with_one_line(tmp_path):
    env = _env(tmp_path, WEB_PROCESSES=1, WEB_BIND=f"127.0.0.1:{free_port()}",
               MAIL_TRANSPORT="smtp", SMTP_URL="smtp://relay.example?connection=2")
    server = _gunicorn(env)
    output, _ = server.communicate(timeout=60)
    assert server.returncode != 0
    assert "newsletter: NEWSLETTER_SMTP_URL: unknown SMTP URL option 'connection'" in output
    assert "Booting worker" not in output, "no worker was started to crash"


def _open(opener, url, data=None, headers=None):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(urllib.request.Request(url, data=body, headers=headers or {}),
                         timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_gunicorn_serves_two_processes_sharing_limits_behind_a_proxy(tmp_path):
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # this test's own database number
    port = free_port()
    env = _env(tmp_path, WEB_PROCESSES=2, WEB_BIND=f"127.0.0.1:{port}", TRUSTED_PROXIES=1,
               RATELIMIT_STORAGE_URL=REDIS_URL,
               SUBSCRIBE_LIMIT_PER_IP="2/hour", SUBSCRIBE_LIMIT_PER_ADDRESS="100/hour")
    migrated = subprocess.run([sys.executable, "-m", "newsletter.cli", "db", "upgrade"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    seeded = subprocess.run([sys.executable, "-m", "newsletter.cli", "seed-demo"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    server = _gunicorn(env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _open(urllib.request.build_opener(), f"{base}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, \
                server.stdout.read() if server.poll() is not None else "no answer"
            time.sleep(0.2)
        assert '"database":"ok"' in body.replace(" ", "")

        def attempt(n, client_ip):
            opener = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            headers = {"X-Forwarded-For": client_ip}
            _, form = _open(opener, f"{base}/subscribe", headers=headers)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
            return _open(opener, f"{base}/subscribe", headers=headers, data={
                "csrf_token": token, "email": f"r{n}-{client_ip}@example.com",
                "topic": "ai-policy-and-safety"})[0]

        # Requests land on either process; the limit is counted once, in Redis.
        assert [attempt(n, "203.0.113.5") for n in range(3)] == [200, 200, 429]
        assert attempt(9, "203.0.113.6") == 200, "another client behind the proxy is not limited"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert output.count("Booting worker") >= 2, output[-2000:]
