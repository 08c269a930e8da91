"""The deployed lane: the product as it runs in production, end to end, through a real MTA.

Everything runs as separate processes on loopback: a fresh PostgreSQL database
(``newsletter db upgrade``), Redis for the shared rate limits, gunicorn with two web
processes (``gunicorn -c gunicorn.conf.py wsgi:app``), two ``newsletter worker`` processes,
and a private Postfix (``tests.support.postfix``) that delivers into Maildirs, refuses
unknown ``inbox.example`` users at RCPT and bounces unknown ``late.example`` users with its own
DSNs into the bounce Maildir the workers read. List and account mail are DKIM-signed.

The tests run in file order and share the deployment, as one lane does:

1. a reader subscribes on the web server and confirms from the mail in their Maildir;
2. an editor signs in to the admin area and sends a special edition over HTTP;
3. the readers at unknown addresses (refused at RCPT, or bounced later with a DSN) end
   suppressed, for list mail and account mail alike;
4. a digest goes out at the reader's time;
5. Postfix stops for 20 s in the middle of a special edition to a few hundred readers,
   then starts again: nobody's copy is lost, none is duplicated, no delivery fails;
6. every real reader has exactly one copy of every message meant for them, each with a
   valid DKIM signature; the lane prints its counts.
"""

from __future__ import annotations

