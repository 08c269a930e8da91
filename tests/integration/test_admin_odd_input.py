"""The admin area against an attacker: every route (read from the app's URL map, so a new
route is covered the day it is added) with every method, signed out and as a viewer; odd
ids and page numbers; huge bodies; open redirects after sign-in; odd sign-in input; and
the cookie and caching headers. Each answer is a clear 4xx or the normal page — never a
500, never a change made by someone who may not make it."""

from __future__ import annotations

import itertools
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from sqlalchemy import select
from werkzeug.routing import AnyConverter, IntegerConverter

from newsletter.accounts.models import Admin, AuditEntry
from newsletter.content.models import Synthesis, Topic
from newsletter.db import db
from newsletter.delivery.models import Delivery
from newsletter.editions.models import Edition
from tests.factories import make_synthesis
from tests.support.admins import PASSWORD, csrf, make_admin, sign_in
from tests.support.readers import csrf_from

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
OPEN = {"admin.login", "admin.login_code"}
# What any admin may do to their own account, whatever the role.
SELF_SERVICE = OPEN | {"admin.logout", "admin.logout_everywhere", "admin.two_factor",
                       "admin.change_password", "admin.end_session"}
# Values for the string parts of a route that reach the view's own checks.
SAMPLES = {"day": "2024-05-01", "name": "readers"}
WATCHED = (Edition, Synthesis, Topic, Admin, AuditEntry, Delivery)
# A form that would get through every view's validation if its permission check were gone.
EVERYTHING = {"subject": "Taken over", "preheader": "", "markdown": "Taken over.",
              "tier": "all", "status": "published", "change": "disable", "role": "owner",
              "move": "up", "name": "Taken over", "description": "Taken over",
              "premium": "on", "confirm": "yes", "expected": "0", "when": "now",
              "to": "viewer@news.example", "email": "new@news.example",
              "password": PASSWORD, "step": "start", "title": "Taken over"}
HUGE = "9" * 5000


@pytest.fixture
def app_config(app_config):
    # These tests sign in far more often than a person; the per-IP limit is tested elsewhere.
    app_config["ADMIN_LOGIN_LIMIT_PER_IP"] = "10000/minute"
    return app_config


@pytest.fixture
def things(app, topics):
    """One of each kind of row a route can name, so ids in URLs reach real records."""
    make_admin("owner@news.example", "owner")
    make_admin("viewer@news.example", "viewer")
    other = make_admin("other@news.example", "editor")
    synthesis = make_synthesis()
    edition = Edition(subject="A draft", kind="special", status="draft",
                      content={"sections": [], "body_html": "<p>Hi</p>", "body_text": "Hi",
                               "markdown": "Hi"},
                      audience={"topics": [], "tier": "all"})
    db.session.add(edition)
    db.session.commit()
    return {"edition_id": edition.id, "synthesis_id": synthesis.id,
            "topic_id": topics[0].id, "admin_id": other.id}


def admin_rules(app):
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")]
    assert len(rules) > 20, "the admin routes are found in the URL map"
    return rules


def urls_of(rule, ids: dict | None = None, placeholder: int | None = None) -> list[str]:
    """The rule's URLs: every choice of each ``any(...)`` part; ints from ``ids`` (or
    ``placeholder``), other parts from :data:`SAMPLES`."""
    ids = ids or {}
    choices = []
    for name, converter in rule._converters.items():
        if isinstance(converter, AnyConverter):
            choices.append([(name, item) for item in sorted(converter.items)])
        elif isinstance(converter, IntegerConverter):
            choices.append([(name, placeholder if placeholder is not None
                             else ids.get(name, 1))])
        else:
            choices.append([(name, SAMPLES.get(name, "x"))])
    return [rule.build(dict(combo))[1] for combo in itertools.product(*choices)]


def int_rules(app):
    return [r for r in admin_rules(app)
            if any(isinstance(c, IntegerConverter) for c in r._converters.values())]


