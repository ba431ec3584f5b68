"""Fair concurrency under the local stack with MAX_RUNNING_PER_OWNER=2: one owner's backlog
neither runs more than 2 at once nor holds another owner's task until it is done."""

import time

import pytest
import requests

from local.launcher import local_stack as launch
from tests.e2e.conftest import LocalStack

LIMIT = 2
BACKLOG = 20
TASK_SECONDS = 2.0
WORKERS = 4
# Measured against the backlog's own progress, not a clock (a busy machine slows both):
# without the limit the other owner's task is queued behind the whole backlog and runs only
# once every task of it has been taken, so at least BACKLOG - WORKERS have finished. With it,
# the backlog waits in its owner's slots, and the task runs while the first few finish.
FINISHED_AT_MOST = BACKLOG // 2


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory):
    log = tmp_path_factory.mktemp("fair-stack") / "dev.log"
    env = {"MAX_RUNNING_PER_OWNER": str(LIMIT), "WORKER_CONCURRENCY": str(WORKERS)}
    with launch(log, env=env) as endpoints:
        yield LocalStack(api=endpoints.api, ws=endpoints.ws, emulator=endpoints.emulator, log=log)


def statuses(stack: LocalStack, user: str) -> list[str]:
    jobs = requests.get(
        f"{stack.api}/jobs?limit=100", headers=stack.headers(user), timeout=10
    ).json()["jobs"]
    return [job["status"] for job in jobs]


def running_count(stack: LocalStack, user: str) -> int:
    return sum(status in {"started", "processing"} for status in statuses(stack, user))


def test_a_backlog_does_not_hold_another_owners_task_and_runs_two_at_a_time(limited_stack):
    job = {"type": "demo/sleep", "input": {"seconds": TASK_SECONDS, "steps": 1}}
    response = requests.post(
        f"{limited_stack.api}/jobs/batch",
        json={"jobs": [job] * BACKLOG},
        headers=limited_stack.headers("busy"),
        timeout=30,
    )
    assert [r["status"] for r in response.json()["results"]] == [202] * BACKLOG
    seen_running = [0]
    deadline = time.monotonic() + 60
    while not seen_running[-1]:  # the backlog is being worked on
        assert time.monotonic() < deadline, "the backlog never started"
        time.sleep(0.1)
        seen_running.append(running_count(limited_stack, "busy"))

    other = limited_stack.submit({"type": "demo/sleep", "input": {"seconds": 0}}, user="quiet")
    while limited_stack.get(other["jobId"], user="quiet")["status"] != "completed":
        assert time.monotonic() < deadline + 60, "the other owner's task never ran"
        seen_running.append(running_count(limited_stack, "busy"))
        time.sleep(0.1)
    finished = statuses(limited_stack, "busy").count("completed")
    assert finished <= FINISHED_AT_MOST, f"the other owner's task waited for {finished} tasks"
    assert max(seen_running) <= LIMIT
    # The backlog goes on, never more than LIMIT at once.
    for _ in range(20):
        seen_running.append(running_count(limited_stack, "busy"))
        time.sleep(0.2)
    assert max(seen_running) <= LIMIT and max(seen_running) >= 1
