"""Which URLs the asset cache may fetch: the SSRF policy as pure decisions (sans-IO).

A recording is attacker-controlled: anyone with the public project key can send a stylesheet URL
that names ``http://169.254.169.254/`` (a cloud metadata service) or ``http://10.0.0.5/admin``.
The fetcher (``runtime.asset_fetcher``) therefore asks, for every hop of every fetch:

1. :func:`check_url`: the scheme is http or https, there is a host, no user name or password, and
   the port is a web port (80, 443, 8080, 8443) unless the host or its address is on the
   allow-list;
2. :func:`choose_address`: the name was resolved once, and *every* address it resolved to is
   allowed (:func:`address_allowed`); the fetch then connects to the checked address itself, so
   a second resolution (DNS rebinding) cannot switch it to a refused one.

An address is refused when it is not globally routable: loopback, private (10/8, 172.16/12,
192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), shared (100.64/10), unspecified
(0.0.0.0, ::), multicast, reserved or documentation ranges. IPv4 addresses embedded in IPv6
(v4-mapped ``::ffff:a.b.c.d``, 6to4, NAT64 ``64:ff9b::/96``) are judged as the IPv4 address
they stand for. The allow-list (``REPLAYD_ASSET_ALLOW``: hosts, addresses, networks) overrides
the refusal; the tests allow ``127.0.0.1``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

import attrs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

WEB_PORTS = frozenset({80, 443, 8080, 8443})
DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
MAX_URL_LENGTH = 4096


class AssetRefused(ValueError):
    """The policy refuses this URL or address; the message says why (it is logged)."""


@attrs.frozen(slots=True)
class AllowList:
    """Hosts (names, compared case-insensitively) and networks the policy lets through anyway."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """``"127.0.0.1, 10.1.0.0/16, assets.intranet"`` -> an allow-list (ValueError if bad).

        An address or a network (CIDR) is a network entry; anything else a host name.
        """
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in text.replace(";", ",").split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or ":" in entry or not _looks_like_host(entry):
                raise ValueError(f"not a host, an address or a network: {raw.strip()!r}")
            hosts.add(entry.rstrip("."))
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    def allows_host(self, host: str) -> bool:
        """Whether the URL's host is listed by name (its addresses are then not checked)."""
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        """Whether ``address`` (or the IPv4 address it embeds) lies in a listed network."""
        candidates = {address, _embedded_v4(address) or address}
        return any(a.version == n.version and a in n for a in candidates for n in self.networks)


def _looks_like_host(entry: str) -> bool:
    return all(part and (part.isalnum() or "-" in part or "_" in part) for part in entry.split("."))


@attrs.frozen(slots=True)
class UrlTarget:
    """A URL that passed :func:`check_url`: what to resolve and how to ask for it."""

    url: str
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int
    target: str  # path and query, as sent in the request line ("/" when empty)
    host_allowed: bool  # listed by name: its addresses are not checked

    @property
    def host_header(self) -> str:
        """The Host header: the name as the URL has it, with the port unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"


def check_url(url: str, allow: AllowList) -> UrlTarget:
    """The fetchable target of ``url``, or :class:`AssetRefused` saying why not."""
    if len(url) > MAX_URL_LENGTH:
        raise AssetRefused(f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise AssetRefused(f"malformed URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise AssetRefused(f"scheme {scheme or '(none)'!r} is not http or https")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise AssetRefused("no host")
    if parts.username is not None or parts.password is not None:
        raise AssetRefused("credentials in the URL")
    port = DEFAULT_PORTS[scheme] if port is None else port
    listed = allow.allows_host(host) or _literal_listed(host, allow)
    if port not in WEB_PORTS and not listed:
        raise AssetRefused(f"port {port} is not a web port (80, 443, 8080, 8443)")
    return UrlTarget(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        target=_request_target(parts),
        host_allowed=allow.allows_host(host),
    )


def _literal_listed(host: str, allow: AllowList) -> bool:
    address = address_literal(host)
    return address is not None and allow.allows_address(address)


def _request_target(parts: SplitResult) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def address_literal(host: str) -> IPAddress | None:
    """The address a URL's host spells literally (``127.0.0.1``, ``::1``), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: IPAddress, allow: AllowList) -> bool:
    """Whether the fetcher may connect to ``address`` (see the module for what is refused)."""
    if allow.allows_address(address):
        return True
    embedded = _embedded_v4(address)
    if embedded is not None:
        return _public(embedded)
    if isinstance(address, ipaddress.IPv6Address) and address.teredo is not None:
        return False  # a tunnel to an IPv4 address we cannot judge from here
    return _public(address)


def _public(address: IPAddress) -> bool:
    return address.is_global and not (
        address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def choose_address(target: UrlTarget, resolved: Iterable[str], allow: AllowList) -> str:
    """The address to connect to for ``target`` once its name was resolved to ``resolved``.

    Every resolved address must be allowed (one refused address refuses the name: an attacker's
    DNS could answer both and hope the client picks the private one); the first is returned.
    A host allowed by name skips the check.
    """
    addresses: list[IPAddress] = []
    for text in resolved:
        try:
            addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            raise AssetRefused(f"{target.host} resolved to a non-address {text!r}") from None
    if not addresses:
        raise AssetRefused(f"{target.host} did not resolve")
    if not target.host_allowed:
        for address in addresses:
            if not address_allowed(address, allow):
                raise AssetRefused(f"{target.host} resolves to refused address {address}")
    return str(addresses[0])


# -- what may be cached and served ---------------------------------------------------------------

STYLESHEET_TYPE = "text/css"
FONT_TYPES = frozenset(
    {"font/woff", "font/woff2", "font/ttf", "font/otf", "font/collection", "font/sfnt"}
)
IMAGE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/svg+xml",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "image/bmp",
    }
)
SERVABLE_TYPES = frozenset({STYLESHEET_TYPE}) | FONT_TYPES | IMAGE_TYPES
# Old names servers still send for fonts.
_FONT_ALIASES = {
    "application/font-woff": "font/woff",
    "application/x-font-woff": "font/woff",
    "application/font-woff2": "font/woff2",
    "application/x-font-ttf": "font/ttf",
    "application/x-font-truetype": "font/ttf",
    "application/font-sfnt": "font/sfnt",
    "application/x-font-opentype": "font/otf",
    "application/vnd.ms-fontobject": "",  # EOT: no browser the player runs in reads it
}
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"OTTO", "font/otf"),
    (b"\x00\x01\x00\x00", "font/ttf"),
    (b"ttcf", "font/collection"),
)
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "text/plain"})


def asset_content_type(header: str, data: bytes) -> str | None:
    """The type an asset is cached and served as, or None when it is not CSS, a font or an image.

    The server's ``Content-Type`` decides when it names one of those (old font names mapped to
    ``font/*``); a generic one (none, octet-stream, text/plain) is settled by the bytes' magic
    number. Anything else (HTML, JavaScript, JSON) is refused: the cache is for styling only,
    and serving a script from replayd's origin would be an XSS gift.
    """
    media = header.split(";", 1)[0].strip().lower()
    media = _FONT_ALIASES.get(media, media)
    if media in SERVABLE_TYPES:
        return media
    if media not in _GENERIC_TYPES:
        return None
    for magic, sniffed in _MAGIC:
        if data.startswith(magic):
            return sniffed
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None
