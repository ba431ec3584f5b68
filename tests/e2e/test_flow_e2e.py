"""Flow control under `make dev` with TYPE_CONCURRENCY=demo/*=2 (no owner limit): the limit
holds under 30 submits from three owners, and a high priority job submitted behind 50
waiting low ones starts next."""

import time

import pytest
import requests

from local.launcher import local_stack as launch
from tests.e2e.conftest import LocalStack

LIMIT = 2
WORKERS = 4


@pytest.fixture(scope="module")
def flow_stack(tmp_path_factory):
    log = tmp_path_factory.mktemp("flow-stack") / "dev.log"
    env = {
        "MAX_RUNNING_PER_OWNER": "0",
        "TYPE_CONCURRENCY": f"demo/*={LIMIT}",
        "WORKER_CONCURRENCY": str(WORKERS),
    }
    with launch(log, env=env) as endpoints:
        yield LocalStack(api=endpoints.api, ws=endpoints.ws, emulator=endpoints.emulator, log=log)


def batch(stack: LocalStack, jobs: list[dict], user: str) -> list[str]:
    response = requests.post(
        f"{stack.api}/jobs/batch", json={"jobs": jobs}, headers=stack.headers(user), timeout=60
    )
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202] * len(jobs)
    return [r["job"]["jobId"] for r in results]


def jobs_of(stack: LocalStack, user: str) -> list[dict]:
    found, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = requests.get(
            f"{stack.api}/jobs", params=params, headers=stack.headers(user), timeout=10
        ).json()
        found += page["jobs"]
        cursor = page.get("nextCursor")
        if not cursor:
            return found


def running(stack: LocalStack, users: list[str]) -> int:
    return sum(
        job["status"] in {"started", "processing"} for user in users for job in jobs_of(stack, user)
    )


def wait_for(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_type_limit_of_2_holds_under_30_submits(flow_stack):
    users = ["t-a", "t-b", "t-c"]
    job = {"type": "demo/sleep", "input": {"seconds": 0.5, "steps": 1}}
    for user in users:
        batch(flow_stack, [job] * 10, user)
    seen = [0]

    def all_done() -> bool:
        seen.append(running(flow_stack, users))
        return all(j["status"] == "completed" for user in users for j in jobs_of(flow_stack, user))

    wait_for(all_done, "the 30 jobs to complete", seconds=240)
    assert max(seen) <= LIMIT
    assert max(seen) >= 1


def test_a_high_priority_job_submitted_behind_50_waiting_low_ones_starts_next(flow_stack):
    user = "p-a"
    # Long enough for the 50 to be parked and the high one submitted while they hold the slots.
    holding = {"type": "demo/sleep", "input": {"seconds": 15, "steps": 1}}
    [first, _] = batch(flow_stack, [holding] * LIMIT, user)
    wait_for(lambda: flow_stack.get(first, user)["status"] != "submitted", "the slots taken")
    low = batch(
        flow_stack, [{"type": "demo/sleep", "input": {"seconds": 0}, "priority": 1}] * 50, user
    )
    # The event, not a clock: the last low job is parked (its document says why it waits).
    wait_for(
        lambda: flow_stack.get(low[-1], user).get("waitingFor") == "type limit", "the low parked"
    )
    high = flow_stack.submit(
        {"type": "demo/sleep", "input": {"seconds": 0}, "priority": 9}, user=user
    )["jobId"]
    assert flow_stack.get(high, user)["status"] == "submitted"  # both slots still held
    wait_for(
        lambda: all(flow_stack.get(j, user)["status"] == "completed" for j in [high, *low]),
        "every job (the low ones still start)",
        seconds=240,
    )
    high_at = admitted_at(flow_stack, high, user)
    earlier = [j for j in low if admitted_at(flow_stack, j, user) < high_at]
    assert earlier == [], f"{len(earlier)} low priority jobs were admitted before the high one"


def admitted_at(stack: LocalStack, job_id: str, user: str) -> str:
    """When flow control queued the parked job: its history's one admission (the stream and
    the reaper may both admit it at once; the history holds it once)."""
    events = requests.get(
        f"{stack.api}/jobs/{job_id}/events", headers=stack.headers(user), timeout=60
    ).json()["events"]
    admissions = [
        step["at"] for e in events for step in e.get("flow", []) if step["event"] == "admitted"
    ]
    assert len(admissions) == 1, f"job {job_id} has admissions {admissions} in its history"
    return admissions[0]