def snapshot() -> dict:
    """Every row of the tables an admin action changes."""
    db.session.expire_all()
    state = {}
    for model in WATCHED:
        table = model.__table__
        state[table.name] = [tuple(row) for row in db.session.execute(
            select(table).order_by(*table.primary_key.columns))]
    return state


def goes_to_login(response) -> bool:
    return (response.status_code in (302, 303)
            and urlsplit(response.headers["Location"]).path == "/admin/login")


# -- (a) signed out ------------------------------------------------------------------------

def test_signed_out_every_route_and_method_is_refused(app, client, things):
    token = csrf_from(client, "/admin/login")  # a real token does not open anything either
    before = snapshot()
    for rule in admin_rules(app):
        for url in urls_of(rule, things):
            for method in METHODS:
                for data in ({}, {"csrf_token": token, **EVERYTHING}):
                    if data and method not in ("POST", "PUT", "PATCH", "DELETE"):
                        continue
                    response = client.open(url, method=method, data=data)
                    where = f"{method} {url} {'with' if data else 'without'} a token"
                    status = response.status_code
                    assert status != 500, where
                    if method not in rule.methods:
                        assert status == 405, where
                    elif method == "OPTIONS":
                        assert status == 401 or (status == 200 and not response.data), where
                    elif rule.endpoint in OPEN and method in ("GET", "HEAD"):
                        assert status == 200 or goes_to_login(response), where
                    elif method in ("GET", "HEAD") and rule.rule.endswith(".json"):
                        assert status == 401, where  # a script polls it: no login page
                    elif method in ("GET", "HEAD"):
                        assert goes_to_login(response), where
                    else:
                        assert status in (400, 401) or goes_to_login(response), where
                        if rule.endpoint not in OPEN:
                            assert status in (400, 401), where
    after = snapshot()
    # The sign-in forms, posted with odd input, count and audit a failed sign-in: that is
    # their job. Nothing else may change.
    assert {row[4] for row in after.pop("audit_log")} <= {"sign-in refused", "locked out"}
    before.pop("audit_log")
    assert after == before


def test_signed_out_json_routes_answer_401_not_a_login_page(app, client, things):
    for rule in admin_rules(app):
        if "GET" in rule.methods and rule.rule.endswith(".json"):
            for url in urls_of(rule, things):
                response = client.get(url)
                assert response.status_code == 401, url
                assert response.is_json, url


# -- (b) a viewer --------------------------------------------------------------------------

def test_a_viewer_posting_anywhere_without_a_token_changes_nothing(app, client, things):
    sign_in(client, "viewer@news.example")
    before = snapshot()
    for rule in admin_rules(app):
        if "POST" not in rule.methods:
            continue
        # The CSV upload checks the role before it reads the body (so a viewer cannot make
        # it read 50 MB) and its CSRF token only then: a viewer gets the 403 first.
        expected = 403 if rule.endpoint == "admin.reader_import" else 400
        for url in urls_of(rule, things):
            response = client.post(url, data=EVERYTHING)
            assert response.status_code == expected, url
            assert snapshot() == before, url
    assert client.get("/admin/").status_code == 200  # still signed in


def test_a_viewer_posting_anywhere_with_a_token_is_forbidden(app, client, things):
    sign_in(client, "viewer@news.example")
    token = csrf(client)
    before = snapshot()
    for rule in admin_rules(app):
        if "POST" not in rule.methods or rule.endpoint in SELF_SERVICE:
            continue
        for url in urls_of(rule, things):
            response = client.post(url, data={"csrf_token": token, **EVERYTHING})
            assert response.status_code == 403, url
            assert snapshot() == before, url


def test_a_viewer_other_methods_are_not_allowed(app, client, things):
    sign_in(client, "viewer@news.example")
    before = snapshot()
    for rule in admin_rules(app):
        for url in urls_of(rule, things):
            for method in ("PUT", "DELETE", "PATCH"):
                assert client.open(url, method=method).status_code == 405, (method, url)
    assert snapshot() == before


