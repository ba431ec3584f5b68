"""Fair concurrency under the local stack with MAX_RUNNING_PER_OWNER=2: one owner's backlog
neither runs more than 2 at once nor holds another owner's task for more than a few seconds."""

import time

import pytest
import requests

from local.launcher import local_stack as launch
from tests.e2e.conftest import LocalStack

LIMIT = 2
BACKLOG = 20
TASK_SECONDS = 2.0
# Without the limit the other owner's task waits for the backlog: 40 s of work over 4
# workers, 10 s. With it, for one pass of the workers over the backlog's messages.
FAIR_WAIT_SECONDS = 6.0


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory):
    log = tmp_path_factory.mktemp("fair-stack") / "dev.log"
    env = {"MAX_RUNNING_PER_OWNER": str(LIMIT), "WORKER_CONCURRENCY": "4"}
    with launch(log, env=env) as endpoints:
        yield LocalStack(api=endpoints.api, ws=endpoints.ws, emulator=endpoints.emulator, log=log)


def running_count(stack: LocalStack, user: str) -> int:
    jobs = requests.get(
        f"{stack.api}/jobs?limit=100", headers=stack.headers(user), timeout=10
    ).json()["jobs"]
    return sum(job["status"] in {"started", "processing"} for job in jobs)


def test_a_backlog_does_not_hold_another_owners_task_and_runs_two_at_a_time(limited_stack):
    job = {"type": "demo/sleep", "input": {"seconds": TASK_SECONDS, "steps": 1}}
    response = requests.post(
        f"{limited_stack.api}/jobs/batch",
        json={"jobs": [job] * BACKLOG},
        headers=limited_stack.headers("busy"),
        timeout=30,
    )
    assert [r["status"] for r in response.json()["results"]] == [202] * BACKLOG
    time.sleep(1)  # the backlog is queued and being worked on

    start = time.monotonic()
    other = limited_stack.submit({"type": "demo/sleep", "input": {"seconds": 0}}, user="quiet")
    seen_running = []
    while True:
        seen_running.append(running_count(limited_stack, "busy"))
        if limited_stack.get(other["jobId"], user="quiet")["status"] == "completed":
            break
        assert time.monotonic() - start < FAIR_WAIT_SECONDS, "the other owner's task waited"
        time.sleep(0.1)
    assert max(seen_running) <= LIMIT
    # The backlog goes on, never more than LIMIT at once.
    for _ in range(20):
        seen_running.append(running_count(limited_stack, "busy"))
        time.sleep(0.2)
    assert max(seen_running) <= LIMIT and max(seen_running) >= 1
