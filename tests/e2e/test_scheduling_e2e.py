"""Delayed runs under the local stack: scheduled, listed, started on time, or cancelled."""

import io
import json
from datetime import datetime, timedelta

import requests

from taskstatus_client.cli import main
from tests.conftest import token_for
from tests.e2e import HTTP_TIMEOUT

DELAY = 4
# A short delay is a delayed SQS message: the task starts seconds after its time (more on a
# busy machine), where the sweep, the only other way in, would start it 120 s late.
PRECISION = timedelta(seconds=30)


def cli(local_stack, *args, user="ida"):
    out = io.StringIO()
    base = ["--url", local_stack.api, "--token", token_for(user), "--ws-url", local_stack.ws]
    code = main([*base, *args], out)
    return code, out.getvalue()


def started_at(job: dict) -> datetime:
    completed = datetime.fromisoformat(job["completedAt"])
    return completed - timedelta(seconds=job["processingTime"] or 0)


def test_a_delayed_job_is_scheduled_then_starts_within_seconds_of_its_time(local_stack):
    code, output = cli(
        local_stack, "--json", "submit", "demo/sleep", "--input", '{"seconds": 0}',
        "--delay", str(DELAY),
    )  # fmt: skip
    assert code == 0, output
    job = json.loads(output)
    assert job["status"] == "scheduled"
    run_at = datetime.fromisoformat(job["runAt"])
    code, listed = cli(local_stack, "--json", "list", "--status", "scheduled")
    assert job["jobId"] in [json.loads(line)["jobId"] for line in listed.splitlines()]

    final = local_stack.wait_until_finished(job["jobId"], timeout=DELAY + 60, user="ida")[-1]
    assert final["status"] == "completed"
    # completedAt is shown in whole seconds: the start is known to within one.
    assert run_at - timedelta(seconds=1) <= started_at(final) <= run_at + PRECISION


def test_a_scheduled_job_cancelled_before_its_time_never_runs(local_stack):
    job = local_stack.submit({"type": "demo/sleep", "delaySeconds": 2}, user="ida")
    headers = local_stack.headers("ida")
    url = f"{local_stack.api}/jobs/{job['jobId']}"
    cancelled = requests.delete(url, headers=headers, timeout=HTTP_TIMEOUT)
    assert cancelled.json()["status"] == "cancelled"
    local_stack.wait_for_log(f"nothing to run: task {job['jobId']}")  # its delayed message
    after = local_stack.get(job["jobId"], user="ida")
    assert after["status"] == "cancelled"
    assert after["updatedAt"] == cancelled.json()["updatedAt"]


def test_another_user_does_not_see_a_scheduled_job(local_stack):
    job = local_stack.submit({"type": "demo/sleep", "delaySeconds": 600}, user="ida")
    other = requests.get(
        f"{local_stack.api}/jobs?status=scheduled",
        headers=local_stack.headers("jon"),
        timeout=HTTP_TIMEOUT,
    )
    assert job["jobId"] not in [j["jobId"] for j in other.json()["jobs"]]
    response = requests.get(
        f"{local_stack.api}/jobs/{job['jobId']}",
        headers=local_stack.headers("jon"),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 404