@pytest.mark.parametrize("role", ["viewer", "owner"])
def test_head_answers_like_get_and_changes_nothing(app, client, things, role):
    sign_in(client, f"{role}@news.example")
    before = snapshot()
    for rule in admin_rules(app):
        if "GET" not in rule.methods:
            continue
        for url in urls_of(rule, things):
            head = client.head(url)
            assert snapshot() == before, f"HEAD {url} changed something"
            get = client.get(url)
            before = snapshot()  # a GET of the CSV export is audited; HEAD sends nothing
            assert head.status_code == get.status_code != 500, url
            assert head.data == b"", url
            assert head.mimetype == get.mimetype, url
            assert head.headers.get("Location") == get.headers.get("Location"), url


# -- (c) odd ids and page numbers ----------------------------------------------------------

ODD_IDS = ["²", "١٢", "١", "٣", "𝟏", str(2**70), str(2**63), "-1", "-0", HUGE, "1.0", "0x1",
           "+1", " 1", "1%00"]


def test_odd_ids_in_every_route_are_404(app, client, things):
    sign_in(client, "owner@news.example")
    token = csrf(client)
    marker = 987654321
    before = snapshot()
    for rule in int_rules(app):
        for url in urls_of(rule, things, placeholder=marker):
            for odd in ODD_IDS:
                odd_url = url.replace(str(marker), odd)
                for method in sorted(rule.methods & {"GET", "POST"}):
                    data = {"csrf_token": token, **EVERYTHING} if method == "POST" else None
                    response = client.open(odd_url, method=method, data=data)
                    assert response.status_code == 404, (method, odd_url,
                                                         response.status_code)
    assert snapshot() == before


def test_ids_of_nothing_are_404(app, client, things):
    sign_in(client, "owner@news.example")
    token = csrf(client)
    for rule in int_rules(app):
        # 2**31 - 1 is the largest id a 32-bit column holds; PostgreSQL refuses 2**31.
        for missing in (424242, 2**31 - 1, 2**31, 2**62, 2**63):
            for url in urls_of(rule, things, placeholder=missing):
                for method in sorted(rule.methods & {"GET", "POST"}):
                    data = {"csrf_token": token, **EVERYTHING} if method == "POST" else None
                    response = client.open(url, method=method, data=data)
                    assert response.status_code == 404, (method, url)


PAGINATED = ["/admin/editions", "/admin/audit", "/admin/content",
             "/admin/editions/digests/2024-05-01"]
ODD_PAGES = ["²", "١٢", "99999999999999999999", HUGE, "0", "-1", "1.5", "", "%00"]


@pytest.mark.parametrize("page", ODD_PAGES)
def test_odd_page_numbers_are_404(app, client, things, page):
    sign_in(client, "owner@news.example")
    for path in PAGINATED:
        assert client.get(f"{path}?page=1").status_code == 200, path
        assert client.get(f"{path}?page={page}").status_code == 404, (path, page)


@pytest.mark.parametrize("path", [
    "/admin/editions", "/admin/audit", "/admin/editions/digests/2024-05-01",
    "/admin/content",
])
def test_a_page_past_the_last_is_404(app, client, things, path):
    sign_in(client, "owner@news.example")
    assert client.get(f"{path}?page=1").status_code == 200
    assert client.get(f"{path}?page=2").status_code == 404


ODD_QUERIES = ["page=²", "page=99999999999999999999", f"page={HUGE}",
               "q=%00",
               "q=" + "x" * 10_000,
               "status=²", "topic=%FF%FE", "topic=%00", "tier=%00", "topics=" + "&topics=".join(
                   str(i) for i in range(2000)), "next=//evil.example", "%FF=%FF", "a[]=1&a[b]=2"]


