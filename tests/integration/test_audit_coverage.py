"""Every change made by an admin, an API token or a command is in the audit log, naming who.

The lists of what can change state are derived, not written down: every POST, PUT, PATCH or
DELETE rule under ``/admin`` and ``/api`` in ``app.url_map``, and every command reachable
from ``newsletter``'s click group. Each must be in a table below — with a way to call it
that succeeds — or in an exemption list that says why it writes no entry. A new route or
command in neither fails :func:`test_every_route_is_in_the_table` or
:func:`test_every_command_is_in_the_table`; one in the table that writes no entry fails
its own case.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import pytest
from sqlalchemy import func, select

from newsletter.accounts.models import AuditEntry
from newsletter.db import db
from tests.factories import make_synthesis, synthesis_payload
from tests.factories_readers import make_reader
from tests.support.admins import PASSWORD, csrf, make_admin, signed_in

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
OWNER = "owner@news.example"
COMMAND = "command line ("  # then user@host
FEEDS = Path(__file__).parent.parent / "data" / "feeds"

# Routes that write no entry of their own here, and why.
ROUTE_EXEMPT = {
    # Covered by tests/integration/test_admin_sessions.py: signing in and out, the second
    # factor, the password and the sessions list (web/admin/auth.py), whose entries —
    # failed sign-ins and lockouts included — are checked there.
    "admin.login": "covered by tests/integration/test_admin_sessions.py",
    "admin.login_code": "covered by tests/integration/test_admin_sessions.py",
    "admin.logout": "covered by tests/integration/test_admin_sessions.py",
    "admin.logout_everywhere": "covered by tests/integration/test_admin_sessions.py",
    "admin.end_session": "covered by tests/integration/test_admin_sessions.py",
    "admin.two_factor": "covered by tests/integration/test_admin_sessions.py",
    "admin.change_password": "covered by tests/integration/test_admin_sessions.py",
}

# Commands that change nothing, or whose changes are not a person's action.
COMMAND_EXEMPT = {
    # Read only.
    "admin list": "reads only",
    "api-token list": "reads only",
    "editions": "reads only",
    "feeds list": "reads only",
    "check": "reads only (DNS and the settings)",
    # The system at work, not a person: what the worker and the web process do is each
    # edition's, delivery's and reader's own record (as the scheduler's jobs are).
    "serve": "runs the web process",
    "worker": "runs the scheduler and the sender",
    # The MTA's pipe (Postfix runs it for every report that arrives): each report's effect
    # is recorded on the delivery and the reader it names (outcome, suppression, consent
    # event), as the providers' webhooks' are.
    "bounces process": "the mail system's reports, recorded on each reader",
    # Writes a key file and builds no app (it runs while the app refuses to start for want
    # of that key): there is no database to write an entry to.
    "dkim generate": "writes a file, before there is an app",
}


@dataclass
class World:
    app: object
    owner: object  # a test client signed in as the owner
    runner: object
    auth: dict[str, str]
    owner_id: int
    feed_url: str = ""

    def form(self, **fields) -> dict:
        return {"csrf_token": csrf(self.owner, "/admin/tokens"), **fields}

    def post(self, url: str, **fields):
        return self.owner.post(url, data=self.form(**fields))


def _reader(world: World | None = None):
    reader = make_reader("ada@example.com")
    db.session.commit()
    return reader


@dataclass(frozen=True)
class Case:
    """``setup`` makes what the call needs (its entries are not counted) and returns what
    ``call`` is given; ``call`` is the one request or command whose entry is looked for."""

    call: Callable[[World, object], object]
    setup: Callable[[World], object] = lambda world: None


def _draft(world: World):
    from tests.support.editions import special_edition

    _reader()
    return special_edition()


def _sending(world: World):
    from newsletter.delivery import service as sending
    from newsletter.wiring import mail_setup

    edition = _draft(world)
    sending.start_sending(edition.id, mail_setup())
    return edition


def _paused(world: World):
    from newsletter.editions import service as editions

    edition = _sending(world)
    editions.pause(edition.id)
    return edition


def _suppressed(email: str = "gone@example.com", reason: str = "hard_bounce"):
    from newsletter.subscribers.addresses import email_hash
    from newsletter.subscribers.models import Suppression
    from newsletter.wiring import reader_services

    row = Suppression(email_hash=email_hash(email, reader_services().hash_key), reason=reason)
    db.session.add(row)
    db.session.commit()
    return row


def _upload(world: World, _=None):
    response = world.owner.post("/admin/readers/import", data={
        "file": (io.BytesIO(b"email\nnew@example.com\n"), "readers.csv"),
        "encoding": "utf-8", "csrf_token": csrf(world.owner, "/admin/readers/import")},
        content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    return response


def _upload_id(world: World) -> int:
    return int(_upload(world).headers["Location"].rsplit("/", 1)[1])


def _edit_form(world: World) -> dict:
    import re

    synthesis = make_synthesis()
    page = world.owner.get(f"/admin/content/{synthesis.id}").get_data(as_text=True)
    return {"id": synthesis.id,
            "version": re.search(r'name="version" value="([^"]*)"', page)[1]}


def _api(world: World, method: str, url: str, payload: dict | None = None):
    return world.owner.open(url, method=method, headers=world.auth,
                            **({"json": payload} if payload is not None else {}))


def _topic_id(world: World) -> int:
    from newsletter.content.models import Topic

    return db.session.scalar(select(Topic.id).order_by(Topic.position))


def _token_id(world: World) -> int:
    from newsletter.accounts.audit import AdminActor
    from newsletter.accounts.service import create_token, list_tokens

    create_token("cms", actor=AdminActor(None, "tests"))
    return next(t.id for t in list_tokens() if t.name == "cms")


def _edition_and_count(world: World):
    from newsletter.delivery import service as sending

    edition = _draft(world)
    return edition.id, sending.audience_size(edition)


# endpoint -> how to call it so that it succeeds (each starts from empty tables, topics
# made, the owner signed in and the ``tests`` token with every scope).
ROUTES: dict[str, Case] = {
    "admin.accounts": Case(lambda w, _: w.post("/admin/accounts", email="new@news.example",
                                               role="viewer", password=PASSWORD)),
    "admin.account_change": Case(
        lambda w, admin_id: w.post(f"/admin/accounts/{admin_id}", change="role",
                                   role="viewer"),
        lambda w: make_admin("ed@news.example", "editor").id),
    "admin.synthesis_edit": Case(
        lambda w, form: w.post(f"/admin/content/{form['id']}", version=form["version"],
                               title="A new title", summary="A new summary.", context="",
                               analysis="", watch="", byline="Ada",
                               source_name="Example News", source_url="https://news.example/a",
                               mentions="OpenAI", topics=["ai-policy-and-safety"]),
        _edit_form),
    "admin.synthesis_status": Case(
        lambda w, sid: w.post(f"/admin/content/{sid}/status", status="draft"),
        lambda w: make_synthesis().id),
    "admin.topics": Case(lambda w, _: w.post("/admin/topics", name="Robotics",
                                             description="")),
    "admin.topic_change": Case(lambda w, tid: w.post(f"/admin/topics/{tid}", move="down"),
                               _topic_id),
    "admin.compose": Case(lambda w, _: w.post("/admin/editions/new", subject="Hello",
                                              markdown="Some **news**.", tier="all")),
    "admin.edit": Case(lambda w, e: w.post(f"/admin/editions/{e.id}/edit", subject="Edited",
                                           markdown="Other **news**.", tier="all"),
                       _draft),
    "admin.send_test": Case(lambda w, e: w.post(f"/admin/editions/{e.id}/test", to=OWNER),
                            _draft),
    "admin.send": Case(lambda w, ec: w.post(f"/admin/editions/{ec[0]}/send", when="now",
                                            expected=str(ec[1])),
                       _edition_and_count),
    "admin.edition_action": Case(lambda w, e: w.post(f"/admin/editions/{e.id}/pause"),
                                 _sending),
    "admin.reader_topics": Case(lambda w, r: w.post(f"/admin/readers/{r.id}/topics",
                                                    topic="models-and-research"), _reader),
    "admin.reader_unsubscribe": Case(
        lambda w, r: w.post(f"/admin/readers/{r.id}/unsubscribe"), _reader),
    "admin.reader_suppress": Case(lambda w, r: w.post(f"/admin/readers/{r.id}/suppress",
                                                      note="asked by phone"), _reader),
    "admin.reader_lift": Case(lambda w, r: w.post(f"/admin/readers/{r.id}/lift"),
                              lambda w: (_suppressed("ada@example.com"), _reader(w))[1]),
    "admin.reader_erase": Case(lambda w, r: w.post(f"/admin/readers/{r.id}/erase",
                                                   confirm_email="ada@example.com"), _reader),
    "admin.reader_comp": Case(lambda w, r: w.post(f"/admin/readers/{r.id}/comp",
                                                  action="grant", note="press"), _reader),
    "admin.suppression_add": Case(lambda w, _: w.post("/admin/readers/suppressions/add",
                                                      email="new@example.com")),
    "admin.suppression_lift": Case(
        lambda w, row: w.post(f"/admin/readers/suppressions/{row.id}/lift"),
        lambda w: _suppressed()),
    "admin.reader_import": Case(_upload),
    "admin.reader_import_start": Case(
        lambda w, job: w.post(f"/admin/readers/import/{job}/start", email_column="0",
                              has_header="yes", topics=["ai-policy-and-safety"],
                              consent_source="signup sheet at the 2026 conference"),
        _upload_id),
    "admin.reader_import_discard": Case(
        lambda w, job: w.post(f"/admin/readers/import/{job}/discard"), _upload_id),
    "admin.api_tokens": Case(lambda w, _: w.post("/admin/tokens", name="cms",
                                                 scope=["syntheses:write"])),
    "admin.api_token_revoke": Case(lambda w, tid: w.post(f"/admin/tokens/{tid}/revoke"),
                                   _token_id),
    "api.create_synthesis": Case(lambda w, _: _api(w, "POST", "/api/v1/syntheses",
                                                   synthesis_payload())),
    "api.create_edition": Case(lambda w, _: _api(w, "POST", "/api/v1/editions", {
        "subject": "Breaking", "markdown": "It happened.", "topics": []}), _reader),
    "api.create_subscriber": Case(lambda w, _: _api(w, "POST", "/api/v1/subscribers", {
        "email": "grace@example.com", "topics": ["ai-policy-and-safety"],
        "consent": {"obtained_at": "2026-11-01T10:00:00Z", "wording_version": "cms-1"}})),
    "api.delete_subscriber": Case(
        lambda w, r: _api(w, "DELETE", f"/api/v1/subscribers/{r.id}"), _reader),
}


def _write_rules(app) -> dict[str, str]:
    return {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()
            if rule.methods & WRITES and rule.rule.startswith(("/admin", "/api"))}


def _commands() -> set[str]:
    from newsletter.cli import main

    def walk(group: click.Group, prefix: str) -> Iterator[str]:
        for name, command in group.commands.items():
            path = f"{prefix}{name}"
            if isinstance(command, click.Group):
                yield from walk(command, path + " ")
            else:
                yield path

    return set(walk(main, ""))


@pytest.fixture
def world(app, topics, auth, runner) -> World:
    from newsletter.accounts.models import Admin

    owner = signed_in(app, "owner")
    owner_id = db.session.scalar(select(Admin.id).where(Admin.email == OWNER))
    return World(app=app, owner=owner, runner=runner, auth=auth, owner_id=owner_id)


def _last_id() -> int:
    return db.session.scalar(select(func.max(AuditEntry.id))) or 0


def _entries_after(last: int) -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.id > last)
                                   .order_by(AuditEntry.id)))


# -- routes --------------------------------------------------------------------------------

def _assert_covered(derived: set[str], cases, exempt, what: str, table: str,
                    exempt_name: str, run: str) -> None:
    """Every derived name has a case or an exemption, and neither table names one that is
    gone: a new route or command fails here until it is handled."""
    missing = derived - set(cases) - set(exempt)
    assert not missing, (f"{what} with no audit case: {sorted(missing)}; add each to {table} "
                         f"(with {run} that succeeds) or, with the reason, to {exempt_name}")
    stale = (set(cases) | set(exempt)) - derived
    assert not stale, f"no such {what} any more: {sorted(stale)}"


def test_every_route_is_in_the_table(app):
    _assert_covered(set(_write_rules(app)), ROUTES, ROUTE_EXEMPT, "state-changing routes",
                    "ROUTES", "ROUTE_EXEMPT", "a call")


@pytest.mark.parametrize("endpoint", sorted(ROUTES))
def test_each_route_writes_an_entry_naming_who(world, endpoint):
    case = ROUTES[endpoint]
    made = case.setup(world)
    last = _last_id()
    response = case.call(world, made)
    assert response.status_code in (200, 201, 202, 204, 303), (
        response.status_code, response.get_data(as_text=True)[:500])
    who = "api token tests" if endpoint.startswith("api.") else OWNER
    entries = [e for e in _entries_after(last) if e.actor == who]
    assert entries, f"{endpoint} succeeded and wrote no audit entry naming {who}"
    admin_id = None if endpoint.startswith("api.") else world.owner_id
    assert all((e.admin_id, e.ip) == (admin_id, "127.0.0.1") for e in entries)


# -- commands ------------------------------------------------------------------------------

@contextlib.contextmanager
def _feed_server() -> Iterator[str]:
    """An RSS feed on loopback, reached as ``localhost`` (allowed by the module fixture)."""
    body = (FEEDS / "rss20.xml").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/lab.xml"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def localhost_feeds_allowed(app_config):
    app_config["FEED_ALLOWED_HOSTS"] = ["localhost"]


def _cli(world: World, *args: str, input: str | None = None):
    result = world.runner.invoke(args=list(args), input=input)
    assert result.exit_code == 0, result.output
    return result


def _feed(world: World) -> str:
    """A feed added (its own entry not counted); its id."""
    from newsletter.content.feeds import list_feeds

    _cli(world, "feeds", "add", world.feed_url, "--topic", "ai-policy-and-safety")
    return str(list_feeds()[0].id)


def _demo(world: World) -> None:
    world.app.config["DEVELOPMENT"] = True


def _digest_due(world: World) -> None:
    from datetime import timedelta

    from newsletter.db import utcnow

    _reader()
    for hours in (1, 2):
        make_synthesis(published_at=(utcnow() - timedelta(hours=hours)).isoformat())


# command path -> how to run it so that it succeeds.
COMMANDS: dict[str, Case] = {
    "admin create": Case(lambda w, _: _cli(w, "admin", "create", "new@news.example",
                                           "--role", "editor", input=PASSWORD + "\n")),
    "admin unlock": Case(lambda w, _: _cli(w, "admin", "unlock", OWNER)),
    "admin demo": Case(lambda w, _: _cli(w, "admin", "demo"), _demo),
    "api-token create": Case(lambda w, _: _cli(w, "api-token", "create", "cms")),
    "api-token revoke": Case(lambda w, _: _cli(w, "api-token", "revoke", "tests")),
    "feeds add": Case(lambda w, _: _cli(w, "feeds", "add", w.feed_url, "--topic",
                                        "ai-policy-and-safety")),
    "feeds remove": Case(lambda w, feed: _cli(w, "feeds", "remove", feed), _feed),
    "feeds poll": Case(lambda w, feed: _cli(w, "feeds", "poll", feed), _feed),
    "seed-demo": Case(lambda w, _: _cli(w, "seed-demo")),
    "import": Case(lambda w, _: _cli(w, "import", "-",
                                     input=json.dumps([synthesis_payload()]))),
    "mail send-test": Case(lambda w, _: _cli(w, "mail", "send-test", "--to", OWNER),
                           lambda w: make_synthesis()),
    "edition create": Case(lambda w, _: _cli(w, "edition", "create", "--subject", "Hi",
                                             "--markdown", "-", input="Some **news**."),
                           _reader),
    "edition pause": Case(lambda w, e: _cli(w, "edition", "pause", str(e.id)), _sending),
    "edition resume": Case(lambda w, e: _cli(w, "edition", "resume", str(e.id)), _paused),
    "edition cancel": Case(lambda w, e: _cli(w, "edition", "cancel", str(e.id)), _sending),
    "send": Case(lambda w, e: _cli(w, "send", str(e.id), "--quiet"), _draft),
    "digest": Case(lambda w, _: _cli(w, "digest", "--now"), _digest_due),
}


def test_every_command_is_in_the_table():
    _assert_covered(set(_commands()), COMMANDS, COMMAND_EXEMPT, "commands", "COMMANDS",
                    "COMMAND_EXEMPT", "a run")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_writes_an_entry_naming_the_command_line(world, command):
    case = COMMANDS[command]
    with _feed_server() as world.feed_url:
        made = case.setup(world)
        last = _last_id()
        case.call(world, made)
    entries = [e for e in _entries_after(last) if e.actor.startswith(COMMAND)]
    assert entries, f"`newsletter {command}` succeeded and wrote no audit entry"
    assert all(e.admin_id is None and e.ip is None and e.actor.endswith(")")
               and "@" in e.actor for e in entries)
