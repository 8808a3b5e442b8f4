"""The asset cache's SSRF policy (engine.asset_policy): URLs, addresses, the allow-list, types."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.asset_policy import (
    AllowList,
    AssetRefused,
    address_allowed,
    asset_content_type,
    check_url,
    choose_address,
)

NOTHING = AllowList()
LOOPBACK = AllowList.parse("127.0.0.1")

REFUSED = [
    "127.0.0.1",
    "127.1.2.3",
    "0.0.0.0",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "ff02::1",
    "fec0::1",  # site-local (deprecated, still not public)
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "2001:db8::1",  # documentation
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::6810:85e5", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("text", REFUSED)
def test_private_loopback_link_local_and_special_addresses_are_refused(text: str) -> None:
    assert not address_allowed(ipaddress.ip_address(text), NOTHING)


@pytest.mark.parametrize("text", ALLOWED)
def test_public_addresses_are_allowed(text: str) -> None:
    assert address_allowed(ipaddress.ip_address(text), NOTHING)


def test_the_allow_list_lets_listed_addresses_and_networks_through() -> None:
    allow = AllowList.parse("127.0.0.1, 10.1.0.0/16 ; fd00::/8")
    assert address_allowed(ipaddress.ip_address("127.0.0.1"), allow)
    assert address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"), allow)  # the same host
    assert address_allowed(ipaddress.ip_address("10.1.200.3"), allow)
    assert address_allowed(ipaddress.ip_address("fd00::5"), allow)
    assert not address_allowed(ipaddress.ip_address("127.0.0.2"), allow)
    assert not address_allowed(ipaddress.ip_address("10.2.0.1"), allow)
    assert not address_allowed(ipaddress.ip_address("169.254.169.254"), allow)


@pytest.mark.parametrize("bad", ["bad/host/x", "a..b", "http://x", "::zz"])
def test_a_bad_allow_list_entry_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not a host"):
        AllowList.parse(bad)


@given(st.ip_addresses(v=4))
def test_a_v4_mapped_address_is_judged_as_its_ipv4_address(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert address_allowed(mapped, NOTHING) == address_allowed(address, NOTHING)
    assert address_allowed(mapped, LOOPBACK) == address_allowed(address, LOOPBACK)


@given(st.ip_addresses(network="10.0.0.0/8") | st.ip_addresses(network="172.16.0.0/12"))
def test_every_private_v4_address_is_refused(address: ipaddress.IPv4Address) -> None:
    assert not address_allowed(address, NOTHING)


@given(
    st.ip_addresses(network="fc00::/7")
    | st.ip_addresses(network="fe80::/10")
    | st.ip_addresses(network="ff00::/8")
    | st.ip_addresses(network="169.254.0.0/16")
    | st.ip_addresses(network="100.64.0.0/10")
    | st.ip_addresses(network="127.0.0.0/8")
)
def test_every_local_address_is_refused(address: ipaddress.IPv4Address) -> None:
    assert not address_allowed(address, NOTHING)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/a.css", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("http:///a.css", "no host"),
        ("http://user:pw@example.com/a.css", "credentials"),
        ("http://example.com:22/a.css", "port 22"),
        ("http://example.com:6379/", "port 6379"),
        ("http://example.com:99999/", "malformed"),
        ("http://" + "a" * 5000 + ".com/", "longer"),
    ],
)
def test_urls_the_policy_refuses(url: str, reason: str) -> None:
    with pytest.raises(AssetRefused, match=reason):
        check_url(url, NOTHING)


def test_a_checked_url_keeps_its_name_for_the_host_header() -> None:
    target = check_url("https://CDN.example.com/css/a.css?v=3#top", NOTHING)
    assert (target.scheme, target.host, target.port) == ("https", "cdn.example.com", 443)
    assert target.target == "/css/a.css?v=3"
    assert target.host_header == "cdn.example.com"
    assert check_url("http://example.com:8080/", NOTHING).host_header == "example.com:8080"
    assert check_url("http://[2606:4700::1]/x", NOTHING).host_header == "[2606:4700::1]"


def test_other_ports_need_the_allow_list() -> None:
    with pytest.raises(AssetRefused, match="port"):
        check_url("http://127.0.0.1:5000/a.css", NOTHING)
    assert check_url("http://127.0.0.1:5000/a.css", LOOPBACK).port == 5000
    assert check_url("http://site.test:5000/", AllowList.parse("site.test")).host_allowed


def test_every_resolved_address_must_be_allowed() -> None:
    target = check_url("http://rebind.example/", NOTHING)
    assert choose_address(target, ["93.184.216.34", "8.8.8.8"], NOTHING) == "93.184.216.34"
    with pytest.raises(AssetRefused, match=r"refused address 10\.0\.0\.1"):
        choose_address(target, ["93.184.216.34", "10.0.0.1"], NOTHING)
    with pytest.raises(AssetRefused, match="did not resolve"):
        choose_address(target, [], NOTHING)
    with pytest.raises(AssetRefused, match="refused address"):
        choose_address(target, ["fe80::1%eth0"], NOTHING)


def test_a_host_allowed_by_name_skips_the_address_check() -> None:
    allow = AllowList.parse("intranet.test")
    target = check_url("http://intranet.test/a.css", allow)
    assert choose_address(target, ["10.0.0.7"], allow) == "10.0.0.7"


@pytest.mark.parametrize(
    ("header", "data", "expected"),
    [
        ("text/css; charset=utf-8", b"body{}", "text/css"),
        ("font/woff2", b"wOF2...", "font/woff2"),
        ("application/font-woff", b"wOFF", "font/woff"),
        ("image/svg+xml", b"<svg/>", "image/svg+xml"),
        ("application/octet-stream", b"\x89PNG\r\n\x1a\n....", "image/png"),
        ("", b"wOF2....", "font/woff2"),
        ("", b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        ("text/html", b"<html><script>", None),
        ("application/javascript", b"alert(1)", None),
        ("text/plain", b"alert(1)", None),
        ("application/vnd.ms-fontobject", b"....", None),
    ],
)
def test_only_css_fonts_and_images_are_kept(header: str, data: bytes, expected: str | None) -> None:
    assert asset_content_type(header, data) == expected
