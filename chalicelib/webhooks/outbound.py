"""One webhook POST: to the address the SSRF guard checked, within one total deadline.

The connection goes to an address `ssrf.check_url` resolved and checked, never to
a second lookup of the name (DNS rebinding); the name travels in the Host header
and as TLS SNI, and the certificate is verified against it. Connect, send and read
share one deadline, so a receiver that drips bytes cannot hold a delivery. Only the
status line and headers are read; anything that is not HTTP is a failed attempt.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from chalicelib.webhooks.ssrf import Destination

MAX_HEAD_BYTES = 16 * 1024
_UNSAFE_HEADER = frozenset("\r\n\x00")


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    latency_ms: int
    retry_after: int | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.status_code is None:
            return True  # network error, timeout, malformed answer
        return self.status_code in (408, 429) or self.status_code >= 500


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.end = self.start + seconds

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the receiver did not answer within the deadline")
        return left

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.start) * 1000)


def post(
    destination: Destination,
    body: bytes,
    headers: dict[str, str],
    deadline_seconds: float,
    method: str = "POST",
) -> Outcome:
    deadline = _Deadline(deadline_seconds)
    try:
        request = _request(destination, body, headers, method)
        with _connect(destination, deadline) as sock:
            _send(sock, request, deadline)
            head = _read_head(sock, deadline)
        status, retry_after = _parse_head(head)
    except TimeoutError as exc:
        return Outcome(None, f"timed out: {exc}", deadline.elapsed_ms())
    except ssl.SSLError as exc:
        return Outcome(None, f"TLS error: {exc.reason or exc}", deadline.elapsed_ms())
    except OSError as exc:
        return Outcome(None, f"network error: {exc}", deadline.elapsed_ms())
    except ValueError as exc:
        return Outcome(None, f"malformed HTTP response: {exc}", deadline.elapsed_ms())
    error = None if 200 <= status < 300 else f"HTTP {status}"
    return Outcome(status, error, deadline.elapsed_ms(), retry_after)


def _request(
    destination: Destination, body: bytes, headers: dict[str, str], method: str = "POST"
) -> bytes:
    default_port = 443 if destination.scheme == "https" else 80
    host = destination.host if ":" not in destination.host else f"[{destination.host}]"
    if destination.port != default_port:
        host += f":{destination.port}"
    lines = [
        f"{method} {destination.path} HTTP/1.1",
        f"Host: {host}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    for name, value in headers.items():
        if _UNSAFE_HEADER & set(name + value) or ":" in name:
            raise ValueError(f"header {name[:40]!r} holds characters a header cannot carry")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def _connect(destination: Destination, deadline: _Deadline) -> socket.socket:
    last_error: OSError = OSError("no address to connect to")
    for address in destination.addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect((address, destination.port))
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise
            last_error = exc
            continue
        if destination.scheme != "https":
            return sock
        context = ssl.create_default_context()
        try:
            sock.settimeout(deadline.remaining())
            return context.wrap_socket(sock, server_hostname=destination.host)
        except BaseException:
            sock.close()
            raise
    raise last_error


def _send(sock: socket.socket, data: bytes, deadline: _Deadline) -> None:
    view = memoryview(data)
    while view:
        sock.settimeout(deadline.remaining())
        sent = sock.send(view)
        view = view[sent:]


def _read_head(sock: socket.socket, deadline: _Deadline) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        sock.settimeout(deadline.remaining())
        chunk = sock.recv(4096)
        if not chunk:
            if head:
                break
            raise ValueError("the connection closed before any answer")
        head += chunk
        if len(head) > MAX_HEAD_BYTES:
            raise ValueError(f"the response head is over {MAX_HEAD_BYTES} bytes")
    return head.split(b"\r\n\r\n", 1)[0]


def _parse_head(head: bytes) -> tuple[int, int | None]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ValueError("the answer does not start with an HTTP status line")  # no echo
    retry_after = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "retry-after" and value.strip().isdigit():
            retry_after = int(value.strip())
    return int(code), retry_after
