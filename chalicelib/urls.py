"""The SSRF guard for webhook URLs: checked at submit and again at every delivery."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from chalicelib.settings import Settings

METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnsafeUrl(ValueError):
    pass


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({info[4][0] for info in infos})


def _forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip in METADATA_ADDRESSES
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_url(url: str, settings: Settings, resolver: Resolver = resolve) -> None:
    """Refuse URLs a webhook must not reach. Raises UnsafeUrl with a reason."""
    parts = urlsplit(url)
    allowed = ("https", "http") if settings.webhook_allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeUrl(f"webhook.url must use {' or '.join(allowed)}")
    if not parts.hostname:
        raise UnsafeUrl("webhook.url has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("webhook.url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("webhook.url has an invalid port") from None
    if settings.webhook_allow_private:
        return
    try:
        addresses = resolver(parts.hostname, port)
    except (OSError, UnicodeError):
        raise UnsafeUrl(f"webhook host {parts.hostname!r} does not resolve") from None
    if not addresses or any(_forbidden(a) for a in addresses):
        raise UnsafeUrl(
            f"webhook host {parts.hostname!r} resolves to a private, loopback, link-local "
            "or metadata address"
        )
