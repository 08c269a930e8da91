"""newsletter.outbound: which addresses are public, and what the guard lets through."""

from __future__ import annotations

import ipaddress

import pytest

from newsletter.outbound import (
    AddressGuard,
    AddressKind,
    OutboundError,
    RefusedAddress,
    address_kind,
    embedded_ipv4,
    normalise_host,
)

K = AddressKind


@pytest.mark.parametrize(("address", "kind"), [
    # IPv4
    ("0.0.0.0", K.UNSPECIFIED),  # noqa: S104 - classified, never bound
    ("0.1.2.3", K.UNSPECIFIED),
    ("127.0.0.1", K.LOOPBACK),
    ("127.255.255.254", K.LOOPBACK),
    ("10.0.0.1", K.PRIVATE),
    ("172.16.0.1", K.PRIVATE),
    ("172.31.255.255", K.PRIVATE),
    ("192.168.0.1", K.PRIVATE),
    ("100.64.0.1", K.SHARED),
    ("100.127.255.254", K.SHARED),
    ("169.254.169.254", K.LINK_LOCAL),
    ("224.0.0.1", K.MULTICAST),  # is_global says True on Python 3.11
    ("239.255.255.250", K.MULTICAST),
    ("240.0.0.1", K.RESERVED),
    ("255.255.255.255", K.RESERVED),
    ("192.0.0.8", K.SPECIAL),  # is_global says True on Python 3.11.7
    ("192.0.2.1", K.SPECIAL),
    ("198.18.0.1", K.SPECIAL),
    ("198.51.100.7", K.SPECIAL),
    ("203.0.113.9", K.SPECIAL),
    # IPv6
    ("::", K.UNSPECIFIED),
    ("::1", K.LOOPBACK),
    ("fe80::1", K.LINK_LOCAL),
    ("fe80::1%eth0", K.LINK_LOCAL),
    ("fc00::1", K.PRIVATE),
    ("fd12:3456::1", K.PRIVATE),
    ("fec0::1", K.PRIVATE),  # old site-local; is_global says True
    ("ff02::1", K.MULTICAST),  # is_global says True
    ("ff0e::1", K.MULTICAST),
    ("::7f00:1", K.RESERVED),  # IPv4-compatible, deprecated
    ("100::1", K.SPECIAL),
    ("2001:db8::1", K.SPECIAL),
    ("2001::1", K.SPECIAL),  # Teredo
    ("3fff::1", K.SPECIAL),  # documentation (RFC 9637); is_global says True
    ("64:ff9b:1::1", K.SPECIAL),  # local-use NAT64
    # IPv6 carrying IPv4: judged by the IPv4 address reached
    ("::ffff:127.0.0.1", K.LOOPBACK),
    ("::ffff:7f00:1", K.LOOPBACK),
    ("::ffff:0.0.0.0", K.UNSPECIFIED),
    ("::ffff:10.1.2.3", K.PRIVATE),
    ("::ffff:169.254.169.254", K.LINK_LOCAL),
    ("::ffff:100.64.0.1", K.SHARED),
    ("64:ff9b::7f00:1", K.LOOPBACK),  # NAT64
    ("64:ff9b::a00:1", K.PRIVATE),
    ("2002:7f00:1::", K.LOOPBACK),  # 6to4; is_global says True
    ("2002:a9fe:a9fe::1", K.LINK_LOCAL),
])
def test_non_public_addresses_are_named(address, kind):
    assert address_kind(address) is kind


@pytest.mark.parametrize("address", [
    "93.184.215.14", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.15.255.255",
    "172.32.0.0", "192.0.0.9", "192.0.0.10", "223.255.255.255",
    "2606:4700:4700::1111", "2a00:1450:4007:80a::200e",
    "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
])
def test_public_addresses_are_public(address):
    assert address_kind(address) is None
    assert address_kind(ipaddress.ip_address(address)) is None


def test_not_an_address_is_a_value_error():
    with pytest.raises(ValueError):
        address_kind("localhost")


def test_embedded_ipv4():
    v6 = ipaddress.IPv6Address
    assert embedded_ipv4(v6("::ffff:192.168.1.1")) == ipaddress.IPv4Address("192.168.1.1")
    assert embedded_ipv4(v6("64:ff9b::c0a8:101")) == ipaddress.IPv4Address("192.168.1.1")
    assert embedded_ipv4(v6("2002:c0a8:101::")) == ipaddress.IPv4Address("192.168.1.1")
    assert embedded_ipv4(v6("2606:4700::1")) is None
    assert embedded_ipv4(ipaddress.IPv4Address("10.0.0.1")) is None


