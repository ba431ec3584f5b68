"""Fair concurrency under the local stack with MAX_RUNNING_PER_OWNER=2: one owner's backlog
neither runs more than 2 at once nor holds another owner's task until it is done."""

import time

import pytest
import requests

from local.launcher import local_stack as launch
from tests.e2e import HTTP_TIMEOUT
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
# One owner's delayed runs, all due at once: each run's message passes the workers once, then
# the run waits in the table. The other owner's task is measured against that owner's
# progress, as above: it ran once 2 of the 200 had finished. When the runs' messages were
# deferred instead, they kept coming back through the workers ahead of it: 40 had finished
# (on a quieter run, over 120 s).
DELAYED_RUNS = 200


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory):
    log = tmp_path_factory.mktemp("fair-stack") / "dev.log"
    env = {"MAX_RUNNING_PER_OWNER": str(LIMIT), "WORKER_CONCURRENCY": str(WORKERS)}
    with launch(log, env=env) as endpoints:
        yield LocalStack(api=endpoints.api, ws=endpoints.ws, emulator=endpoints.emulator, log=log)


def statuses(stack: LocalStack, user: str) -> list[str]:
    jobs = requests.get(
        f"{stack.api}/jobs?limit=100", headers=stack.headers(user), timeout=HTTP_TIMEOUT
    ).json()["jobs"]
    return [job["status"] for job in jobs]


def count_in(stack: LocalStack, user: str, *wanted: str) -> int:
    """All the owner's jobs in the `wanted` statuses, page after page."""
    return sum(_count_in(stack, user, status) for status in wanted)


def _count_in(stack: LocalStack, user: str, status: str) -> int:
    count, cursor = 0, None
    while True:
        params = {"status": status, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = requests.get(
            f"{stack.api}/jobs", params=params, headers=stack.headers(user), timeout=HTTP_TIMEOUT
        ).json()
        count += len(page["jobs"])
        cursor = page.get("nextCursor")
        if not cursor:
            return count


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


def test_an_owners_delayed_runs_coming_due_together_do_not_hold_another_owners_task(
    limited_stack,
):
    """The attack: delayed runs, all due at once, to get around the limit through the queue."""
    job = {"type": "demo/sleep", "input": {"seconds": 1, "steps": 1}, "delaySeconds": 3}
    for _ in range(DELAYED_RUNS // 100):
        response = requests.post(
            f"{limited_stack.api}/jobs/batch",
            json={"jobs": [job] * 100},
            headers=limited_stack.headers("scheduler"),
            timeout=60,
        )
        assert [r["status"] for r in response.json()["results"]] == [202] * 100
    deadline = time.monotonic() + 120
    while not count_in(limited_stack, "scheduler", "started", "processing", "completed"):
        assert time.monotonic() < deadline, "the delayed runs never started"
        time.sleep(0.2)

    other = limited_stack.submit({"type": "demo/sleep", "input": {"seconds": 0}}, user="patient")
    while limited_stack.get(other["jobId"], user="patient")["status"] != "completed":
        assert time.monotonic() < deadline + 300, "the other owner's task never ran"
        time.sleep(0.2)
    finished = count_in(limited_stack, "scheduler", "completed")
    assert finished <= DELAYED_RUNS // 10, f"the other owner's task waited for {finished} runs"
