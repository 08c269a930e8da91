"""Stripe for tests: a real local Stripe-compatible server and a small front for what it lacks.

* :class:`Localstripe` runs ``localstripe`` (from the package index) on a free loopback
  port, ``--from-scratch``; ``reset()`` empties it between tests. It holds the customers,
  plans, payment methods and subscriptions — created, read and cancelled for real.
* :class:`StripeFront` is the address the app is given as ``NEWSLETTER_STRIPE_API_BASE``. It
  answers what localstripe has not got — Prices, Checkout Sessions (with a Checkout page
  whose *Pay* button makes the subscription at localstripe, sends the signed
  ``checkout.session.completed`` webhook and returns to the success URL), the Billing
  Portal — keeps Stripe's idempotency (the same key and body give the same answer), passes
  every other ``/v1`` call to localstripe, and records each request the app made (method,
  path, headers, form fields) so tests check the exact parameters. ``override()`` changes
  what a subscription reads as (a failed renewal makes it ``past_due``: a real card
  cannot fail later here).
* :func:`signed` makes a webhook body and its ``Stripe-Signature`` as Stripe would.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from newsletter.billing.signature import sign

HOST = "127.0.0.1"
API_KEY = "sk_test_newsletter_tests"  # noqa: S105 - localstripe accepts any test key
WEBHOOK_SECRET = "whsec_newsletter_tests"  # noqa: S105
SITE = "news.example"  # the host of the tests' BASE_URL: our mark in Stripe metadata
PRICES = {
    "price_monthly": {"unit_amount": 800, "currency": "eur", "interval": "month"},
    "price_yearly": {"unit_amount": 8000, "currency": "eur", "interval": "year"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def localstripe_command() -> str:
    found = shutil.which("localstripe") or str(Path(sys.executable).parent / "localstripe")
    if not Path(found).exists():
        raise RuntimeError("localstripe is not installed: `.venv/bin/pip install -e '.[test]'`")
    return found


def _call(url: str, method: str = "GET", data: bytes | None = None,
          headers: dict[str, str] | None = None, timeout: float = 10):
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


class Localstripe:
    """``localstripe --from-scratch`` on a free port, in its own process."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = workdir / "localstripe.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [localstripe_command(), "--port", str(self.port), "--from-scratch"],
                cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, _ = self.api("GET", "/v1/customers")
                if status == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("localstripe did not start:\n"
                                   + self.log.read_text(errors="replace")[-2000:])
            time.sleep(0.2)

    def api(self, method: str, path: str, form: dict[str, str] | None = None):
        data = urlencode(form).encode() if form is not None else None
        return _call(self.url + path, method, data,
                     {"Authorization": f"Bearer {API_KEY}",
                      "Content-Type": "application/x-www-form-urlencoded"})

    def json(self, method: str, path: str, form: dict[str, str] | None = None) -> dict:
        status, body, _ = self.api(method, path, form)
        assert status == 200, f"localstripe {method} {path}: {status} {body[:300]!r}"
        return json.loads(body)

    def reset(self) -> None:
        status, body, _ = _call(self.url + "/_config/data", "DELETE")
        assert status == 200, body

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class Recorded:
    """One request the app sent to Stripe."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


def signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET,
           timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook delivery of ``event``, signed as Stripe signs."""
    body = json.dumps(event).encode()
    moment = int(time.time()) if timestamp is None else timestamp
    return body, {"Stripe-Signature": f"t={moment},v1={sign(body, secret, moment)}",
                  "Content-Type": "application/json"}


