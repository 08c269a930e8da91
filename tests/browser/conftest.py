"""Browser tests: a real Chromium (Debian's package) drives the app served in a subprocess.

The whole folder is skipped, with the reason, only when ``/usr/bin/chromium`` is missing or
the ``playwright`` package cannot be imported. Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
# Without these, Chromium tries to reach the outside (this machine has no network).
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ACTION_TIMEOUT_MS = 10_000
SERVER_START_SECONDS = 30


def _why_no_browser() -> str | None:
    if not Path(CHROMIUM).exists():
        return (f"browser tests need Chromium at {CHROMIUM}: install it with "
                "`apt-get install chromium` (or run `make browser-deps` as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return (f"browser tests need the playwright package ({exc}): "
                "`.venv/bin/pip install -e '.[test]'`; the browser comes from "
                "`apt-get install chromium`, never from `playwright install`")
    return None


SKIP_REASON = _why_no_browser()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives Debian's Chromium against the app served in a subprocess")


class _SkippedModule(pytest.Module):
    """A test module that is reported as skipped without being imported."""

    def collect(self):
        pytest.skip(SKIP_REASON)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent):
    if SKIP_REASON and module_path.parent == HERE and module_path.name.startswith("test_"):
        return _SkippedModule.from_parent(parent, path=module_path)
    return None


# -- the app, served as `make run` serves it -----------------------------------------------

@dataclass(frozen=True)
class LiveServer:
    url: str
    instance: Path
    log: Path
    env: dict

    def newsletter(self, *args: str) -> str:
        """Run a ``newsletter`` command against this instance; its standard output."""
        result = subprocess.run([sys.executable, "-m", "newsletter.cli", *args], env=self.env,
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"newsletter {' '.join(args)}: {result.stderr}"
        return result.stdout

    @property
    def outbox(self) -> Path:
        return self.instance / "outbox"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _newsletter(*args: str, env: dict) -> None:
    result = subprocess.run([sys.executable, "-m", "newsletter.cli", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"newsletter {' '.join(args)}: {result.stderr}"


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start (exit code {server.poll()}):\n"
                               + log.read_text(errors="replace")[-4000:])
        time.sleep(0.2)


@contextmanager
def serve_instance(tmp: Path, **settings: str) -> Iterator[LiveServer]:
    """A fresh instance in ``tmp`` (migrated, demo content) served on a free loopback port
    as ``make run`` serves it, with ``settings`` (``NEWSLETTER_…``) added to its
    environment; stopped on exit."""
    instance = tmp / "instance"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_DEBUG="1", NEWSLETTER_INSTANCE_DIR=str(instance),
               NEWSLETTER_BASE_URL=url, NEWSLETTER_MAIL_TRANSPORT="file",
               NEWSLETTER_SEND_IN_WEB="1")
    env.update(settings)
    _newsletter("db", "upgrade", env=env)
    _newsletter("seed-demo", "--if-empty", env=env)

    log = tmp / "server.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "newsletter.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_up(url, server, log)
        yield LiveServer(url=url, instance=instance, log=log, env=env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    """A fresh instance served on a free loopback port, with the sender in the web process
    as under ``make run`` (it sends the queued account mail) and mail written to files."""
    with serve_instance(tmp_path_factory.mktemp("browser")) as server:
        yield server


# -- the browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium, live_server):
    """A new page in a fresh context whose clock reads Asia/Shanghai, like a reader there."""
    context = chromium.new_context(timezone_id="Asia/Shanghai", locale="en-US",
                                   viewport={"width": 1280, "height": 800},
                                   base_url=live_server.url)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
