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
    ports = {
        name: free_port()
        for name in ("PORT", "EMULATOR_PORT", "WS_PORT", "WS_MANAGEMENT_PORT", "LAMBDA_PORT")
    }
    data_dir = data_dir or log.parent / "data"
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "LOCAL_DATA_DIR": str(data_dir),
        "RELOAD": "0",
        **(env or {}),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.dev", *args],
            cwd=root,
            env=env,
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
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the local stack exited early:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{endpoints.api}/health", timeout=1):
                    # ready once it has also told the client where it is
                    if (data_dir / "local.json").exists():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local stack did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield endpoints
    finally:
        process.send_signal(stop_signal)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
