"""Feeds reach only public addresses (issue 26, item 6: SSRF through feeds).

Real feed servers run on loopback. Where a test needs a public-looking name, ``Internet``
stands in for DNS and the rest of the internet (which cannot run here): it answers names as
the test says, and a connection to one of its public addresses reaches a loopback server.
A connection to any other address is a real one, so a fetcher that reached 127.0.0.1 by
itself would show up in the internal server's requests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from newsletter.content.feed_fetch import FeedFetcher
from newsletter.content.models import Feed, Synthesis
from newsletter.db import db
from newsletter.outbound import AddressGuard, OutboundError, open_url
from newsletter.wiring import services
from tests.integration.test_feeds import FEEDS, FeedServer, Route, serving_feeds

PUBLIC = "93.184.215.14"  # a globally routed address; here it leads to a loopback server
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
STANDS_IN = frozenset({PUBLIC, PUBLIC_V6, "10.20.30.40"})


@dataclass
class Internet:
    """DNS answers (name -> one list of addresses per look-up, the last one repeating) and
    connections; records each look-up and each connection made."""

    names: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answers = self.names.get(host)
        if answers is None:  # numeric forms such as 2130706433, without any DNS
            return [info[4][0] for info in socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        self.connections.append(address)
        target = "127.0.0.1" if address in STANDS_IN else address
        return socket.create_connection((target, port), timeout=timeout)

    def guard(self, allowed_hosts=()) -> AddressGuard:
        return AddressGuard.allowing(allowed_hosts, resolve=self.resolve, connect=self.connect)


@pytest.fixture
def allowed_hosts() -> list[str]:
    """NEWSLETTER_FEED_ALLOWED_HOSTS of the test's app; a test parametrizes it to change it.
    The loopback servers' URLs say ``localhost``."""
    return ["localhost"]


@pytest.fixture(autouse=True)
def _allow_list(app_config, allowed_hosts):
    app_config["FEED_ALLOWED_HOSTS"] = allowed_hosts


@pytest.fixture
def internal() -> Iterator[FeedServer]:
    """What must never be reached: a server on 127.0.0.1 that answers with a feed."""
    with serving_feeds() as server:
        server.serve("/internal.xml", "rss20.xml")
        yield server


@pytest.fixture
def public() -> Iterator[FeedServer]:
    """A server the tests reach by public-looking names through ``Internet``."""
    with serving_feeds() as server:
        yield server


@pytest.fixture
def internet(app) -> Internet:
    """The app's own fetcher (its allow-list from the settings), on ``Internet``."""
    net = Internet()
    parts = services(app)
    parts.feed_fetcher = dataclasses.replace(
        parts.feed_fetcher,
        guard=dataclasses.replace(parts.feed_fetcher.guard, resolve=net.resolve,
                                  connect=net.connect))
    return net


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def add(runner, url, *extra):
    return runner.invoke(args=["feeds", "add", url, "--topic", "ai-policy-and-safety", *extra])