@pytest.mark.parametrize("query", ODD_QUERIES, ids=lambda q: str(q)[:30])
def test_odd_query_strings_on_every_page_are_never_an_error(app, client, things, query):
    sign_in(client, "owner@news.example")
    for rule in admin_rules(app):
        if "GET" not in rule.methods or rule.endpoint in OPEN:
            continue
        for url in urls_of(rule, things):
            plain = client.get(url).status_code
            odd = client.get(f"{url}?{query}").status_code
            assert odd < 500, (url, query)
            assert odd in (plain, 400, 404), (url, query, plain, odd)


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2024-02-30", "²０２4-01-01",
                                 "2024-1-1", "20240101", "x" * 10_000])
def test_odd_digest_days_are_404_or_a_page(app, client, things, day):
    sign_in(client, "owner@news.example")
    response = client.get(f"/admin/editions/digests/{day}")
    assert response.status_code in (200, 404), day


# -- (d) huge bodies -----------------------------------------------------------------------

def test_a_5_mb_form_is_refused_with_413(app, client, things):
    big = "x" * (5 * 1024 * 1024)
    token = csrf_from(client, "/admin/login")
    response = client.post("/admin/login", data={"csrf_token": token, "email": big,
                                                 "password": big})
    assert response.status_code == 413
    sign_in(client, "owner@news.example")
    token = csrf(client, "/admin/editions/new")
    before = snapshot()
    for url in ("/admin/editions/new", f"/admin/editions/{things['edition_id']}/edit"):
        response = client.post(url, data={"csrf_token": token, "subject": "Big",
                                          "markdown": big, "tier": "all"})
        assert response.status_code == 413, url
    assert snapshot() == before


@pytest.mark.parametrize("multipart", [False, True])
def test_ten_thousand_fields_are_handled(app, client, things, multipart):
    many = {f"field{i}": "x" for i in range(10_000)}
    kwargs = {"content_type": "multipart/form-data"} if multipart else {}
    token = csrf_from(client, "/admin/login")
    login = client.post("/admin/login", data={"csrf_token": token, "email": "a@b.example",
                                              "password": "nope", **many}, **kwargs)
    assert login.status_code in (401, 413), login.status_code
    sign_in(client, "owner@news.example")
    token = csrf(client, "/admin/editions/new")
    before = snapshot()
    fields = [("csrf_token", token), ("subject", "Many"), ("markdown", "Hello."),
              ("tier", "all")]
    fields += [("synthesis", str(i)) for i in range(5_000)]
    fields += [("topics", f"t{i}") for i in range(5_000)]
    from werkzeug.datastructures import MultiDict

    response = client.post("/admin/editions/new", data=MultiDict(fields), **kwargs)
    assert response.status_code in (400, 413), response.status_code
    assert snapshot() == before
    response = client.post("/admin/editions/new", data={**many, "csrf_token": token,
                                                        "subject": "Many", "tier": "all",
                                                        "markdown": "Hello."}, **kwargs)
    assert response.status_code in (303, 413), response.status_code


# -- (e) open redirects --------------------------------------------------------------------

def lands_inside_admin(location: str) -> bool:
    """Where a browser goes with this Location: it treats ``\\`` as ``/`` and ``%2e`` as a
    dot, and resolves dot segments."""
    url = urljoin("http://localhost/admin/login", location.replace("\\", "/"))
    parts = urlsplit(url)
    path = parts.path.replace("%2e", ".").replace("%2E", ".")
    resolved = urlsplit(urljoin("http://localhost/", path)).path
    return (parts.scheme == "http" and parts.netloc == "localhost"
            and (resolved == "/admin" or resolved.startswith("/admin/")))


