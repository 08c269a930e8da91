"""Outgoing HTTP(S) to addresses someone else chose (feeds, later webhooks), without SSRF.

Two parts, both used by every caller that fetches a URL it was given:

- :func:`address_kind` says whether an IP address is public, and if not, what it is
  (loopback, private, link-local, multicast, …). ``ipaddress.is_global`` is not enough on its
  own: on Python 3.11 it calls multicast, ``fec0::/10``, ``192.0.0.0/24``, 6to4 and
  IPv4-mapped forms of private addresses global, and it changes between patch releases, so
  the ranges are named here and ``is_global`` is only the last word.
- :func:`open_url` resolves each hop's host once, checks every address it resolved to,
  connects the socket to a checked address (no second look-up, so a name cannot answer a
  public address to the check and a private one to the connection) while sending the
  URL's own ``Host`` header and checking the TLS certificate against the host name, and
  follows redirects itself, each hop checked the same way.

An :class:`AddressGuard` holds the rule: public addresses only, except for the hosts named
in ``allowed_hosts`` (an intranet feed server), which may resolve to private, loopback,
link-local or shared addresses — never to an unspecified or multicast one — and only when
reached directly or by redirects from other allowed hosts: a public server cannot redirect
into the intranet.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urljoin, urlsplit, urlunsplit

from newsletter.errors import Unavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# (host, port) -> the addresses the host resolves to, as numeric strings.
Resolver = Callable[[str, int], Sequence[str]]
# (numeric address, port, timeout) -> a connected socket; it must not look any name up.
Connector = Callable[[str, int, float], socket.socket]


class AddressKind(Enum):
    """What a non-public address is; the value is how a message names it."""

    UNSPECIFIED = "an unspecified address"
    LOOPBACK = "a loopback address"
    LINK_LOCAL = "a link-local address"
    MULTICAST = "a multicast address"
    SHARED = "a shared (carrier-grade NAT) address"
    PRIVATE = "a private address"
    RESERVED = "a reserved address"
    SPECIAL = "a special-purpose address"


# Never a server's address, whoever asks.
NEVER_ALLOWED = frozenset({AddressKind.UNSPECIFIED, AddressKind.MULTICAST})

_net = ipaddress.ip_network
_RANGES: tuple[tuple[AddressKind, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]],
               ...] = (
    (AddressKind.UNSPECIFIED, (_net("0.0.0.0/8"), _net("::/128"))),  # 0.0.0.0 reaches this host
    (AddressKind.LOOPBACK, (_net("127.0.0.0/8"), _net("::1/128"))),
    (AddressKind.LINK_LOCAL, (_net("169.254.0.0/16"), _net("fe80::/10"))),  # cloud metadata
    (AddressKind.MULTICAST, (_net("224.0.0.0/4"), _net("ff00::/8"))),
    (AddressKind.SHARED, (_net("100.64.0.0/10"),)),
    (AddressKind.PRIVATE, (_net("10.0.0.0/8"), _net("172.16.0.0/12"), _net("192.168.0.0/16"),
                           _net("fc00::/7"), _net("fec0::/10"))),  # fec0: old site-local
    (AddressKind.RESERVED, (_net("240.0.0.0/4"),)),  # with 255.255.255.255
    (AddressKind.SPECIAL, (
        _net("192.0.0.0/24"), _net("192.0.2.0/24"), _net("198.18.0.0/15"),
        _net("198.51.100.0/24"), _net("203.0.113.0/24"),
        _net("100::/64"), _net("2001::/23"), _net("2001:db8::/32"), _net("3fff::/20"),
        _net("5f00::/16"), _net("64:ff9b:1::/48"),
    )),
)
# Inside 192.0.0.0/24, these two are globally reachable (RFC 7723, RFC 8155).
_GLOBAL_EXCEPTIONS = (_net("192.0.0.9/32"), _net("192.0.0.10/32"))
_NAT64 = _net("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and reaches: IPv4-mapped (``::ffff:a.b.c.d``,
    which a dual-stack socket connects to over IPv4), NAT64 (``64:ff9b::a.b.c.d``) or 6to4
    (``2002:AABB:CCDD::``). ``None`` for IPv4 and other IPv6 addresses."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_kind(address: str | IPAddress) -> AddressKind | None:
    """``None`` when ``address`` is public (globally reachable unicast), else what it is.

    An IPv6 address carrying an IPv4 one (see :func:`embedded_ipv4`) is judged by the IPv4
    address it reaches. Raises ``ValueError`` when ``address`` is not an IP address.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    inner = embedded_ipv4(ip)
    if inner is not None:
        return address_kind(inner)
    if any(ip in net for net in _GLOBAL_EXCEPTIONS):
        return None
    for kind, networks in _RANGES:
        if any(ip.version == net.version and ip in net for net in networks):
            return kind
    if ip.is_reserved:
        return AddressKind.RESERVED
    if not ip.is_global:
        return AddressKind.SPECIAL
    return None


