"""Refuse webhook targets inside our own network unless an allow-list names them (SSRF).

A target is allowed when every address its host resolves to is globally routable, or when
the host name, or each address, is covered by an allow-list entry (a host name, an address
or a CIDR network). The decision is pure; :func:`check_target` resolves the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit


class BlockedTarget(ValueError):
    """The URL points somewhere webhooks may not go."""


def _covered(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: Iterable[str]) -> bool:
    for entry in allow:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name entry
    return False


def refusal(host: str, addresses: list[str], allow: Iterable[str]) -> str | None:
    """Why ``host`` (resolving to ``addresses``) is refused, or None when it is allowed."""
    allow = list(allow)
    if host.lower() in (a.lower() for a in allow):
        return None
    if not addresses:
        return f"{host} does not resolve"
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not address.is_global and not _covered(address, allow):
            return f"{host} resolves to non-public address {address} (not in the allow-list)"
    return None


def parse_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedTarget(f"{url!r} is not an http(s) URL")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


async def check_target(url: str, allow: Iterable[str]) -> None:
    host, port = parse_url(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        infos = []
    reason = refusal(host, sorted({str(i[4][0]) for i in infos}), allow)
    if reason is not None:
        raise BlockedTarget(reason)