EVIL_NEXT = ["https://evil.example", "//evil.example", "/\\evil.example", "\\\\evil.example",
             "/admin/../../evil", "/admin/../evil", "/admin/%2e%2e/%2e%2e/evil",
             "/admin/%2E%2E/evil", "/admin/./../evil", "/admin/..", "/admin\\..\\evil",
             "https:evil.example", "javascript:alert(1)", "/admin@evil.example",
             "/administrator", "/admin\t/../evil", "/admin/\r\nLocation: https://evil.example",
             "/admin/%0d%0aLocation:%20https://evil.example", "/%2F%2Fevil.example",
             "\x00/admin", "/admin/\x00", "ftp://evil.example/admin", " //evil.example"]


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_sign_in_never_sends_the_browser_outside_the_admin_area(app, client, things, target):
    page = client.get("/admin/login", query_string={"next": target})
    assert page.status_code == 200
    token = csrf_from(client, "/admin/login")
    response = client.post("/admin/login", data={
        "email": "owner@news.example", "password": PASSWORD, "next": target,
        "csrf_token": token})
    assert response.status_code in (302, 303)
    assert lands_inside_admin(response.headers["Location"]), response.headers["Location"]
    # Signed in already, the login page redirects the same way.
    again = client.get("/admin/login", query_string={"next": target})
    assert again.status_code in (302, 303)
    assert lands_inside_admin(again.headers["Location"]), again.headers["Location"]


def test_the_next_page_inside_the_admin_area_is_kept(app, client, things):
    start = client.get("/admin/editions?page=1")
    assert goes_to_login(start)
    target = "/admin/editions?page=1"
    assert parse_qs(urlsplit(start.headers["Location"]).query)["next"] == [target]
    response = client.post("/admin/login", data={
        "email": "owner@news.example", "password": PASSWORD, "next": target,
        "csrf_token": csrf_from(client, "/admin/login")})
    assert response.headers["Location"] == target


def test_the_next_field_cannot_inject_markup(app, client):
    page = client.get("/admin/login", query_string={"next": '"><script>alert(1)</script>'})
    text = page.get_data(as_text=True)
    assert "<script>alert(1)" not in text and "&#34;&gt;&lt;script&gt;" in text


# -- (f) odd sign-in input -----------------------------------------------------------------

ODD_LOGINS = [
    {"email": "a" * 10_000 + "@news.example", "password": PASSWORD},
    {"email": "owner@news.example", "password": "p" * 10_000},
    {"email": "owner@news.example\x00", "password": PASSWORD},
    {"email": "\x00", "password": "\x00"},
    {"email": "owner@news.example", "password": "\x00" + PASSWORD},
    {"email": "owner@news.example", "password": ""},
    {"email": "", "password": ""},
    {"email": "ówner@news.example", "password": "pässwörd" * 3},
    {"email": "\ufffd@news.example", "password": "x"},
]