import base64
import email
import email.policy
import http.cookiejar
import json
import os
import re
import secrets
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.postfix import (
    HOST,
    PostfixServer,
    free_port,
    maildir_files,
    running_postfix,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379"
MAIL_DOMAIN = "news.example"
DKIM_SELECTOR = "mail"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account's password
OWNER = "owner@news.example"
EDITOR = "editor@news.example"
TOPIC_NAME = "Frontier models"

SUBSCRIBER = "ada@inbox.example"
# Readers at addresses that do not exist: refused at RCPT (inbox.example), or accepted and then
# bounced by Postfix with a DSN (late.example). The list readers get the editor's edition; the
# account readers subscribe on the form and their confirmation is what bounces.
LIST_LATE = ("gone1@late.example", "gone2@late.example")
LIST_REFUSED = ("nobody@inbox.example",)
ACCOUNT_LATE = ("gone-sub@late.example",)
ACCOUNT_REFUSED = ("nobody-sub@inbox.example",)
BULK = tuple(f"bulk{i:03d}@inbox.example" for i in range(300))
# The relay's rate (messages a second) paces the big send so that Postfix stops in its
# middle: 301 messages take about 12 s.
RELAY_RATE = 25
OUTAGE_SECONDS = 20

pytestmark = pytest.mark.timeout(300)


# -- processes -----------------------------------------------------------------------------

def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group we started (gunicorn's workers, the worker's threads
    exit with it), SIGKILL to what is left after 15 s."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group, if any
    process.wait(timeout=10)


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def poll(condition: Callable[[], object], *, timeout: float, what: str,
         explain: Callable[[], str] = lambda: "", interval: float = 0.2):
    """Call ``condition`` until it returns something true and return that; AssertionError
    with ``explain()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n"
                                 f"{explain()}")
        time.sleep(interval)


# -- HTTP, as a browser without JavaScript does it -----------------------------------------

_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def csrf(self) -> str:
        match = _CSRF_RE.search(self.text)
        assert match, f"no CSRF token on the page:\n{self.text[:2000]}"
        return match.group(1)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a test looks at the 303 itself


class Browser:
    """Cookies kept, redirects not followed, every answer returned (4xx/5xx too)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirects())

    def open(self, method: str, path: str, fields=None) -> Page:
        url = path if path.startswith("http") else self.base_url + path
        data = None
        if fields is not None:
            data = urllib.parse.urlencode(fields, doseq=True).encode()
        request = urllib.request.Request(url, data=data, method=method)
        try:
            with self.opener.open(request, timeout=30) as response:
                return Page(response.status, {k.lower(): v for k, v in response.headers.items()},
                            response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as error:
            return Page(error.code, {k.lower(): v for k, v in error.headers.items()},
                        error.read().decode("utf-8", "replace"))

    def get(self, path: str) -> Page:
        return self.open("GET", path)

    def post(self, path: str, fields) -> Page:
        return self.open("POST", path, fields)

    def submit(self, form_page: str, action: str | None = None, **fields) -> Page:
        """GET ``form_page``, then POST ``fields`` with its CSRF token to ``action``."""
        token = self.get(form_page).csrf()
        return self.post(action or form_page, {"csrf_token": token, **fields})

    def sign_in(self, address: str) -> None:
        page = self.submit("/admin/login", email=address, password=PASSWORD)
        assert page.status == 302, f"sign-in of {address} answered {page.status}"


# -- the deployment ------------------------------------------------------------------------

def _dkim_key(folder: Path) -> tuple[Path, Callable]:
    """A 2048-bit key on disk for the product, and the DNS answer dkimpy asks for."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    name = f"{DKIM_SELECTOR}._domainkey.{MAIL_DOMAIN}.".encode()

    def dnsfunc(query, timeout=5):
        return record if query == name else None

    return path, dnsfunc


@dataclass
class Lane:
    postfix: PostfixServer
    env: dict[str, str]
    base_url: str
    engine: object
    app: object
    folder: Path
    dnsfunc: Callable
    processes: dict[str, tuple[subprocess.Popen, Path]] = field(default_factory=dict)
    topic_slug: str = ""
    started: float = field(default_factory=time.monotonic)
    # What each reader should have received: address -> {message key: description}.
    expected: dict[str, set[str]] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)

    def newsletter(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "newsletter"), *args], cwd=ROOT, env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=120,
                              check=False)

    def browser(self) -> Browser:
        return Browser(self.base_url)

    def sql(self, statement: str, **params):
        with self.engine.begin() as conn:
            return conn.execute(text(statement), params).all()

    def execute(self, statement: str, **params) -> int:
        with self.engine.begin() as conn:
            return conn.execute(text(statement), params).rowcount

    def scalar(self, statement: str, **params):
        with self.engine.begin() as conn:
            return conn.execute(text(statement), params).scalar()

    def logs(self) -> str:
        parts = [f"--- {name} ---\n{_tail(log)}" for name, (_, log) in self.processes.items()]
        parts.append(f"--- postfix ---\n{self.postfix.log_tail(20)}")
        return "\n".join(parts)

    def check_processes(self) -> None:
        for name, (process, log) in self.processes.items():
            assert process.poll() is None, f"{name} exited {process.returncode}:\n{_tail(log)}"

    def needs(self, *notes: str) -> None:
        """The lane's tests build on each other: say so when run out of order."""
        missing = [note for note in notes if note not in self.notes]
        if missing:
            pytest.fail(f"this step needs {', '.join(missing)} from an earlier step of the "
                        "lane: run tests/deployed/test_deployed_lane.py as a whole")

    def expect(self, address: str, key: str) -> None:
        self.expected.setdefault(address, set()).add(key)


def _create_database(name: str) -> str:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - say what the lane needs, whatever failed
        pytest.fail(f"the deployed lane needs PostgreSQL on 127.0.0.1:5432 (user postgres, "
                    f"trust): {exc}")
    finally:
        admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _drop_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _flush_redis(db_number: int) -> None:
    import redis

    try:
        client = redis.Redis.from_url(f"{REDIS_URL}/{db_number}", socket_timeout=5)
        client.flushdb()
        client.close()
    except redis.RedisError as exc:
        pytest.fail(f"the deployed lane needs Redis on 127.0.0.1:6379: {exc}")


def _wait_for_gunicorn(lane: Lane, process: subprocess.Popen, log: Path) -> None:
    def healthy():
        assert process.poll() is None, f"gunicorn exited {process.returncode}:\n{_tail(log)}"
        try:
            with urllib.request.urlopen(f"{lane.base_url}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    poll(healthy, timeout=60, what="gunicorn to answer /healthz",
         explain=lambda: _tail(log))
    # Both web processes are up: gunicorn logs one "Booting worker" line per process.
    poll(lambda: log.read_text(errors="replace").count("Booting worker") >= 2, timeout=30,
         what="two gunicorn web processes", explain=lambda: _tail(log))


@pytest.fixture(scope="module")
def lane() -> Iterator[Lane]:
    gunicorn_conf = ROOT / "gunicorn.conf.py"
    if not gunicorn_conf.exists():
        pytest.fail("gunicorn.conf.py is missing at the repository root: the deployed lane "
                    "runs `gunicorn -c gunicorn.conf.py wsgi:app`")
    users = [address.split("@")[0] for address in (SUBSCRIBER, *BULK)]
    with running_postfix(users=users) as postfix:
        folder = Path(tempfile.mkdtemp(prefix="newsletter-deployed-"))
        database = f"newsletter_deployed_{os.getpid()}"
        redis_db = 1 + os.getpid() % 15
        url = _create_database(database)
        _flush_redis(redis_db)
        key_path, dnsfunc = _dkim_key(folder)
        web_port = free_port()
        base_url = f"http://{HOST}:{web_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env.update({
            "NEWSLETTER_DATABASE_URL": url,
            "NEWSLETTER_SECRET_KEY": secrets.token_urlsafe(48),
            "NEWSLETTER_INSTANCE_DIR": str(folder / "instance"),
            "NEWSLETTER_BASE_URL": base_url,
            "NEWSLETTER_PUBLICATION_NAME": "Modelwire",
            "NEWSLETTER_MAIL_FROM": f"Modelwire <newsletter@{MAIL_DOMAIN}>",
            "NEWSLETTER_POSTAL_ADDRESS": "Modelwire Ltd, 10 Test Lane, London N1 9GU, UK",
            "NEWSLETTER_MAIL_TRANSPORT": "smtp",
            "NEWSLETTER_SMTP_URL": f"{postfix.smtp_url}?rate={RELAY_RATE}",
            "NEWSLETTER_DKIM_SELECTOR": DKIM_SELECTOR,
            "NEWSLETTER_DKIM_DOMAIN": MAIL_DOMAIN,
            "NEWSLETTER_DKIM_PRIVATE_KEY_PATH": str(key_path),
            "NEWSLETTER_BOUNCE_DOMAIN": "bounces.example",
            "NEWSLETTER_BOUNCE_MAILDIR": str(postfix.bounce_maildir),
            "NEWSLETTER_BOUNCE_POLL_SECONDS": "1",
            "NEWSLETTER_RATELIMIT_STORAGE_URL": f"{REDIS_URL}/{redis_db}",
            "NEWSLETTER_WEB_BIND": f"{HOST}:{web_port}",
            "NEWSLETTER_WEB_PROCESSES": "2",
            # A relay that is down is retried after 5 s, 10 s, 20 s… (the default 60 s
            # would only make the lane longer).
            "NEWSLETTER_RETRY_BASE_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
        })
        from newsletter import create_app
        from newsletter.config import load_settings

        app = create_app(load_settings(env))
        engine = create_engine(url)
        lane = Lane(postfix=postfix, env=env, base_url=base_url, engine=engine, app=app,
                    folder=folder, dnsfunc=dnsfunc)
        try:
            upgraded = lane.newsletter("db", "upgrade")
            assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
            for address, role in ((OWNER, "owner"), (EDITOR, "editor")):
                made = lane.newsletter("admin", "create", address, "--role", role,
                                       stdin=PASSWORD + "\n")
                assert made.returncode == 0, made.stdout + made.stderr

            log = folder / "gunicorn.log"
            web = _start([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], env,
                         log)
            lane.processes["gunicorn"] = (web, log)
            for n in (1, 2):
                log = folder / f"worker-{n}.log"
                worker = _start([str(BIN / "newsletter"), "worker", "--poll", "1"], env, log)
                lane.processes[f"worker-{n}"] = (worker, log)
            _wait_for_gunicorn(lane, web, folder / "gunicorn.log")
            _set_up_content(lane)
            yield lane
        finally:
            for process, _ in lane.processes.values():
                _stop(process)
            engine.dispose()
            with app.app_context():
                from newsletter.db import db

                db.engine.dispose()
            _drop_database(database)
            _flush_redis(redis_db)
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


