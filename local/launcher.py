"""Start `make dev`'s program on free ports, for the end-to-end tests and the bench."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PORT_NAMES = ("PORT", "EMULATOR_PORT", "WS_PORT", "WS_MANAGEMENT_PORT", "LAMBDA_PORT")
PORT_ATTEMPTS = 3


class PortTaken(RuntimeError):
    """The stack exited because a port chosen for it was taken before it could listen."""


@dataclass(frozen=True)
class Endpoints:
    api: str
    ws: str
    emulator: str
    log: Path
    data_dir: Path
    lambda_api: str = ""


@contextmanager
def local_stack(
    log: Path,
    timeout: float = 180,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    stop_signal: int = signal.SIGTERM,
    root: Path = ROOT,
) -> Iterator[Endpoints]:
    """`make dev` on free ports, its state in `data_dir` (by default beside the log, never
    the checkout's), with `env` added to its environment; stopped by `stop_signal` (SIGINT:
    as Ctrl-C stops it). It is ready in about 15 s on a busy 2-core machine; `timeout`
    leaves room for a much busier one (a stack that exits fails at once). `root`: the
    checkout to run (a copy a test may edit).

    Without reload (`RELOAD=0`) unless `env` asks for it: a file saved in the checkout
    while the tests run must not restart their stacks."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        ports = {name: free_port() for name in PORT_NAMES}
        process, endpoints = _start(log, ports, data_dir, env, args, root)
        try:
            _wait_until_ready(process, endpoints, timeout)
            break
        except PortTaken:
            if attempt == PORT_ATTEMPTS:
                raise
            # Another process took a chosen port before the stack bound it: choose again.
    try:
        yield endpoints
    finally:
        process.send_signal(stop_signal)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _start(
    log: Path,
    ports: dict[str, int],
    data_dir: Path | None,
    env: dict[str, str] | None,
    args: tuple[str, ...],
    root: Path,
) -> tuple[subprocess.Popen, Endpoints]:
    data_dir = data_dir or log.parent / "data"
    environment = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "LOCAL_DATA_DIR": str(data_dir),
        "RELOAD": "0",
        **(env or {}),
    }
    environment.pop("AWS_ENDPOINT_URL", None)
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.dev", *args],
            cwd=root,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    endpoints = Endpoints(
        api=f"http://127.0.0.1:{ports['PORT']}",
        ws=f"ws://127.0.0.1:{ports['WS_PORT']}",
        emulator=f"http://127.0.0.1:{ports['EMULATOR_PORT']}",
        log=log,
        data_dir=data_dir,
        lambda_api=f"http://127.0.0.1:{ports['LAMBDA_PORT']}",
    )
    return process, endpoints


def exited_on_a_taken_port(log_tail: str) -> bool:
    """Whether the stack's log ends on a port taken before make dev's own check of its ports
    ("port N is in use: set PORT=..."), or between that check and the bind: EADDRINUSE,
    worded "Address already in use" by Python's sockets and "address already in use" by
    asyncio's (the WebSocket gateway)."""
    return " is in use: set " in log_tail or "address already in use" in log_tail.lower()


def _wait_until_ready(process: subprocess.Popen, endpoints: Endpoints, timeout: float) -> None:
    """Until the stack answers and has told the client where it is; PortTaken if it exited
    on a port another process took, RuntimeError if it exited or hung otherwise."""
    log = endpoints.log
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            tail = log.read_text()[-3000:]
            kind = PortTaken if exited_on_a_taken_port(tail) else RuntimeError
            raise kind(f"the local stack exited early:\n{tail}")
        try:
            with urllib.request.urlopen(f"{endpoints.api}/health", timeout=1):
                if (endpoints.data_dir / "local.json").exists():
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the local stack did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
