"""The hardening, replayed against `make dev` over real HTTP."""

from __future__ import annotations

import json
import time

import requests

from tests.e2e import HTTP_TIMEOUT
from tests.receiver import Receiver


def test_the_largest_job_with_a_webhook_does_not_delay_another_users_job(local_stack):
    hook = Receiver([200])
    try:
        job = {
            "type": "demo/sleep",
            "input": {"seconds": 0},
            "metadata": {"notes": "ü" * 110_000},  # near the 256 KB body limit in UTF-8
            "webhook": {"url": hook.url},
        }
        body = json.dumps(job, ensure_ascii=False).encode()
        big = requests.post(
            f"{local_stack.api}/jobs",
            data=body,
            headers=local_stack.headers("mallory"),
            timeout=HTTP_TIMEOUT,
        )
        assert big.status_code == 202, big.text
        started = time.monotonic()
        small = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 0}}, user="bob")
        final = local_stack.wait_until_finished(small["jobId"], timeout=15, user="bob")[-1]
        assert final["status"] == "completed"
        assert time.monotonic() - started < 10
        assert hook.arrived.wait(10)
        delivered = json.loads(hook.deliveries[0].body)
        assert delivered["jobId"] == big.json()["jobId"]
        assert delivered["metadata"]["notes"] == "ü" * 110_000
    finally:
        hook.close()