@pytest.mark.parametrize(("written", "normal"), [
    ("Intranet.Example.", "intranet.example"), (" localhost ", "localhost"),
    ("[::1]", "::1"), ("0:0:0:0:0:0:0:1", "::1"), ("10.0.0.1", "10.0.0.1"),
])
def test_hosts_are_compared_normalised(written, normal):
    assert normalise_host(written) == normal


class Resolver:
    def __init__(self, names):
        self.names = names
        self.asked: list[str] = []

    def __call__(self, host, port):
        self.asked.append(host)
        if host not in self.names:
            raise OSError(-2, "Name or service not known")
        return self.names[host]


def test_a_public_name_gives_every_address_it_resolves_to():
    resolve = Resolver({"news.example": ["93.184.215.14", "2606:2800:21f:cb07::1"]})
    guard = AddressGuard(resolve=resolve)
    assert guard.addresses("news.example", 443, may_be_private=True) == [
        "93.184.215.14", "2606:2800:21f:cb07::1"]
    assert resolve.asked == ["news.example"]


def test_an_ip_literal_is_never_looked_up():
    resolve = Resolver({})
    guard = AddressGuard(resolve=resolve)
    assert guard.addresses("8.8.8.8", 80, may_be_private=True) == ["8.8.8.8"]
    with pytest.raises(RefusedAddress, match=r"^::1 is a loopback address$"):
        guard.addresses("::1", 80, may_be_private=True)
    assert resolve.asked == []


def test_one_private_answer_among_public_ones_refuses_the_name():
    guard = AddressGuard(resolve=Resolver({"mixed.example": ["8.8.8.8", "10.0.0.1"]}))
    with pytest.raises(RefusedAddress) as refused:
        guard.addresses("mixed.example", 80, may_be_private=True)
    assert str(refused.value) == "mixed.example resolves to 10.0.0.1, a private address"
    assert (refused.value.host, refused.value.address, refused.value.kind) == (
        "mixed.example", "10.0.0.1", K.PRIVATE)
    assert refused.value.allowable


def test_allowed_hosts_may_be_private_when_reached_directly():
    resolve = Resolver({"feeds.corp": ["10.0.0.7"], "other.corp": ["10.0.0.8"],
                        "mcast.corp": ["239.0.0.1"]})
    guard = AddressGuard.allowing(["FEEDS.corp.", "mcast.corp"], resolve=resolve)
    assert guard.addresses("feeds.corp", 80, may_be_private=True) == ["10.0.0.7"]
    with pytest.raises(RefusedAddress) as other:
        guard.addresses("other.corp", 80, may_be_private=True)
    assert other.value.allowable
    with pytest.raises(RefusedAddress, match="a multicast address$") as mcast:
        guard.addresses("mcast.corp", 80, may_be_private=True)
    assert not mcast.value.allowable
    with pytest.raises(RefusedAddress) as redirected:
        guard.addresses("feeds.corp", 80, may_be_private=False, redirected_from="news.example")
    assert str(redirected.value) == (
        "news.example redirected to feeds.corp, which resolves to 10.0.0.7, a private address "
        "(an allowed host is reached only directly or from another allowed host)")
    assert not redirected.value.allowable


def test_an_ipv6_carrying_a_private_ipv4_says_so():
    guard = AddressGuard(resolve=Resolver({"v6.example": ["::ffff:127.0.0.1"]}))
    with pytest.raises(RefusedAddress) as refused:
        guard.addresses("v6.example", 80, may_be_private=True)
    assert str(refused.value) == ("v6.example resolves to ::ffff:127.0.0.1, a loopback address "
                                  "(127.0.0.1 inside IPv6)")


@pytest.mark.parametrize(("names", "message"), [
    ({}, "cannot resolve gone.example: [Errno -2] Name or service not known"),
    ({"gone.example": []}, "cannot resolve gone.example: no address"),
    ({"gone.example": ["not-an-ip"]}, "cannot resolve gone.example: 'not-an-ip' is not an IP"),
])
def test_names_that_do_not_resolve(names, message):
    with pytest.raises(OutboundError) as error:
        AddressGuard(resolve=Resolver(names)).addresses("gone.example", 80, may_be_private=True)
    assert not isinstance(error.value, RefusedAddress)
    assert str(error.value).startswith(message)