# -- errors ---------------------------------------------------------------------------------

class OutboundError(Unavailable):
    """A URL could not be fetched; the message says why in one line."""


class RefusedAddress(OutboundError):
    """A hop's host resolved to an address the guard does not allow; nothing was sent.

    ``host`` is the hop's host, ``address`` the refused address (as resolved), ``kind`` what
    it is and ``redirected_from`` the host whose redirect led here (``None`` for the first
    URL). ``allowable``: naming ``host`` in the allow-list would let it through.
    """

    def __init__(self, host: str, address: str, kind: AddressKind, *,
                 redirected_from: str | None = None, allowable: bool = False,
                 note: str = "") -> None:
        self.host, self.address, self.kind = host, address, kind
        self.redirected_from, self.allowable = redirected_from, allowable
        what = _describe(address, kind)
        if _is_ip(host):
            said = f"{address} is {what}" if redirected_from is None else f"{address}, {what}"
        else:
            said = f"{host} resolves to {address}, {what}"
            if redirected_from is not None:
                said = f"{host}, which resolves to {address}, {what}"
        if redirected_from is not None:
            said = f"{redirected_from} redirected to {said}"
        super().__init__(said + (f" ({note})" if note else ""))


def _describe(address: str, kind: AddressKind) -> str:
    inner = embedded_ipv4(ipaddress.ip_address(address.split("%", 1)[0]))
    return f"{kind.value} ({inner} inside IPv6)" if inner is not None else kind.value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# -- the rule -------------------------------------------------------------------------------

def system_resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system's resolver), in its order, once each."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if sockaddr[0] not in found:
            found.append(sockaddr[0])
    return found


def tcp_connect(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to a numeric ``address`` (no name is looked up for a numeric one)."""
    return socket.create_connection((address, port), timeout=timeout)


def normalise_host(host: str) -> str:
    """A host as compared with the allow-list: lower case, no trailing dot, an IP address
    in its compressed form."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


@dataclass(frozen=True)
class AddressGuard:
    """Which addresses outgoing requests may reach, and how names are resolved and sockets
    opened (both replaceable: a test stands in for the internet with them)."""

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    resolve: Resolver = system_resolve
    connect: Connector = tcp_connect

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts",
                           frozenset(normalise_host(h) for h in self.allowed_hosts if h.strip()))

    @classmethod
    def allowing(cls, hosts: Iterable[str] | None, **kwargs) -> AddressGuard:
        """A guard whose allow-list is ``hosts`` (names as a setting lists them)."""
        return cls(allowed_hosts=frozenset(hosts or ()), **kwargs)

    def is_allowed_host(self, host: str) -> bool:
        return normalise_host(host) in self.allowed_hosts

    def addresses(self, host: str, port: int, *, may_be_private: bool,
                  redirected_from: str | None = None) -> list[str]:
        """The addresses to connect to for ``host``: all it resolves to, each checked.

        ``may_be_private``: whether an allowed host may resolve to a non-public address on
        this hop (not once the chain of hops went through a host that is not allowed);
        ``redirected_from`` names the previous hop in the message.

        Raises :class:`RefusedAddress` when any of them is not allowed (a name that answers
        a public and a private address is refused: which one a connection used would be
        up to chance), ``OutboundError`` when the name does not resolve.
        """
        if _is_ip(host):
            found = [host]
        else:
            try:
                found = list(self.resolve(host, port))
            except (OSError, UnicodeError) as exc:
                raise OutboundError(f"cannot resolve {host}: {exc}") from None
            if not found:
                raise OutboundError(f"cannot resolve {host}: no address")
        host_allowed = self.is_allowed_host(host)
        for address in found:
            try:
                kind = address_kind(address)
            except ValueError:
                raise OutboundError(f"cannot resolve {host}: {address!r} is not an IP "
                                    "address") from None
            if kind is None or (host_allowed and may_be_private and kind not in NEVER_ALLOWED):
                continue
            note = ""
            if host_allowed and kind not in NEVER_ALLOWED:
                note = "an allowed host is reached only directly or from another allowed host"
            raise RefusedAddress(host, address, kind, redirected_from=redirected_from,
                                 allowable=(not host_allowed and may_be_private
                                            and kind not in NEVER_ALLOWED),
                                 note=note)
        return found


