"""Rate limits on subscribe and sign-in-link requests: per IP and per address, 429 page."""

from __future__ import annotations

import uuid

import pytest
import redis

from newsletter import create_app
from tests.support.readers import csrf_from


def post(client, email, ip="198.51.100.7"):
    return client.post("/subscribe", data={
        "csrf_token": csrf_from(client), "email": email, "topic": "ai-policy-and-safety"},
        environ_base={"REMOTE_ADDR": ip})


def test_per_address_limit(app_config, request):
    app_config.update(SUBSCRIBE_LIMIT_PER_ADDRESS="2/hour", SUBSCRIBE_LIMIT_PER_IP="100/hour")
    request.getfixturevalue("topics")
    client = request.getfixturevalue("client")
    assert post(client, "ada@example.com").status_code == 200
    assert post(client, "ADA@example.com", ip="198.51.100.8").status_code == 200
    blocked = post(client, "ada@example.com", ip="198.51.100.9")
    assert blocked.status_code == 429
    assert "Too many requests from here" in blocked.get_data(as_text=True)
    assert post(client, "grace@example.com").status_code == 200


def test_per_ip_limit(app_config, request):
    app_config.update(SUBSCRIBE_LIMIT_PER_IP="3/hour", SUBSCRIBE_LIMIT_PER_ADDRESS="100/hour")
    request.getfixturevalue("topics")
    client = request.getfixturevalue("client")
    for n in range(3):
        assert post(client, f"r{n}@example.com").status_code == 200
    assert post(client, "r9@example.com").status_code == 429
    assert post(client, "r9@example.com", ip="198.51.100.99").status_code == 200
    assert client.get("/subscribe").status_code == 200, "reading the form is not limited"


def _redis_url() -> str:
    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:  # pragma: no cover - the CI machine runs Redis
        pytest.fail(f"Redis must run on 127.0.0.1:6379 for this test: {exc}")
    return url


def test_two_web_processes_share_limits_through_redis(app_config, request):
    """Two apps (as two processes would be) count against one Redis."""
    prefix = f"test-{uuid.uuid4().hex}"
    app_config.update(RATELIMIT_STORAGE_URI=_redis_url(), RATELIMIT_KEY_PREFIX=prefix,
                      SUBSCRIBE_LIMIT_PER_IP="2/hour", SUBSCRIBE_LIMIT_PER_ADDRESS="100/hour")
    request.getfixturevalue("topics")
    first = request.getfixturevalue("client")
    second = create_app(app_config)
    second.test_client_class = first.__class__
    other = second.test_client()
    assert post(first, "a@example.com").status_code == 200
    assert post(other, "b@example.com").status_code == 200
    assert post(first, "c@example.com").status_code == 429
    assert post(other, "d@example.com").status_code == 429
    store = redis.Redis.from_url(_redis_url())
    keys = store.keys(f"*{prefix}*")
    assert keys, "the counters live in Redis"
    store.delete(*keys)