def refused(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# -- redirects --------------------------------------------------------------------------------

def test_a_redirect_to_loopback_is_refused_and_the_internal_server_never_asked(
        runner, topics, public, internal):
    """The issue's report, with nothing stood in: an allowed feed host answers 302 to
    http://127.0.0.1:…/internal.xml, an RSS-shaped answer."""
    url = public.serve("/moved.xml", body=b"", status=302,
                       location=internal.url("/internal.xml").replace("localhost", "127.0.0.1"))
    line = refused(add(runner, url, "--poll-now"))
    assert (f"url: refused: localhost:{public.port} redirected to 127.0.0.1, a loopback "
            "address") in line
    assert internal.requests == []
    assert [path for path, _ in public.requests] == ["/moved.xml"]
    assert count(Feed) == 0 and count(Synthesis) == 0


def test_a_feed_that_starts_redirecting_to_loopback_records_the_refusal(
        app, runner, topics, public, internal):
    """The worker's poll: the error is recorded on the feed, nothing becomes a synthesis."""
    from newsletter.scheduler.jobs import poll_feeds

    url = public.serve("/lab.xml", "atom.xml")
    assert add(runner, url).exit_code == 0
    public.routes["/lab.xml"] = Route(body=b"", status=302,
                                      location=f"http://127.0.0.1:{internal.port}/internal.xml")
    poll_feeds(app)  # the worker's job
    feed = db.session.scalar(select(Feed))
    db.session.refresh(feed)
    assert feed.last_error.startswith(f"localhost:{public.port} redirected to 127.0.0.1, "
                                      "a loopback address")
    assert internal.requests == []
    assert count(Synthesis) == 0
    assert f"error: localhost:{public.port} redirected to 127.0.0.1" in \
        runner.invoke(args=["feeds", "list"]).stdout


@pytest.mark.parametrize(("target", "said"), [
    ("http://127.0.0.1:{port}/internal.xml", "127.0.0.1, a loopback address"),
    ("http://2130706433:{port}/internal.xml",
     "2130706433, which resolves to 127.0.0.1, a loopback address"),
    ("http://[::1]:{port}/internal.xml", "::1, a loopback address"),
    ("http://[::ffff:127.0.0.1]:{port}/internal.xml",
     "::ffff:127.0.0.1, a loopback address (127.0.0.1 inside IPv6)"),
    ("http://0.0.0.0:{port}/internal.xml", "0.0.0.0, an unspecified address"),
    ("http://metadata.example:{port}/latest/meta-data/",
     "metadata.example, which resolves to 169.254.169.254, a link-local address"),
    ("http://localhost:{port}/internal.xml",
     "localhost, which resolves to 127.0.0.1, a loopback address"),
])
def test_a_public_feed_redirecting_inward_is_refused(runner, topics, public, internal, internet,
                                                     target, said):
    internet.names = {"feed.example": [[PUBLIC]], "metadata.example": [["169.254.169.254"]],
                      "localhost": [["127.0.0.1"]]}
    public.serve("/feed.xml", body=b"", status=302, location=target.format(port=internal.port))
    line = refused(add(runner, f"http://feed.example:{public.port}/feed.xml", "--poll-now"))
    assert f"url: refused: feed.example:{public.port} redirected to {said}" in line
    assert internet.connections == [PUBLIC]
    assert internal.requests == []
    assert count(Feed) == 0 and count(Synthesis) == 0


@pytest.mark.parametrize("allowed_hosts", [["intranet.example"]])
def test_a_public_feed_cannot_redirect_into_an_allowed_intranet_host(
        runner, topics, public, internet):
    internet.names = {"feed.example": [[PUBLIC]], "intranet.example": [["10.20.30.40"]]}
    public.serve("/secret.xml", "rss20.xml")
    public.serve("/feed.xml", body=b"", status=301,
                 location=f"http://intranet.example:{public.port}/secret.xml")
    line = refused(add(runner, f"http://feed.example:{public.port}/feed.xml"))
    assert ("redirected to intranet.example, which resolves to 10.20.30.40, a private address "
            "(an allowed host is reached only directly or from another allowed host)") in line
    assert internet.connections == [PUBLIC]
    assert [path for path, _ in public.requests] == ["/feed.xml"]


def test_redirects_are_followed_five_times_at_most(runner, topics, public):
    public.serve("/6.xml", "rss20.xml")
    for hop in range(6):
        public.serve(f"/{hop}.xml", body=b"", status=302, location=f"/{hop + 1}.xml")
    line = refused(add(runner, public.url("/0.xml")))
    assert "url: refused: more than 5 redirects" in line
    assert [path for path, _ in public.requests] == [f"/{hop}.xml" for hop in range(6)]

    ok = add(runner, public.url("/1.xml"))  # five redirects
    assert ok.exit_code == 0, ok.output


# -- names and addresses of the feed itself -----------------------------------------------------

@pytest.mark.parametrize(("address", "kind"), [
    ("10.20.30.40", "a private address"),
    ("192.168.1.10", "a private address"),
    ("172.31.0.5", "a private address"),
    ("100.64.1.2", "a shared (carrier-grade NAT) address"),
    ("169.254.169.254", "a link-local address"),
    ("127.0.0.53", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),  # noqa: S104 - refused, never bound
    ("224.0.0.251", "a multicast address"),
    ("::1", "a loopback address"),
    ("::ffff:127.0.0.1", "a loopback address (127.0.0.1 inside IPv6)"),
    ("::ffff:10.0.0.1", "a private address (10.0.0.1 inside IPv6)"),
    ("64:ff9b::a9fe:a9fe", "a link-local address (169.254.169.254 inside IPv6)"),
    ("fd00:ec2::254", "a private address"),
    ("fe80::1", "a link-local address"),
])
def test_a_feed_whose_name_resolves_to_a_private_address_is_refused(
        runner, topics, internet, address, kind):
    internet.names = {"news.example": [[address]]}
    line = refused(add(runner, "http://news.example/feed.xml"))
    assert f"url: refused: news.example resolves to {address}, {kind}" in line
    assert internet.connections == []
    assert count(Feed) == 0


def test_the_refusal_names_the_setting_that_would_allow_it(runner, topics, internet):
    internet.names = {"wiki.corp.example": [["10.1.2.3"]]}
    line = refused(add(runner, "http://wiki.corp.example/feed.xml"))
    assert line.endswith("wiki.corp.example resolves to 10.1.2.3, a private address (allowed "
                         "only for a host named in NEWSLETTER_FEED_ALLOWED_HOSTS)")


def test_a_name_with_a_public_and_a_private_address_is_refused(runner, topics, public,
                                                                internet):
    internet.names = {"mixed.example": [[PUBLIC, "127.0.0.1"]]}
    public.serve("/feed.xml", "rss20.xml")
    line = refused(add(runner, f"http://mixed.example:{public.port}/feed.xml"))
    assert "mixed.example resolves to 127.0.0.1, a loopback address" in line
    assert internet.connections == []
    assert public.requests == []


@pytest.mark.parametrize(("url", "said"), [
    ("http://127.0.0.1:{port}/internal.xml", "127.0.0.1 is a loopback address"),
    ("http://127.1:{port}/internal.xml", "127.1 resolves to 127.0.0.1, a loopback address"),
    ("http://2130706433:{port}/internal.xml",
     "2130706433 resolves to 127.0.0.1, a loopback address"),
    ("http://0x7f.1:{port}/internal.xml", "0x7f.1 resolves to 127.0.0.1, a loopback address"),
    ("http://0.0.0.0:{port}/internal.xml", "0.0.0.0 is an unspecified address"),
    ("http://[::1]:{port}/internal.xml", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]:{port}/internal.xml",
     "::ffff:127.0.0.1 is a loopback address (127.0.0.1 inside IPv6)"),
    ("http://[::ffff:7f00:1]:{port}/internal.xml",
     "::ffff:7f00:1 is a loopback address (127.0.0.1 inside IPv6)"),
])
def test_loopback_in_any_spelling_is_refused_with_the_apps_own_fetcher(
        runner, topics, internal, url, said):
    """No stand-in: the app's fetcher and the system's resolver (these need no DNS)."""
    line = refused(add(runner, url.format(port=internal.port)))
    assert f"url: refused: {said}" in line
    assert internal.requests == []
    assert count(Feed) == 0


