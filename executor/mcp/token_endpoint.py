"""Token endpoint safety (protocol §10.3, with the stricter rule of issue 7).

The executor POSTs refresh tokens to a URL a user supplied, from inside the customer's network:
without a check, a deposit could aim it at the cloud metadata service or an internal admin port.
Checked at deposit and again before every refresh.

- Always refused: anything but an absolute ``http``/``https`` URL with a host, credentials in the
  URL, the unspecified addresses (``0.0.0.0/8``, ``::``), link-local (``169.254.0.0/16``,
  ``fe80::/10``), multicast and broadcast, also in their IPv4-mapped/compatible IPv6 forms.
- Outside ``development``/``test``: ``http`` and loopback (``127.0.0.0/8``, ``::1``,
  ``localhost``, ``*.localhost``) and — unlike the reference, as the issue asks — the private and
  shared ranges (``10/8``, ``172.16/12``, ``192.168/16``, ``100.64/10``, ``fc00::/7``,
  ``fec0::/10``) and reserved ones.

Host names are not resolved (as in the reference): a public name that resolves to a private address
passes. IPv4 literals are read the way URL parsers in browsers and Node read them (``127.1``,
``0x7f.0.0.1``, ``2130706433``), so those spellings cannot slip past.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from executor.errors import InvalidTokenEndpoint

RELAXED_ENVIRONMENTS = frozenset({"development", "test"})

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(net)
    for net in ("0.0.0.0/8", "169.254.0.0/16", "255.255.255.255/32", "::/128", "fe80::/10")
)
_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
        "fec0::/10",
    )
)
# What an authority may hold: a host name or IPv4 literal, or a bracketed IPv6 literal, then a port.
_PLAIN_AUTHORITY = re.compile(r"^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$")
# Every label made of digits, or 0x-hex: what WHATWG URL parsers take as an IPv4 address.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$")


def token_endpoint_problem(url: str, *, environment: str) -> str | None:
    """Why ``url`` may not be used as a token endpoint, or ``None`` when it may."""
    relaxed = environment in RELAXED_ENVIRONMENTS
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "must be a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an absolute http or https URL"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials"
    # The request is sent by urllib3, whose parser ends a host at a backslash and decodes
    # percent-escapes, where urlsplit does neither: a host is checked only when it is spelled
    # plainly, and when both parsers read the same one (else "169.254.169.254\.example" passes
    # here as a name and is reached there as the metadata address).
    if not _PLAIN_AUTHORITY.match(parts.netloc) or _sent_host(url) != host.lower():
        return "must name its host plainly (ASCII letters, digits, dots, hyphens or an IP address)"
    if parts.scheme != "https" and not relaxed:
        return "must use https"
    host = host.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return None if relaxed else "must not target a loopback address"
    address = _ip_literal(host)
    if address is None:
        return None  # a name: not resolved, by design
    return _address_problem(address, relaxed=relaxed)


def _sent_host(url: str) -> str | None:
    """The host urllib3 (the refresh grant's client) connects to, brackets removed."""
    try:
        host = parse_url(url).host
    except LocationParseError:
        return None
    return None if host is None else host.strip("[]").lower()


def check_token_endpoint(url: str, *, environment: str) -> None:
    """Raise :class:`InvalidTokenEndpoint` when ``url`` may not be used as a token endpoint."""
    problem = token_endpoint_problem(url, environment=environment)
    if problem is not None:
        raise InvalidTokenEndpoint(f"Token endpoint refused: {problem}")


def _ip_literal(host: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return None
        try:
            # inet_aton reads the shorthand and octal/hex forms exactly like URL parsers do.
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return embedded
    return address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: mapped ``::ffff:a.b.c.d``, translated
    ``::ffff:0:a.b.c.d`` or compatible ``::a.b.c.d`` (the last not for ``::`` and ``::1``)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    packed = address.packed
    if packed[:8] == bytes(8) and packed[8:12] == b"\xff\xff\x00\x00":
        return ipaddress.IPv4Address(packed[12:])
    if packed[:12] == bytes(12) and int(address) > 1:
        return ipaddress.IPv4Address(packed[12:])
    return None


def _address_problem(address: IpAddress, *, relaxed: bool) -> str | None:
    if address.is_multicast or any(address in net for net in _ALWAYS_REFUSED):
        return "must not target an unspecified, link-local or broadcast address"
    if relaxed:
        return None
    if address.is_loopback:
        return "must not target a loopback address"
    if any(address in net for net in _PRIVATE) or address.is_reserved:
        return "must not target a private address"
    return None
