"""Start the local stack (`make dev`'s program) once for the e2e tests, on free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.conftest import token_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalStack:
    api: str
    ws: str
    emulator: str
    log: Path

    def headers(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(user)}", "Content-Type": "application/json"}

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.emulator,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def websocket(self, user: str = "alice", token: str | None = None) -> Any:
        from websockets.sync.client import connect

        return connect(f"{self.ws}/?token={token or token_for(user)}", proxy=None, open_timeout=10)

    def submit(self, job: dict, user: str = "alice", **kwargs: Any) -> dict:
        response = requests.post(
            f"{self.api}/jobs", json=job, headers=self.headers(user), timeout=10, **kwargs
        )
        assert response.status_code == 202, response.text
        return response.json()

    def get(self, job_id: str, user: str = "alice") -> dict:
        response = requests.get(f"{self.api}/jobs/{job_id}", headers=self.headers(user), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_until_finished(
        self, job_id: str, timeout: float = 30, user: str = "alice"
    ) -> list[dict]:
        """Poll until the job is terminal; return every distinct state seen."""
        seen: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id, user)
            if not seen or seen[-1] != job:
                seen.append(job)
            if job["status"] in {"completed", "completed_with_errors", "failed", "cancelled"}:
                return seen
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s; last: {seen[-1:]}")


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    ports = {
        "PORT": free_port(),
        "EMULATOR_PORT": free_port(),
        "WS_PORT": free_port(),
        "WS_MANAGEMENT_PORT": free_port(),
    }
    log = tmp_path_factory.mktemp("local-stack") / "dev.log"
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}}
    env.pop("AWS_ENDPOINT_URL", None)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.dev"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    stack = LocalStack(
        api=f"http://127.0.0.1:{ports['PORT']}",
        ws=f"ws://127.0.0.1:{ports['WS_PORT']}",
        emulator=f"http://127.0.0.1:{ports['EMULATOR_PORT']}",
        log=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the local stack exited early:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{stack.api}/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local stack did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield stack
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
