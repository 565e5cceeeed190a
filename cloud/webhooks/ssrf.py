"""Refuse webhook targets inside our own network unless an allow-list names them (SSRF).

A target is allowed when every address its host resolves to is globally routable, or when
the host name, or each address, is covered by an allow-list entry (a host name, an address
or a CIDR network). An IPv6 address that carries an IPv4 one (IPv4-mapped, IPv4-compatible,
NAT64, 6to4, Teredo) is judged by the IPv4 it carries, since that is where packets end up.
The decision is pure; :func:`pin_target` resolves the name once and returns the URL rewritten
to the address that was checked, so the connection cannot be re-pointed by a second lookup
(DNS rebinding). The Host header and the TLS server name keep the original host.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215; any RFC 6052 prefix length


class BlockedTarget(ValueError):
    """The URL points somewhere webhooks may not go."""


def embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address routes to (empty for a plain IPv6 address)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)  # (server, client)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _IPV4_COMPATIBLE or address in _NAT64:
        return [low32]
    if address in _LOCAL_NAT64:
        # RFC 6052: after a /48 prefix the IPv4 sits in bytes 6-7 and 9-10 (byte 8 is zero);
        # a longer prefix inside it may use the last 32 bits. Both must pass.
        packed = address.packed
        return [ipaddress.IPv4Address(packed[6:8] + packed[9:11]), low32]
    return []


def _covered(address: Address, allow: Iterable[str]) -> bool:
    for entry in allow:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name entry
    return False


def _address_refusal(address: Address, allow: list[str]) -> str | None:
    if _covered(address, allow):
        return None
    carried = embedded_ipv4(address)
    for ipv4 in carried:
        if not ipv4.is_global and not _covered(ipv4, allow):
            return f"non-public address {address} (carries {ipv4})"
    if not carried and not address.is_global:
        return f"non-public address {address}"
    return None


def refusal(host: str, addresses: list[str], allow: Iterable[str]) -> str | None:
    """Why ``host`` (resolving to ``addresses``) is refused, or None when it is allowed."""
    allow = list(allow)
    if host.lower() in (a.lower() for a in allow):
        return None
    if not addresses:
        return f"{host} does not resolve"
    for text in addresses:
        reason = _address_refusal(ipaddress.ip_address(text.split("%", 1)[0]), allow)
        if reason is not None:
            return f"{host} resolves to {reason} (not in the allow-list)"
    return None


def parse_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedTarget(f"{url!r} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise BlockedTarget("webhook URLs may not carry credentials")
    try:
        port = parts.port
    except ValueError as err:
        raise BlockedTarget(f"{url!r}: {err}") from None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class PinnedTarget:
    """Where to connect (``url``, with the checked address) and who to say we called."""

    url: str
    host_header: str
    server_name: str
    address: str


def pinned(url: str, address: str) -> PinnedTarget:
    parts = urlsplit(url)
    host, _ = parse_url(url)
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    host_header = f"{host}:{parts.port}" if parts.port else host
    if ":" in host:
        host_header = f"[{host}]:{parts.port}" if parts.port else f"[{host}]"
    return PinnedTarget(urlunsplit(parts._replace(netloc=netloc)), host_header, host, address)


async def resolve(host: str, port: int) -> list[str]:
    with contextlib.suppress(ValueError):  # an address literal needs no resolver thread
        return [str(ipaddress.ip_address(host.strip("[]")))]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return list(dict.fromkeys(str(i[4][0]) for i in infos))


async def pin_target(url: str, allow: Iterable[str], resolver: Resolver = resolve
                     ) -> PinnedTarget:
    """Resolve once, refuse unless every address is allowed, and pin the first of them."""
    host, port = parse_url(url)
    addresses = await resolver(host, port)
    reason = refusal(host, addresses, allow)
    if reason is not None:
        raise BlockedTarget(reason)
    return pinned(url, addresses[0].split("%", 1)[0])


async def check_target(url: str, allow: Iterable[str]) -> None:
    await pin_target(url, allow)