PUBLIC_ONLY = AddressGuard()


# -- the fetch ------------------------------------------------------------------------------

class _PinnedConnection(http.client.HTTPConnection):
    """HTTP to ``host`` (its ``Host`` header) over a socket to the checked ``addresses``."""

    def __init__(self, host: str, port: int, *, addresses: Sequence[str],
                 connector: Connector, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses
        self._connector = connector

    def connect(self) -> None:
        error: OSError | None = None
        for address in self._addresses:
            try:
                self.sock = self._connector(address, self.port, self.timeout)
                return
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")


class _PinnedTLSConnection(_PinnedConnection):
    """HTTPS: the certificate is checked against the host name (SNI too), not the address."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext, **kwargs) -> None:
        super().__init__(host, port, **kwargs)
        self._context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class Response:
    """An answer whose headers have arrived; read the body with :meth:`read1`, then close
    (or use it as a context manager). ``url`` is the URL that answered, after redirects."""

    def __init__(self, url: str, connection: http.client.HTTPConnection,
                 raw: http.client.HTTPResponse) -> None:
        self.url = url
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._connection = connection
        self._raw = raw

    def read1(self, size: int = 65536) -> bytes:
        """Whatever part of the body has arrived, up to ``size`` bytes; ``b""`` at the end."""
        return self._raw.read1(size)

    def close(self) -> None:
        self._raw.close()
        self._connection.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _target(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path with query, netloc) of an http(s) URL; ``OutboundError``
    for anything else."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise OutboundError("only http:// and https:// URLs can be fetched")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise OutboundError(f"bad port in {parts.netloc}") from None
    host = parts.hostname
    if not host:
        raise OutboundError("the URL has no host")
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return scheme, host, port, path, parts.netloc


def open_url(url: str, *, guard: AddressGuard = PUBLIC_ONLY, method: str = "GET",
             headers: Mapping[str, str] | None = None, body: bytes | None = None,
             timeout: float = 15.0, max_redirects: int = MAX_REDIRECTS,
             tls: ssl.SSLContext | None = None) -> Response:
    """Send one request to ``url`` through ``guard``; the answer once its headers arrived.

    Redirects (301, 302, 303, 307, 308 with a ``Location``) of a GET or HEAD are followed up
    to ``max_redirects`` times, each hop resolved and checked like the first; other methods
    get the redirect itself back. Any other status is returned, for the caller to judge.
    ``timeout`` bounds each socket operation. ``tls`` is the context for https (default: the
    system's trust store, host names checked).

    Raises :class:`RefusedAddress` before anything is sent to an address the guard refuses,
    and ``OutboundError`` when a URL is not http(s), a name does not resolve, no connection
    can be made, the answer is not HTTP, or there are too many redirects.
    """
    context = tls or ssl.create_default_context()
    follow = method.upper() in {"GET", "HEAD"}
    trusted_chain = True  # every hop so far was to an allowed host
    previous: str | None = None
    for _ in range(max_redirects + 1):
        scheme, host, port, path, netloc = _target(url)
        addresses = guard.addresses(host, port,
                                    may_be_private=trusted_chain,
                                    redirected_from=previous)
        trusted_chain = trusted_chain and guard.is_allowed_host(host)
        options = {"addresses": addresses, "connector": guard.connect, "timeout": timeout}
        connection: http.client.HTTPConnection = (
            _PinnedTLSConnection(host, port, context=context, **options) if scheme == "https"
            else _PinnedConnection(host, port, **options))
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            raise OutboundError(f"cannot reach {netloc}: {exc}") from None
        try:
            connection.request(method, path, body=body,
                               headers={**(headers or {}), "Connection": "close"})
            raw = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise OutboundError(f"cannot read {netloc}: {exc or type(exc).__name__}") from None
        location = raw.getheader("Location")
        if not (follow and raw.status in REDIRECT_STATUSES and location):
            return Response(url, connection, raw)
        raw.close()
        connection.close()
        url = urljoin(url, location.strip())
        if urlsplit(url).scheme.lower() not in {"http", "https"}:
            raise OutboundError(f"HTTP {raw.status} redirect to a non-HTTP URL refused")
        previous = netloc
    raise OutboundError(f"more than {max_redirects} redirects")
