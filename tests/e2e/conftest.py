"""Start the local stack (`make dev`'s program) once for the e2e tests, on free ports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local.launcher import local_stack as launch
from tests.conftest import token_for
from tests.e2e import HTTP_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LocalStack:
    api: str
    ws: str
    emulator: str
    log: Path
    lambda_api: str = ""

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

        return connect(
            f"{self.ws}/?token={token or token_for(user)}", proxy=None, open_timeout=HTTP_TIMEOUT
        )

    def submit(self, job: dict, user: str = "alice", **kwargs: Any) -> dict:
        response = requests.post(
            f"{self.api}/jobs", json=job, headers=self.headers(user), timeout=HTTP_TIMEOUT, **kwargs
        )
        assert response.status_code == 202, response.text
        return response.json()

    def get(self, job_id: str, user: str = "alice") -> dict:
        response = requests.get(
            f"{self.api}/jobs/{job_id}", headers=self.headers(user), timeout=HTTP_TIMEOUT
        )
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

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        """Until the stack's log has `text`: how a test learns that a handler has been and
        found nothing to do, where no state changes to poll for."""
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"{text!r} was not logged in {timeout} s"
            time.sleep(0.1)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # Its data folder is named as in a checkout, so that the client finds it from log.parent.
    log = tmp_path_factory.mktemp("local-stack") / "dev.log"
    with launch(log, data_dir=log.parent / ".taskstatus") as endpoints:
        yield LocalStack(
            api=endpoints.api,
            ws=endpoints.ws,
            emulator=endpoints.emulator,
            log=log,
            lambda_api=endpoints.lambda_api,
        )
