"""Local processes the tooling starts: a free port to give one, whether one is taken, and
waiting until it answers."""

from __future__ import annotations

import random
import socket
import time
import urllib.request
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000  # below the ephemeral range, above the ports services usually take


def ephemeral_range(path: Path = EPHEMERAL_RANGE) -> tuple[int, int]:
    """The ports the OS gives outgoing connections and `bind(0)` (Linux's default if unread)."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_port(path: Path = EPHEMERAL_RANGE) -> int:
    """A port nothing listens on, for a server a child process starts a few seconds later.

    Chosen below the ephemeral range: a port the OS handed out (`bind(0)`) is one it may
    hand out again, to any outgoing connection, before the child binds it. That race failed
    a fresh-clone CI run (the local stack's Lambda API port: EADDRINUSE), since a test run
    opens thousands of connections a minute. Below the range only another chooser can take
    it, and a random pick among some 20,000 ports makes that rare."""
    low, _ = ephemeral_range(path)
    if low - LOWEST < 1000:  # no room below the range: let the OS choose
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    while True:
        port = random.randrange(LOWEST, low)
        if not in_use(port):
            return port


def in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could not listen on `port`: something else already listens there.

    The check binds as every server of `make dev` does (`SO_REUSEADDR`, the default of
    http.server, werkzeug and asyncio): the TIME_WAIT connections a stopped server leaves on
    its port for up to a minute never keep a new server from listening, so they do not make
    the port busy either. A plain bind would count them, and refuse a restart after Ctrl-C.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")
