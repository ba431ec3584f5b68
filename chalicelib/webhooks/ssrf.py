"""The SSRF guard for webhook URLs: checked at submit and again at every delivery.

`check_url` resolves the host once and returns the addresses it checked; the
delivery connects to one of those very addresses (chalicelib/webhooks/outbound.py), so a
resolver that answers differently on a second lookup (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib.settings import Settings

# The cloud metadata service: refused on every stage, the local one included.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnsafeUrl(ValueError):
    """The URL must never be called; final."""


class UnresolvableHost(UnsafeUrl):
    """The host did not resolve now; at delivery this is worth retrying."""


Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]  # every address the host resolved to, each checked


DNS_TIMEOUT_SECONDS = 5.0


def resolve(host: str, port: int, timeout: float = DNS_TIMEOUT_SECONDS) -> list[str]:
    """The host's addresses, or OSError if it takes longer than `timeout`.

    getaddrinfo has no deadline of its own: a webhook host with a slow name server would
    hold the delivery (and the messages batched with it) for the resolver's retries.
    """
    answer: list[list[str]] = []
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
            answer.append(sorted({info[4][0] for info in infos}))
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=lookup, name="dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if failure:
        raise failure[0]
    if not answer:
        raise OSError(f"no answer within {timeout:g} s")
    return answer[0]


class LookupTimeSpent(Exception):
    """A request's time for webhook lookups ran out before this host was looked up."""


class LookupBudget:
    """The webhook lookups of one request: each host once, all of them within `seconds`.

    Each lookup may take DNS_TIMEOUT_SECONDS; a batch of 100 jobs naming 100 hosts behind
    slow name servers would otherwise hold the request for 100 of them, long past API
    Gateway's 29 s, and every job of the batch would be lost with it.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.deadline = clock() + seconds
        self.answers: dict[tuple[str, int], list[str] | OSError] = {}

    def __call__(self, host: str, port: int) -> list[str]:
        key = (host, port)
        if key not in self.answers:
            self.answers[key] = self._look_up(host, port)
        answer = self.answers[key]
        if isinstance(answer, OSError):
            raise answer
        return answer

    def _look_up(self, host: str, port: int) -> list[str] | OSError:
        timeout = min(DNS_TIMEOUT_SECONDS, self.deadline - self.clock())
        if timeout > 0:
            try:
                return resolve(host, port, timeout=timeout)
            except OSError as exc:
                # Cut short by the budget, not by the host: say so rather than "does not resolve".
                if timeout == DNS_TIMEOUT_SECONDS or self.clock() < self.deadline:
                    return exc
        raise LookupTimeSpent(
            f"webhook host {host!r} was not looked up: this request's "
            f"{self.seconds:g} s for webhook lookups ran out; send this job again"
        )


IP = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 forms that carry an IPv4 address the packets may end up at.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _addresses(text: str) -> list[IP]:
    """The address, and any IPv4 address embedded in it (mapped, 6to4, Teredo, NAT64,
    IPv4-compatible): each must pass, since the packets may be delivered to either."""
    ip = ipaddress.ip_address(text)  # IPv6 zone ids (fe80::1%eth0) are understood
    if not isinstance(ip, ipaddress.IPv6Address):
        return [ip]
    embedded: list[IP] = [ip]
    if ip.ipv4_mapped is not None:
        embedded.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:
        embedded.extend(ip.teredo)
    if any(ip in network for network in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 0xFFFF):
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return embedded


def _refused(ip: IP, allow_private: bool) -> bool:
    if ip in METADATA_ADDRESSES or ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return True
    if allow_private and (ip.is_loopback or ip.is_private):
        return False
    return not ip.is_global


def forbidden(address: str, allow_private: bool) -> bool:
    """Whether a webhook may not connect to `address`.

    Only globally routable addresses are allowed (so 100.64.0.0/10, benchmarking and
    documentation ranges are refused too), checked for the IPv4 address an IPv6 one
    embeds too. The local stage also allows loopback and private ranges, for receivers
    on the laptop, but never link-local or metadata.
    """
    addresses = _addresses(address)
    if isinstance(addresses[0], ipaddress.IPv6Address) and addresses[0].ipv4_mapped:
        addresses = addresses[1:]  # ::ffff:a.b.c.d is exactly a.b.c.d
    return any(_refused(ip, allow_private) for ip in addresses)


WEB_PORTS = (80, 443)
FIRST_UNPRIVILEGED_PORT = 1024


def check_url(url: str, settings: Settings, resolver: Resolver = resolve) -> Destination:
    """Refuse URLs a webhook must not reach; return where to connect. Raises UnsafeUrl."""
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
    if port < FIRST_UNPRIVILEGED_PORT and port not in WEB_PORTS:
        # Ports like 22, 25 or 6379 serve other protocols: the delivery log would be a port scanner.
        raise UnsafeUrl("webhook.url port must be 80, 443 or from 1024 to 65535")
    try:
        addresses = resolver(parts.hostname, port)
    except (OSError, UnicodeError):
        raise UnresolvableHost(f"webhook host {parts.hostname!r} does not resolve") from None
    if not addresses:
        raise UnresolvableHost(f"webhook host {parts.hostname!r} does not resolve")
    if any(forbidden(a, settings.webhook_allow_private) for a in addresses):
        raise UnsafeUrl(
            f"webhook host {parts.hostname!r} resolves to an address that is not public "
            "(private, loopback, link-local, shared or metadata)"
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, parts.hostname, port, path, tuple(addresses))
