"""Producers against `make dev`: a producer process (the SDK) runs a tracked job while a
WebSocket subscriber and a webhook receiver watch; then a producer that goes silent is
failed by the reaper."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
import requests
from standardwebhooks import Webhook

from local.launcher import local_stack as launch
from tests.conftest import token_for
from tests.e2e import HTTP_TIMEOUT
from tests.e2e.conftest import ROOT, LocalStack
from tests.receiver import Receiver

# The producer: the SDK's tracked block, three steps apart by more than a heartbeat interval
# (a 5 s window heartbeats every 5/3 s), so heartbeats run between its reports.
PRODUCER = """
import sys, time
from taskstatus_client import Reporter

job_id, webhook = sys.argv[1], sys.argv[2]
with Reporter().track("daily_sales", job_id=job_id, heartbeat_seconds=5, webhook=webhook) as task:
    for step in range(1, 4):
        time.sleep(2)
        task.progress(step, 3, f"store {step}")
    task.complete(result={"stores": 3})
"""
TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
DEADLINE_SECONDS = 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    log = tmp_path_factory.mktemp("producers") / "dev.log"
    # The reaper once a second: a silent producer's 5 s window is noticed within seconds.
    with launch(log, env={"REAPER_INTERVAL_SECONDS": "1"}) as endpoints:
        yield LocalStack(
            api=endpoints.api, ws=endpoints.ws, emulator=endpoints.emulator, log=endpoints.log
        )


def pushes_until_done(ws, job_id: str) -> list[dict]:
    """The job's pushes, in order, until its terminal one."""
    seen: list[dict] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not seen or seen[-1]["status"] not in TERMINAL:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        payload = message.get("payload") or {}
        if message.get("type") == "task_status" and payload.get("task_id") == job_id:
            seen.append(payload)
    return seen


def test_a_tracked_job_is_seen_live_signed_and_in_its_history(stack):
    job_id = f"local-{uuid.uuid4()}"
    receiver = Receiver([200])
    env = {"TASKSTATUS_URL": stack.api, "TASKSTATUS_TOKEN": token_for("alice")}
    try:
        with stack.websocket() as ws:
            producer = subprocess.run(
                [sys.executable, "-c", PRODUCER, job_id, receiver.url],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=DEADLINE_SECONDS,
            )
            assert producer.returncode == 0, producer.stderr.decode()[-2000:]
            pushes = pushes_until_done(ws, job_id)
        versions = [p["version"] for p in pushes]
        assert versions == sorted(set(versions)), "each version once, in order"
        # 004's pushes carry the result as that origin standardised it: {success, message, ...}
        assert (pushes[-1]["status"], pushes[-1]["result"]["stores"]) == ("completed", 3)
        assert receiver.arrived.wait(DEADLINE_SECONDS)
        secret = requests.get(
            f"{stack.api}/webhooks/secret", headers=stack.headers(), timeout=HTTP_TIMEOUT
        ).json()["secret"]
        delivery = receiver.deliveries[0]
        signed = Webhook(secret).verify(delivery.body, delivery.headers)
        assert (signed["jobId"], signed["status"], signed["result"]) == (
            job_id,
            "completed",
            {"stores": 3},
        )
        events = requests.get(
            f"{stack.api}/jobs/{job_id}/events", headers=stack.headers(), timeout=HTTP_TIMEOUT
        ).json()["events"]
        assert [(e["status"], e["by"]) for e in events] == [
            ("submitted", "api"),
            ("started", "producer"),
            ("processing", "producer"),
            ("processing", "producer"),
            ("processing", "producer"),
            ("completed", "producer"),
        ]
        assert [e["version"] for e in events] == list(range(1, 7))  # heartbeats made none
    finally:
        receiver.close()


def test_a_producer_that_goes_silent_is_failed_by_the_reaper(stack):
    from taskstatus_client import Reporter

    reporter = Reporter(stack.api, token=token_for("alice"))
    job = reporter.create("daily_sales", heartbeat_seconds=5)
    reporter.report(job["jobId"], "started")
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (current := stack.get(job["jobId"]))["status"] not in TERMINAL:
        assert time.monotonic() < deadline, f"still {current['status']}"
        time.sleep(0.2)
    assert current["status"] == "failed"
    assert "no report or heartbeat from its producer for 5 s" in current["error"]