# -- DNS rebinding ------------------------------------------------------------------------------

def test_a_name_that_rebinds_to_loopback_is_never_connected_to_loopback(
        runner, topics, public, internet):
    """Public to the check, 127.0.0.1 to whoever asks next: each fetch resolves the name once
    and connects to the address it checked."""
    internet.names = {"rebind.example": [[PUBLIC], ["127.0.0.1"]]}
    public.serve("/feed.xml", "rss20.xml")
    url = f"http://rebind.example:{public.port}/feed.xml"
    result = add(runner, url)
    assert result.exit_code == 0, result.output
    assert internet.lookups == ["rebind.example"]
    assert internet.connections == [PUBLIC]
    assert public.requests[0][1]["Host"] == f"rebind.example:{public.port}"

    feed_id = db.session.scalar(select(Feed.id))
    poll = runner.invoke(args=["feeds", "poll", str(feed_id)])  # the name now says 127.0.0.1
    assert poll.exit_code == 1
    assert "rebind.example resolves to 127.0.0.1, a loopback address" in poll.output
    assert internet.connections == [PUBLIC]
    assert len(public.requests) == 1
    assert count(Synthesis) == 0


def test_every_redirect_hop_is_resolved_once_and_connected_to_as_checked(
        runner, topics, public, internet):
    internet.names = {"old.example": [[PUBLIC]], "new.example": [[PUBLIC_V6], ["127.0.0.1"]]}
    public.serve("/new.xml", "rss20.xml")
    public.serve("/old.xml", body=b"", status=301,
                 location=f"http://new.example:{public.port}/new.xml")
    result = add(runner, f"http://old.example:{public.port}/old.xml")
    assert result.exit_code == 0, result.output
    assert internet.lookups == ["old.example", "new.example"]
    assert internet.connections == [PUBLIC, PUBLIC_V6]
    assert [(path, headers["Host"]) for path, headers in public.requests] == [
        ("/old.xml", f"old.example:{public.port}"), ("/new.xml", f"new.example:{public.port}")]


