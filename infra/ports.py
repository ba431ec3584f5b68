"""Local processes the tooling starts: a free port to give one, whether one is taken, and
waiting until it answers."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