def event(kind: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    return {"id": "evt_" + secrets.token_hex(12), "object": "event", "type": kind,
            "api_version": "2026-10-28.endive", "created": created or int(time.time()),
            "livemode": False, "data": {"object": obj}}


@dataclass
class StripeFront:
    """Stripe's address for the app under test (see the module docstring)."""

    localstripe: Localstripe
    webhook_url: str | None = None          # the live server's /hooks/stripe, if any
    requests: list[Recorded] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    delivered: list[tuple[str, int]] = field(default_factory=list)  # (event type, status)
    down: bool = False                       # answer every API call with a 503
    _idempotent: dict[str, tuple[bytes, int, bytes]] = field(default_factory=dict)

    def __post_init__(self):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                front._handle(self, "GET")

            def do_POST(self):
                front._handle(self, "POST")

            def do_DELETE(self):
                front._handle(self, "DELETE")

        self.server = ThreadingHTTPServer((HOST, self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # -- test helpers -----------------------------------------------------------------------

    def reset(self) -> None:
        self.localstripe.reset()
        with self.lock:
            self.requests.clear()
            self.sessions.clear()
            self.overrides.clear()
            self.delivered.clear()
            self._idempotent.clear()
            self.down = False
        for price, spec in PRICES.items():
            self.localstripe.json("POST", "/v1/plans", {
                "id": price, "amount": str(spec["unit_amount"]), "currency": spec["currency"],
                "interval": spec["interval"], "product[name]": "Modelwire paid"})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def override(self, subscription_id: str, **fields: Any) -> None:
        """Make the subscription read as ``fields`` say, from now on."""
        self.overrides.setdefault(subscription_id, {}).update(fields)

    def customer_with_subscription(self, reader_id: int, email: str,
                                   price: str = "price_monthly", site: str = SITE,
                                   **extra: str) -> tuple[str, dict[str, Any]]:
        """A customer at localstripe paying ``price`` (a test card); (customer id, the
        subscription as localstripe returns it). ``site``: the metadata mark of the site
        that made them (the tests' app's, by default)."""
        customer = self.localstripe.json("POST", "/v1/customers", {
            "email": email, "metadata[reader_id]": str(reader_id),
            "metadata[site]": site})["id"]
        return customer, self.subscribe(customer, reader_id, price, site=site, **extra)

    def subscribe(self, customer: str, reader_id: int, price: str, site: str = SITE,
                  **extra: str) -> dict[str, Any]:
        method = self.localstripe.json("POST", "/v1/payment_methods", {
            "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
            "card[exp_year]": "2034", "card[cvc]": "123"})["id"]
        self.localstripe.json("POST", f"/v1/payment_methods/{method}/attach",
                              {"customer": customer})
        self.localstripe.json("POST", f"/v1/customers/{customer}",
                              {"invoice_settings[default_payment_method]": method})
        return self.localstripe.json("POST", "/v1/subscriptions", {
            "customer": customer, "items[0][plan]": price,
            "metadata[reader_id]": str(reader_id), "metadata[site]": site, **extra})

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription as the app would read it (with any override)."""
        found = self.localstripe.json("GET", f"/v1/subscriptions/{subscription_id}")
        return {**found, **self.overrides.get(subscription_id, {})}

    # -- the HTTP side ----------------------------------------------------------------------

    def _reply(self, handler, status: int, body: bytes,
               content_type: str = "application/json", location: str | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        if location:
            handler.send_header("Location", location)
        handler.end_headers()
        handler.wfile.write(body)

    def _json(self, handler, status: int, obj: Any) -> tuple[int, bytes]:
        body = json.dumps(obj).encode()
        self._reply(handler, status, body)
        return status, body

    def _handle(self, handler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = parts.path
        if path.startswith("/pay/"):
            self._pay_page(handler, method, path.removeprefix("/pay/"))
            return
        if path.startswith("/portal/"):
            self._reply(handler, 200, b"<!doctype html><title>Billing portal</title>"
                                      b"<h1>Stripe billing portal (test)</h1>", "text/html")
            return
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        if parts.query:
            form.update(parse_qsl(parts.query))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.requests.append(Recorded(method, path, headers, form))
        if self.down:
            self._json(handler, 503, {"error": {"message": "down for the test",
                                                "type": "api_error"}})
            return
        key = headers.get("idempotency-key")
        if method == "POST" and key:
            with self.lock:
                seen = self._idempotent.get(key)
            if seen is not None:
                if seen[0] != raw:
                    self._json(handler, 400, {"error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the "
                                   "same parameters they were first used with."}})
                    return
                self._reply(handler, seen[1], seen[2])
                return
        status, body = self._route(handler, method, path, form, raw, headers)
        if method == "POST" and key and status < 500:
            with self.lock:
                self._idempotent[key] = (raw, status, body)

    def _no_such_customer(self, handler, form) -> tuple[int, bytes] | None:
        """Stripe's answer when the customer does not exist (deleted in the dashboard)."""
        customer = form.get("customer", "")
        status, _, _ = self.localstripe.api("GET", f"/v1/customers/{customer}")
        if status == 200:
            return None
        return self._json(handler, 400, {"error": {
            "type": "invalid_request_error", "code": "resource_missing", "param": "customer",
            "message": f"No such customer: '{customer}'"}})

    def _route(self, handler, method, path, form, raw, headers) -> tuple[int, bytes]:
        if method == "GET" and path.startswith("/v1/prices/"):
            price = path.removeprefix("/v1/prices/")
            spec = PRICES.get(price)
            if spec is None:
                return self._json(handler, 404, {"error": {
                    "type": "invalid_request_error", "message": f"No such price: '{price}'"}})
            return self._json(handler, 200, {
                "id": price, "object": "price", "unit_amount": spec["unit_amount"],
                "currency": spec["currency"],
                "recurring": {"interval": spec["interval"], "interval_count": 1}})
        if method == "POST" and path in ("/v1/checkout/sessions", "/v1/billing_portal/sessions"):
            missing = self._no_such_customer(handler, form)
            if missing is not None:
                return missing
        if method == "POST" and path == "/v1/checkout/sessions":
            session_id = "cs_test_" + secrets.token_hex(12)
            session = {"id": session_id, "object": "checkout.session", "mode": form.get("mode"),
                       "status": "open", "customer": form.get("customer"),
                       "client_reference_id": form.get("client_reference_id"),
                       "subscription": None, "url": f"{self.url}/pay/{session_id}",
                       "success_url": form.get("success_url"),
                       "cancel_url": form.get("cancel_url"),
                       "metadata": {key[len("metadata["):-1]: value
                                    for key, value in form.items()
                                    if key.startswith("metadata[")},
                       "_form": form}
            with self.lock:
                self.sessions[session_id] = session
            return self._json(handler, 200, {k: v for k, v in session.items()
                                             if not k.startswith("_")})
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            session = self.sessions.get(path.removeprefix("/v1/checkout/sessions/"))
            if session is None:
                return self._json(handler, 404, {"error": {
                    "type": "invalid_request_error", "message": "No such checkout session"}})
            return self._json(handler, 200, {k: v for k, v in session.items()
                                             if not k.startswith("_")})
        if method == "POST" and path == "/v1/billing_portal/sessions":
            portal_id = "bps_" + secrets.token_hex(10)
            return self._json(handler, 200, {"id": portal_id,
                                             "object": "billing_portal.session",
                                             "customer": form.get("customer"),
                                             "return_url": form.get("return_url"),
                                             "url": f"{self.url}/portal/{portal_id}"})
        return self._proxy(handler, method, path, raw, headers)

    def _proxy(self, handler, method, path, raw, headers) -> tuple[int, bytes]:
        query = urlsplit(handler.path).query
        target = self.localstripe.url + path + (f"?{query}" if query else "")
        status, body, answer_headers = _call(
            target, method, raw if method == "POST" else None,
            {"Authorization": headers.get("authorization", ""),
             "Content-Type": headers.get("content-type",
                                         "application/x-www-form-urlencoded")})
        if status == 200 and path.startswith("/v1/subscriptions/"):
            obj = json.loads(body)
            if method == "DELETE":  # cancelled for real: what it read as no longer holds
                self.overrides.pop(obj.get("id"), None)
            obj.update(self.overrides.get(obj.get("id"), {}))
            body = json.dumps(obj).encode()
        self._reply(handler, status, body,
                    answer_headers.get("Content-Type", "application/json"))
        return status, body

    # -- the Checkout page ------------------------------------------------------------------

    def _pay_page(self, handler, method: str, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            self._reply(handler, 404, b"no such session", "text/plain")
            return
        if method == "GET":
            form = session["_form"]
            page = (f"<!doctype html><meta name=viewport content='width=device-width'>"
                    f"<title>Checkout (test)</title><h1>Stripe Checkout (test)</h1>"
                    f"<p>Plan: {form.get('line_items[0][price]')}</p>"
                    f"<form method=post><button type=submit>Pay</button></form>"
                    f"<p><a href='{session['cancel_url']}'>Back</a></p>")
            self._reply(handler, 200, page.encode(), "text/html")
            return
        self.complete(session_id)
        location = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
        self._reply(handler, 303, b"", "text/plain", location=location)

    def complete(self, session_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Pay the session: the subscription at localstripe, the session complete, and the
        signed ``checkout.session.completed`` sent to ``webhook_url`` (if set); returns
        (the subscription, the event)."""
        session = self.sessions[session_id]
        form = session["_form"]
        extra = {}
        if form.get("subscription_data[trial_period_days]"):
            extra["trial_period_days"] = form["subscription_data[trial_period_days]"]
        subscription = self.subscribe(session["customer"],
                                      int(form["subscription_data[metadata][reader_id]"]),
                                      form["line_items[0][price]"],
                                      site=form["subscription_data[metadata][site]"], **extra)
        if extra:  # localstripe leaves a trial "incomplete"; Stripe says "trialing"
            days = int(extra["trial_period_days"])
            self.override(subscription["id"], status="trialing",
                          trial_end=int(time.time()) + days * 86400)
            subscription = self.subscription(subscription["id"])
        session.update(status="complete", subscription=subscription["id"])
        completed = event("checkout.session.completed",
                          {k: v for k, v in session.items() if not k.startswith("_")})
        if self.webhook_url:
            body, headers = signed(completed)
            status, _, _ = _call(self.webhook_url, "POST", body, headers)
            self.delivered.append((completed["type"], status))
        return subscription, completed


@contextlib.contextmanager
def running_stripe(workdir: Path) -> Iterator[StripeFront]:
    server = Localstripe(workdir)
    front = StripeFront(server)
    try:
        front.reset()
        yield front
    finally:
        front.stop()
        server.stop()


def settings(front: StripeFront, **extra: Any) -> dict[str, Any]:
    """The app settings that point the paid tier at ``front``."""
    return {"STRIPE_SECRET_KEY": API_KEY, "STRIPE_API_BASE": front.url,
            "STRIPE_WEBHOOK_SECRET": [WEBHOOK_SECRET], "STRIPE_PRICE_MONTHLY": "price_monthly",
            "STRIPE_PRICE_YEARLY": "price_yearly", **extra}


@pytest.fixture(scope="session")
def stripe_server(tmp_path_factory) -> Iterator[StripeFront]:
    """localstripe and its front, for the whole run; each test that uses them resets them
    (``front.reset()``) through its ``app_config``."""
    with running_stripe(tmp_path_factory.mktemp("localstripe")) as front:
        yield front
