"""What `make run` does, end to end, in subprocesses: upgrade, seed, serve, fetch pages."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _newsletter(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "newsletter.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _wait_for_messages(outbox: Path, n: int) -> list[str]:
    """The subjects in the outbox once it holds ``n`` messages (or after 30 s)."""
    import email
    import email.policy

    deadline = time.monotonic() + 30
    while len(list(outbox.glob("*.eml"))) < n and time.monotonic() < deadline:
        time.sleep(0.3)
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)["Subject"]
            for path in sorted(outbox.glob("*.eml"))]


def _our_urls(outbox: Path) -> set[str]:
    """Every URL to this site (any 127.0.0.1 or localhost address) in every part and header
    of every message in the outbox."""
    import email
    import email.policy
    import re

    found: set[str] = set()
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        texts = [str(value) for value in message.values()]
        texts += [part.get_content() for part in message.walk()
                  if part.get_content_maintype() == "text"]
        for text in texts:
            found.update(re.findall(r"https?://(?:127\.0\.0\.1|localhost)[^\s\"'<>)]*", text))
    return found


@pytest.mark.skipif(bool(os.environ.get("NEWSLETTER_TEST_DATABASE_URL")),
                    reason="make run uses the embedded SQLite database; covered by the SQLite lane")
def test_upgrade_seed_and_serve_like_make_run(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_DEBUG="1", NEWSLETTER_INSTANCE_DIR=str(tmp_path / "instance"),
               NEWSLETTER_SEND_IN_WEB="1", NEWSLETTER_BASE_URL=f"http://127.0.0.1:{port}")
    # A second terminal: no development mode, no base URL, only the same instance folder (as
    # typing `.venv/bin/newsletter …` in the project does); it shares make run's stored key
    # and the base URL it serves.
    second = {k: v for k, v in env.items()
              if k not in ("NEWSLETTER_DEBUG", "NEWSLETTER_BASE_URL")}
    for args in (("db", "upgrade"), ("seed-demo", "--if-empty")):
        result = _newsletter(*args, env=env)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "instance" / "newsletter.db").exists()

    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter.cli", "serve", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            home = response.read().decode()
        assert "Subscribe" in home
        assert home.count('class="card"') >= 15
        assert "AI policy and safety" in home

        # The sender runs in the same process: a scheduled edition reaches the outbox.
        assert (tmp_path / "instance" / "secret_key").exists()
        listed = _newsletter("--help", env=second)
        assert listed.returncode == 0, listed.stderr
        assert "digest" in listed.stdout and "edition" in listed.stdout
        token = _newsletter("api-token", "create", "run-test", "--scope", "readers:add",
                            env=second).stdout.strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/subscribers", method="POST",
            data=json.dumps({"email": "reader@example.com", "topics": ["ai-policy-and-safety"],
                             "consent": {"obtained_at": "2026-11-01T00:00:00Z",
                                         "wording_version": "test"}}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 201
        slug = home.split('href="/syntheses/', 1)[1].split('"', 1)[0]
        created = _newsletter("edition", "create", "--subject", "Run test edition",
                              "--synthesis", slug, "--send-at", "now", env=second)
        assert created.returncode == 0, created.stderr
        outbox = tmp_path / "instance" / "outbox"
        # The four demo readers and the API's reader, all confirmed.
        subjects = _wait_for_messages(outbox, 5)
        assert subjects.count("Run test edition") == 5, "the in-process sender sent it"

        # Digests: the demo readers' times are minutes away; --now brings them forward,
        # and the in-process worker sends them.
        composed = _newsletter("digest", "--now", env=second)
        assert composed.returncode == 0, composed.stderr
        assert "5 reader(s): 5 digest(s) queued" in composed.stdout
        subjects = _wait_for_messages(outbox, 10)
        assert len(subjects) == 10
        digests = [m for m in outbox.glob("*.eml") if b"List-Id: Modelwire <digest." in
                   m.read_bytes()]
        assert len(digests) == 5
        # Every link of every message, whichever process wrote it (the special edition and
        # the digests were composed in the second terminal, personal links by the server),
        # points at the server that `make run PORT=…` serves.
        ours = _our_urls(outbox)
        assert ours and {url.split("/", 3)[2] for url in ours} == {f"127.0.0.1:{port}"}
        assert any("/c/" in url for url in ours) and any("/u/" in url for url in ours)
    finally:
        server.terminate()
        server.wait(timeout=10)

    again = _newsletter("seed-demo", "--if-empty", env=env)
    assert "demo content not loaded" in again.stdout


def test_make_run_port_serves_there_and_points_the_links_there(tmp_path):
    """`make run PORT=5055`, with stand-ins for the virtualenv's programs that print what
    they were given: the server's port and the links' base URL both follow PORT."""
    fake = tmp_path / "venv" / "bin"
    fake.mkdir(parents=True)
    for name in ("python", "newsletter"):
        program = fake / name
        program.write_text('#!/bin/sh\necho "$NEWSLETTER_BASE_URL $*"\n')
        program.chmod(0o755)
    (tmp_path / "venv" / ".installed-run").touch()  # newer than pyproject.toml
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    result = subprocess.run(["make", "-s", "run", "PORT=5055", f"VENV={tmp_path / 'venv'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:5055 serve --host 127.0.0.1 --port 5055" in result.stdout
    assert "http://127.0.0.1:5055 db upgrade" in result.stdout