def _set_up_content(lane: Lane) -> None:
    """The owner adds the topic in the admin area; syntheses come by ``newsletter import``."""
    owner = lane.browser()
    owner.sign_in(OWNER)
    added = owner.submit("/admin/topics", name=TOPIC_NAME,
                         description="New models and what they change.")
    assert added.status == 303, added.text[:2000]
    page = owner.get("/admin/topics").text
    match = re.search(r"Added the topic “Frontier models” \(([a-z0-9-]+)\)", page)
    assert match, page[:3000]
    lane.topic_slug = match.group(1)

    published = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    records = [{"external_id": f"lane-{n}", "title": f"Lane synthesis {n}",
                "summary": f"What happened in part {n}, in a few sentences.",
                "source_name": "Lane Wire", "source_url": f"https://wire.example/{n}",
                "topics": [lane.topic_slug], "published_at": published} for n in (1, 2)]
    imported = lane.newsletter("import", "-",
                               stdin="\n".join(json.dumps(r) for r in records) + "\n")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "2 created" in imported.stdout


# -- reading what arrived ------------------------------------------------------------------

def _parse(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def _text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def _edition_of(message: EmailMessage) -> int | None:
    """The edition a list message belongs to: its Message-ID is ``<token.edition@domain>``."""
    match = re.fullmatch(r"<[^.@>]+(?:\.[^.@>]+)*\.(\d+)@[^>]+>", message["Message-ID"] or "")
    return int(match.group(1)) if match and message["List-Id"] else None


def message_key(message: EmailMessage) -> str:
    """What a message is, as a reader would tell: the edition it belongs to (list mail), or
    the account email's subject (confirmation, welcome)."""
    edition = _edition_of(message)
    return f"edition {edition}" if edition is not None else f"account: {message['Subject']}"


def _arrived(lane: Lane, address: str) -> list[EmailMessage]:
    return [_parse(path) for path in maildir_files(lane.postfix.maildir(address))]


def _with_key(lane: Lane, address: str, key: str) -> list[EmailMessage]:
    return [m for m in _arrived(lane, address) if message_key(m) == key]


def _reader_id(lane: Lane, address: str) -> int:
    return lane.scalar("SELECT id FROM readers WHERE email = :e", e=address)


def _suppressed(lane: Lane, addresses) -> set[str]:
    """Which of ``addresses`` are on the suppression list (kept as keyed hashes)."""
    from newsletter.subscribers.addresses import email_hash
    from newsletter.wiring import reader_services

    with lane.app.app_context():
        key = reader_services().hash_key
    hashes = {email_hash(address, key): address for address in addresses}
    rows = lane.sql("SELECT email_hash FROM suppressions")
    return {hashes[row.email_hash] for row in rows if row.email_hash in hashes}


def _insert_readers(lane: Lane, addresses, *, delivery_minute: int) -> None:
    """Active, confirmed readers of the lane's topic, written in bulk with SQL (as a large
    import leaves them), their address hashes made with the product's own key."""
    from sqlalchemy import insert

    from newsletter.db import utcnow
    from newsletter.subscribers.addresses import email_hash
    from newsletter.subscribers.models import Reader, ReaderTopic
    from newsletter.wiring import reader_services

    with lane.app.app_context():
        key = reader_services().hash_key
    now = utcnow()
    topic_id = lane.scalar("SELECT id FROM topics WHERE slug = :s", s=lane.topic_slug)
    with lane.engine.begin() as conn:
        conn.execute(insert(Reader.__table__), [
            {"email": address, "email_hash": email_hash(address, key), "status": "active",
             "source": "import", "confirmed_at": now, "delivery_minute": delivery_minute,
             "timezone": "UTC"} for address in addresses])
        ids = conn.execute(text("SELECT id FROM readers WHERE email = ANY(:emails)"),
                           {"emails": list(addresses)}).scalars().all()
        conn.execute(insert(ReaderTopic.__table__), [
            {"reader_id": reader_id, "topic_id": topic_id, "position": 1} for reader_id in ids])


def _far_minute() -> int:
    """A delivery time twelve hours away: these readers get no digest during the lane."""
    now = datetime.now(UTC)
    return (now.hour * 60 + now.minute + 12 * 60) % 1440


def _delivery_counts(lane: Lane, edition_id: int) -> Counter:
    rows = lane.sql("SELECT status, count(*) AS n FROM deliveries WHERE edition_id = :e "
                    "GROUP BY status", e=edition_id)
    return Counter({row.status: row.n for row in rows})


# -- 1. subscribe and confirm --------------------------------------------------------------

def _subscribe(browser: Browser, address: str, slug: str) -> Page:
    return browser.submit("/subscribe", email=address, topic=slug, timezone="UTC",
                          first_name="Ada")


def test_a_reader_subscribes_on_the_web_server_and_confirms_from_their_inbox(lane):
    browser = lane.browser()
    answer = _subscribe(browser, SUBSCRIBER, lane.topic_slug)
    assert answer.status == 200, answer.text[:2000]
    assert "Check your inbox" in answer.text

    [confirmation] = lane.postfix.wait_for("ada", 1, timeout=30)
    assert confirmation["Subject"] == "Confirm your subscription to Modelwire"
    assert confirmation["To"] == SUBSCRIBER
    match = re.search(re.escape(lane.base_url) + r"(/confirm/\S+)", _text_of(confirmation))
    assert match, _text_of(confirmation)
    link = match.group(1)

    page = browser.get(link)
    assert page.status == 200
    assert "Confirm my subscription" in page.text
    assert lane.scalar("SELECT status FROM readers WHERE email = :e", e=SUBSCRIBER) == \
        "pending", "opening the link alone must not confirm"
    pressed = browser.post(link, {"csrf_token": page.csrf()})
    assert pressed.status == 303, pressed.text[:2000]
    assert pressed.location.endswith("/preferences?welcome=1")
    assert lane.scalar("SELECT status FROM readers WHERE email = :e", e=SUBSCRIBER) == "active"
    preferences = browser.get("/preferences?welcome=1")
    assert preferences.status == 200 and TOPIC_NAME in preferences.text

    messages = lane.postfix.wait_for("ada", 2, timeout=30)
    assert [m["Subject"] for m in messages] == ["Confirm your subscription to Modelwire",
                                                 "Welcome to Modelwire"]
    for message in messages:
        lane.expect(SUBSCRIBER, message_key(message))

    # Their digest time: the next minute that starts at least 5 s from now, in UTC (what
    # the preference centre would store for a reader who picked it).
    confirmed_at = lane.scalar("SELECT confirmed_at FROM readers WHERE email = :e",
                               e=SUBSCRIBER)
    due = (max(datetime.now(UTC), confirmed_at) + timedelta(seconds=65)).replace(
        second=0, microsecond=0)
    lane.execute("UPDATE readers SET delivery_minute = :m WHERE email = :e",
                 m=due.hour * 60 + due.minute, e=SUBSCRIBER)
    lane.notes["digest_due"] = due

    # The account readers at addresses that cannot receive mail subscribe too (their
    # confirmations are refused at RCPT, or bounced by Postfix a moment later).
    for address in (*ACCOUNT_REFUSED, *ACCOUNT_LATE):
        answer = _subscribe(lane.browser(), address, lane.topic_slug)
        assert answer.status == 200 and "Check your inbox" in answer.text


# -- 2. an editor sends a special edition from the admin area ------------------------------

def test_an_editor_sends_a_special_edition_from_the_admin_area(lane):
    lane.needs("digest_due")
    _insert_readers(lane, (*LIST_LATE, *LIST_REFUSED), delivery_minute=_far_minute())
    editor = lane.browser()
    editor.sign_in(EDITOR)
    saved = editor.submit("/admin/editions/new", subject="Lane special: the week in models",
                          preheader="Three things worth knowing",
                          markdown="# This week\n\nThree things worth knowing.\n",
                          topics=lane.topic_slug, tier="all")
    assert saved.status == 303, saved.text[:3000]
    edition_id = int(re.search(r"/admin/editions/(\d+)/edit$", saved.location).group(1))

    confirm = editor.get(f"/admin/editions/{edition_id}/send")
    assert confirm.status == 200, confirm.text[:3000]
    # Ada and the three list readers at dead addresses; not the unconfirmed subscribers.
    assert 'id="confirm-count">4</strong>' in confirm.text
    sent = editor.post(f"/admin/editions/{edition_id}/send",
                       {"csrf_token": confirm.csrf(), "expected": "4", "when": "now",
                        "offset_minutes": "0"})
    assert sent.status == 303, sent.text[:3000]
    assert "Sending to 4 readers." in editor.get(sent.location).text

    key = f"edition {edition_id}"
    arrived = poll(lambda: _with_key(lane, SUBSCRIBER, key), timeout=60,
                   what="the special edition in Ada's Maildir", explain=lane.logs)
    assert arrived[0]["Subject"] == "Lane special: the week in models"
    assert "Three things worth knowing." in _text_of(arrived[0])
    lane.expect(SUBSCRIBER, key)
    lane.notes["special_edition"] = edition_id


# -- 3. dead addresses end suppressed ------------------------------------------------------

def test_readers_at_dead_addresses_end_suppressed(lane):
    lane.needs("special_edition")
    dead = (*LIST_LATE, *LIST_REFUSED, *ACCOUNT_LATE, *ACCOUNT_REFUSED)
    lane.check_processes()
    poll(lambda: _suppressed(lane, dead) == set(dead), timeout=60,
         what="every dead address on the suppression list",
         explain=lambda: f"suppressed so far: {sorted(_suppressed(lane, dead))}\n{lane.logs()}")

    # Postfix's own DSNs arrived, one per late.example address, and the workers read them all
    # (read reports move to cur/).
    dsns = [_parse(path) for path in maildir_files(lane.postfix.bounce_maildir)]
    recipients = sorted(
        part.get_payload()[1]["Final-Recipient"].split(";")[1].strip()
        for dsn in dsns for part in dsn.iter_parts()
        if part.get_content_type() == "message/delivery-status")
    assert recipients == sorted((*LIST_LATE, *ACCOUNT_LATE))
    poll(lambda: not any((lane.postfix.bounce_maildir / "new").iterdir()), timeout=30,
         what="the workers to move every read report to cur/", explain=lane.logs)

    # The list deliveries: the refused one bounced at RCPT with Postfix's answer; the late
    # ones were accepted (sent) and then turned bounced by the DSN. Each report counted
    # once, though two workers read the one Maildir.
    edition = lane.notes["special_edition"]
    rows = {row.email: row for row in lane.sql(
        "SELECT r.email, d.status, d.relay_reply, d.last_error FROM deliveries d "
        "JOIN readers r ON r.id = d.reader_id WHERE d.edition_id = :e", e=edition)}
    assert {address: row.status for address, row in rows.items()} == {
        SUBSCRIBER: "sent", **{address: "bounced" for address in (*LIST_LATE, *LIST_REFUSED)}}
    refused = rows[LIST_REFUSED[0]]
    assert "550" in refused.last_error and "5.1.1" in refused.last_error, refused
    for address in LIST_LATE:
        assert rows[address].relay_reply.startswith("250 "), rows[address]
    events = Counter((e.kind, e.source) for e in lane.sql("SELECT kind, source FROM bounce_events"))
    assert events == Counter({("hard_bounce", "dsn"): len(LIST_LATE) + len(ACCOUNT_LATE),
                              ("hard_bounce", "smtp"): len(LIST_REFUSED) + len(ACCOUNT_REFUSED)})
    lane.notes["suppressed"] = sorted(dead)
    # Nobody at a dead address got anything.
    for address in dead:
        assert not lane.postfix.maildir(address).exists() or \
            not maildir_files(lane.postfix.maildir(address))


def test_a_postfix_dsn_about_a_message_that_is_not_ours_changes_nothing(lane):
    """Anyone can make Postfix bounce a message back to our bounce domain, with a return
    path shaped like ours: the DSN is Postfix's own, read by the workers, and changes
    nothing (no bounce event, no suppression), because its token is not one we signed."""
    lane.needs("suppressed")
    events = lane.scalar("SELECT count(*) FROM bounce_events")
    suppressions = lane.scalar("SELECT count(*) FROM suppressions")
    before = len(maildir_files(lane.postfix.bounce_maildir))
    forged = EmailMessage()
    forged["From"] = f"Modelwire <newsletter@{MAIL_DOMAIN}>"
    forged["To"] = "ghost@late.example"
    forged["Subject"] = "Not one of ours"
    forged["X-Newsletter-Token"] = "zz99-AAAAAAAAAA"
    forged.set_content("A message we never sent.\n")
    with smtplib.SMTP(HOST, lane.postfix.port, timeout=10) as smtp:
        smtp.send_message(forged, from_addr="bounces+zz99-AAAAAAAAAA@bounces.example",
                          to_addrs=["ghost@late.example"])
    lane.postfix.flush()
    poll(lambda: len(maildir_files(lane.postfix.bounce_maildir)) == before + 1, timeout=60,
         what="Postfix's DSN for the forged message", explain=lane.postfix.queue_listing)
    poll(lambda: not any((lane.postfix.bounce_maildir / "new").iterdir()), timeout=30,
         what="the workers to read it", explain=lane.logs)
    assert lane.scalar("SELECT count(*) FROM bounce_events") == events
    assert lane.scalar("SELECT count(*) FROM suppressions") == suppressions
    lane.notes["foreign_dsns"] = 1


# -- 4. the digest at the reader's time ----------------------------------------------------

def test_a_digest_goes_out_at_the_readers_time(lane):
    lane.needs("digest_due", "suppressed")
    due: datetime = lane.notes["digest_due"]
    wait = max(0.0, (due - datetime.now(UTC)).total_seconds())
    # The workers compose due digests every minute: the digest is there within a minute
    # or so of the reader's time.
    digests = poll(lambda: [m for m in _arrived(lane, SUBSCRIBER)
                            if "digest." in (m["List-Id"] or "")],
                   timeout=wait + 100, what=f"Ada's digest (due {due:%H:%M:%S} UTC)",
                   explain=lane.logs, interval=0.5)
    [digest] = digests
    sent_at = lane.scalar(
        "SELECT d.sent_at FROM deliveries d JOIN editions e ON e.id = d.edition_id "
        "WHERE e.kind = 'digest' AND d.reader_id = :r", r=_reader_id(lane, SUBSCRIBER))
    assert sent_at >= due, f"sent at {sent_at}, before the reader's time {due}"
    body = _text_of(digest)
    assert "Lane synthesis 1" in body and "Lane synthesis 2" in body
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    lane.expect(SUBSCRIBER, message_key(digest))
    lane.notes["digest"] = message_key(digest)
    # Only Ada was due: nobody else has a digest delivery.
    assert lane.scalar("SELECT count(*) FROM deliveries d JOIN editions e "
                       "ON e.id = d.edition_id WHERE e.kind = 'digest'") == 1


# -- 5. the MTA stops in the middle of a send ----------------------------------------------

def _bulk_files(lane: Lane) -> int:
    """Messages in the bulk readers' Maildirs (the big edition is all they ever get), counted
    without reading them: cheap enough to poll while the send runs."""
    return sum(len(maildir_files(lane.postfix.maildir(address))) for address in BULK)


def test_the_mta_stops_for_20_seconds_in_the_middle_of_a_send_and_nothing_is_lost(lane):
    lane.needs("suppressed", "digest")
    _insert_readers(lane, BULK, delivery_minute=_far_minute())
    markdown = "# Big news\n\nOne edition for every reader, through an outage.\n"
    created = lane.newsletter("edition", "create", "--subject", "Lane special: everyone",
                              "--markdown", "-", "--topics", lane.topic_slug,
                              "--send-at", "now", stdin=markdown)
    assert created.returncode == 0, created.stdout + created.stderr
    edition_id = int(re.search(r"\d+", created.stdout).group(0))
    key = f"edition {edition_id}"
    audience = (SUBSCRIBER, *BULK)  # the dead addresses are suppressed by now

    # Stop Postfix once a fifth of the readers have it.
    poll(lambda: _bulk_files(lane) >= len(BULK) // 5, timeout=60,
         what="the send to get going", explain=lane.logs, interval=0.05)
    lane.postfix.stop()
    stopped_at = time.monotonic()
    at_stop = _bulk_files(lane)
    try:
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP(HOST, lane.postfix.port, timeout=5)
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        during = _delivery_counts(lane, edition_id)
        at_start = _bulk_files(lane)
    finally:
        lane.postfix.start()
    lane.notes["outage"] = {"delivered_before_stop": at_stop, "during": dict(during)}
    assert at_stop < len(BULK), "the send was over before Postfix stopped"
    assert at_start == at_stop, "mail arrived while the MTA was down?"
    assert during["failed"] == 0, during

    poll(lambda: all(status not in _delivery_counts(lane, edition_id)
                     for status in ("queued", "claimed", "deferred")),
         timeout=150, what="every delivery of the big edition to be settled",
         explain=lambda: f"{_delivery_counts(lane, edition_id)}\n{lane.logs()}", interval=0.5)
    counts = _delivery_counts(lane, edition_id)
    assert counts == Counter({"sent": len(audience)}), counts
    poll(lambda: _bulk_files(lane) >= len(BULK), timeout=30,
         what="every bulk reader's copy in their Maildir",
         explain=lambda: f"{_bulk_files(lane)} of {len(BULK)}\n{lane.postfix.log_tail()}")
    for address in audience:
        lane.expect(address, key)
    poll(lambda: _with_key(lane, SUBSCRIBER, key), timeout=30,
         what="the big edition in Ada's Maildir", explain=lane.postfix.log_tail)
    assert lane.scalar("SELECT count(*) FROM deliveries WHERE status = 'failed'") == 0


# -- 6. exactly one copy of everything, DKIM-valid -----------------------------------------

def test_every_reader_has_exactly_one_dkim_valid_copy_of_each_message(lane, capsys):
    import dkim

    lane.needs("outage")
    # Every reader's mail has arrived by now (each earlier test waited for its own); wait
    # a moment for stragglers that would be duplicates, then count.
    poll(lambda: "Mail queue is empty" in lane.postfix.queue_listing(), timeout=30,
         what="Postfix's queue to empty", explain=lane.postfix.queue_listing)
    delivered = lost = duplicated = unexpected = 0
    invalid: list[str] = []
    problems: list[str] = []
    for address in (SUBSCRIBER, *BULK):
        messages = _arrived(lane, address)
        by_id = Counter(m["Message-ID"] for m in messages)
        by_key = Counter(message_key(m) for m in messages)
        expected = lane.expected.get(address, set())
        delivered += len(by_id)
        for key in expected - set(by_key):
            lost += 1
            problems.append(f"{address}: lost {key}")
        for key, n in by_key.items():
            if key not in expected:
                unexpected += n
                problems.append(f"{address}: unexpected {key} ×{n}")
            elif n > 1:
                duplicated += n - 1
                problems.append(f"{address}: {key} ×{n}")
        duplicated += sum(n - 1 for n in by_id.values() if n > 1)
        for path in maildir_files(lane.postfix.maildir(address)):
            raw = path.read_bytes()
            if not dkim.verify(raw, dnsfunc=lane.dnsfunc):
                invalid.append(f"{address}: {message_key(_parse(path))}")

    dead = (*LIST_LATE, *LIST_REFUSED, *ACCOUNT_LATE, *ACCOUNT_REFUSED)
    suppressed = _suppressed(lane, dead)
    dsns = len(maildir_files(lane.postfix.bounce_maildir)) - lane.notes.get("foreign_dsns", 0)
    refused_at_rcpt = lane.postfix.log_path.read_text(errors="replace").count(
        "NOQUEUE: reject: RCPT")
    failed = lane.scalar("SELECT count(*) FROM deliveries WHERE status = 'failed'")
    outage = lane.notes.get("outage", {})
    with capsys.disabled():
        print(f"\ndeployed lane: delivered={delivered} bounced={dsns + refused_at_rcpt} "
              f"(dsn={dsns}, refused_at_rcpt={refused_at_rcpt}) "
              f"suppressed={len(suppressed)} lost={lost} duplicated={duplicated} "
              f"unexpected={unexpected} failed={failed} dkim_invalid={len(invalid)} "
              f"outage={outage} wall={time.monotonic() - lane.started:.0f}s")

    assert problems == [], problems
    assert (lost, duplicated, unexpected) == (0, 0, 0)
    assert invalid == [], f"DKIM signatures that do not verify: {invalid}"
    assert suppressed == set(dead)
    assert dsns == len(LIST_LATE) + len(ACCOUNT_LATE)
    assert refused_at_rcpt == len(LIST_REFUSED) + len(ACCOUNT_REFUSED)
    assert failed == 0
    # Ada: confirmation, welcome, the editor's edition, the digest, the big edition.
    assert len(lane.expected[SUBSCRIBER]) == 5
    assert delivered == 5 + len(BULK)