@pytest.mark.parametrize("fields", ODD_LOGINS, ids=range(len(ODD_LOGINS)))
def test_odd_sign_in_input_is_refused_not_an_error(app, client, things, fields):
    token = csrf_from(client, "/admin/login")
    response = client.post("/admin/login", data={"csrf_token": token, **fields})
    assert response.status_code == 401, response.status_code
    assert "do not match" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("body", [
    "email=%FF%FE%FD&password=%FF",
    "email=owner%40news.example%00&password=correct+horse+battery+staple",
    "email=%ED%A0%80%40news.example&password=%C0%AF",
    "email=owner@news.example&email=viewer@news.example&password=x",
    "email&password",
    "%FF%FF=1&email=x&password=y",
])
def test_a_login_form_that_is_not_utf_8_is_refused(app, client, things, body):
    token = csrf_from(client, "/admin/login")
    response = client.post("/admin/login", data=f"csrf_token={token}&{body}",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 401, response.status_code
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("token", ["", "x", "%FF%FE", "\x00", "a" * 10_000])
def test_a_forged_csrf_token_is_400(app, client, things, token):
    csrf_from(client, "/admin/login")
    response = client.post("/admin/login", data={"csrf_token": token,
                                                 "email": "owner@news.example",
                                                 "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302


def test_odd_fields_to_the_owner_forms_are_refused_not_errors(app, client, things):
    sign_in(client, "owner@news.example")
    token = csrf(client)
    before = snapshot()
    for email in ("a" * 10_000 + "@news.example", "new@news.example\x00", "\x00@\x00",
                  "new@\u2028news.example"):
        response = client.post("/admin/accounts", data={
            "csrf_token": token, "email": email, "password": PASSWORD, "role": "viewer"})
        assert response.status_code == 400, repr(email[:40])
    for role in ("", "root", "owner\x00", "²"):
        response = client.post(f"/admin/accounts/{things['admin_id']}", data={
            "csrf_token": token, "change": "role", "role": role})
        assert response.status_code == 400, repr(role)
    for change in ("", "delete", "\x00"):
        response = client.post(f"/admin/accounts/{things['admin_id']}", data={
            "csrf_token": token, "change": change})
        assert response.status_code == 400, repr(change)
    assert snapshot() == before


@pytest.mark.parametrize("fields", [
    {"expected": "²"}, {"expected": HUGE}, {"expected": "-1"},
    {"expected": "1", "when": "later", "send_at": "9999-12-31T23:59", "offset_minutes": "-840"},
    {"expected": "1", "when": "later", "send_at": "2999-12-31T23:59", "offset_minutes": "²"},
    {"expected": "1", "when": "later", "send_at": "2999-12-31T23:59", "offset_minutes": HUGE},
    {"expected": "1", "when": "later", "send_at": "２０９９-01-01T00:00"},
    {"expected": "1", "when": "later", "send_at": "x" * 10_000},
    {"expected": "1", "when": "later", "send_at": "2099-01-01T00:00+05:00"},
])
def test_odd_send_forms_are_refused_not_errors(app, client, things, fields):
    from tests.factories_readers import make_reader

    make_reader("ada@example.com", topics=("ai-policy-and-safety",))
    sign_in(client, "owner@news.example")
    url = f"/admin/editions/{things['edition_id']}/send"
    response = client.post(url, data={"csrf_token": csrf(client), **fields})
    assert response.status_code in (400, 409), response.status_code
    assert db.session.get(Edition, things["edition_id"]).status == "draft"


@pytest.mark.parametrize("to", ["", "x" * 10_000, "a@b\x00.example", "\r\nBcc: x@evil.example",
                                "a@b.example\r\nBcc: x@evil.example", "²@²"])
def test_odd_test_send_addresses_are_refused_not_errors(app, client, things, to):
    sign_in(client, "owner@news.example")
    url = f"/admin/editions/{things['edition_id']}/test"
    response = client.post(url, data={"csrf_token": csrf(client), "to": to})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert ("was not sent" in page) or (to == "" and "A test was sent to" in page)


# -- (g) cookies and caching ---------------------------------------------------------------

def _session_cookie(response) -> str:
    cookies = [v for k, v in response.headers.items()
               if k == "Set-Cookie" and v.startswith("session=")]
    assert cookies, "the response sets the session cookie"
    return cookies[0]


def test_the_admin_session_cookie_is_http_only_and_same_site(app, client, things):
    login_page = client.get("/admin/login")
    signed_in = sign_in(client, "owner@news.example")
    for response in (login_page, signed_in):
        flags = [flag.strip().lower() for flag in _session_cookie(response).split(";")]
        assert "httponly" in flags
        assert "samesite=lax" in flags or "samesite=strict" in flags
        assert "secure" in flags  # the base URL is https
    assert not any(k == "Set-Cookie" and v.startswith("remember_token=")
                   for k, v in signed_in.headers.items())


def test_every_admin_page_says_no_store(app, client, things):
    assert client.get("/admin/login").headers["Cache-Control"] == "no-store"
    assert client.get("/admin/").headers["Cache-Control"] == "no-store"  # the redirect too
    sign_in(client, "owner@news.example")
    for rule in admin_rules(app):
        if "GET" not in rule.methods:
            continue
        for url in urls_of(rule, things):
            response = client.get(url)
            assert response.headers.get("Cache-Control") == "no-store", (
                url, response.status_code, response.headers.get("Cache-Control"))
    assert client.get("/admin/editions/424242").headers["Cache-Control"] == "no-store"