# -- the allow-list -----------------------------------------------------------------------------

@pytest.mark.parametrize("allowed_hosts", [["Wiki.Intranet.Example."]])  # as written
def test_an_allowed_intranet_host_is_fetched_and_imported(runner, topics, public, internet):
    internet.names = {"wiki.intranet.example": [["10.20.30.40"]]}
    public.serve("/lab.xml", "rss20.xml")
    public.serve("/old.xml", body=b"", status=302, location="/lab.xml")
    result = add(runner, f"http://wiki.intranet.example:{public.port}/old.xml", "--poll-now")
    assert result.exit_code == 0, result.output
    assert "Polled: 2 new, 0 skipped" in result.stdout
    assert set(internet.connections) == {"10.20.30.40"}
    assert count(Synthesis) == 2


@pytest.mark.parametrize("allowed_hosts", [["zero.example", "group.example"]])
def test_an_allowed_host_still_never_reaches_an_unspecified_or_multicast_address(
        runner, topics, internet):
    internet.names = {"zero.example": [["0.0.0.0"]],  # noqa: S104 - refused, never bound
                      "group.example": [["239.1.2.3"]]}
    assert "zero.example resolves to 0.0.0.0, an unspecified address" in refused(
        add(runner, "http://zero.example/feed.xml"))
    assert "group.example resolves to 239.1.2.3, a multicast address" in refused(
        add(runner, "http://group.example/feed.xml"))
    assert internet.connections == []


def test_the_setting_builds_the_apps_fetcher(app_config):
    from newsletter import create_app
    from newsletter.config import load_settings

    assert load_settings({"NEWSLETTER_FEED_ALLOWED_HOSTS": " feeds.corp , localhost ,"})[
        "FEED_ALLOWED_HOSTS"] == ["feeds.corp", "localhost"]
    app_config["FEED_ALLOWED_HOSTS"] = ["feeds.corp", "localhost"]
    guard = services(create_app(app_config)).feed_fetcher.guard
    assert guard.allowed_hosts == {"feeds.corp", "localhost"}
    assert FeedFetcher.from_config({}).guard.allowed_hosts == frozenset()


# -- HTTPS: the socket goes to the checked address, TLS checks the name ---------------------

def _certificate(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def tls_feed(tmp_path):
    """An HTTPS feed server on 127.0.0.1 with a certificate for secure-feed.example; yields
    (port, client context trusting that certificate, server names asked for by SNI, Host
    headers received)."""
    cert_pem, key_pem = _certificate("secure-feed.example")
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_names: list[str | None] = []
    hosts: list[str] = []
    body = (FEEDS / "rss20.xml").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            hosts.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    client = ssl.create_default_context(cadata=cert_pem.decode())
    try:
        yield server.server_address[1], client, server_names, hosts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_https_connects_to_the_checked_address_and_verifies_the_host_name(tls_feed):
    port, client, server_names, hosts = tls_feed
    internet = Internet(names={"secure-feed.example": [[PUBLIC], ["127.0.0.1"]],
                               "other.example": [[PUBLIC]]})
    with open_url(f"https://secure-feed.example:{port}/feed.xml", guard=internet.guard(),
                  tls=client, timeout=5) as response:
        assert response.status == 200
        assert b"Example Lab Notes" in response.read1(1 << 20)
    assert internet.connections == [PUBLIC]
    assert server_names == ["secure-feed.example"]
    assert hosts == [f"secure-feed.example:{port}"]

    # Same address, another name: the certificate does not match, nothing is sent.
    with pytest.raises(OutboundError, match="cannot reach other.example.*(certificate|match)"):
        open_url(f"https://other.example:{port}/feed.xml", guard=internet.guard(), tls=client,
                 timeout=5)
    assert hosts == [f"secure-feed.example:{port}"]
