"""Flow control's per-job and rate limits under `make dev`, with no owner limit: a concurrency
key's limit, a type's start rate (TYPE_RATE) and the submit rate (SUBMIT_RATE).

Each test uses its own owner (SUBMIT_RATE's buckets are per owner) and TYPE_RATE applies to
`demo/auto-vid` only, so the tests do not share a limit."""

import time
from datetime import datetime

import pytest
import requests

from local.launcher import local_stack as launch
from tests.e2e import HTTP_TIMEOUT
from tests.e2e.conftest import LocalStack

KEY_LIMIT = 2
RATE_TYPE = "demo/auto-vid"
TYPE_RATE_PER_MINUTE = 3  # a bucket of 3 starts, then one every 20 s
SUBMITS_PER_MINUTE = 6  # a bucket of 6 submits, then one every 10 s
TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}


@pytest.fixture(scope="module")
def limits_stack(tmp_path_factory):
    log = tmp_path_factory.mktemp("flow-limits-stack") / "dev.log"
    env = {
        "MAX_RUNNING_PER_OWNER": "0",
        "TYPE_RATE": f"{RATE_TYPE}={TYPE_RATE_PER_MINUTE}/min",
        "SUBMIT_RATE": f"{SUBMITS_PER_MINUTE}/min",
        "WORKER_CONCURRENCY": "4",
    }
    with launch(log, env=env) as endpoints:
        yield LocalStack(api=endpoints.api, ws=endpoints.ws, emulator=endpoints.emulator, log=log)


def wait_for(condition, what: str, seconds: float = 180) -> None:
    """Poll the condition (the event), with a generous deadline."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def submit_batch(stack: LocalStack, jobs: list[dict], user: str) -> list[str]:
    response = requests.post(
        f"{stack.api}/jobs/batch",
        json={"jobs": jobs},
        headers=stack.headers(user),
        timeout=HTTP_TIMEOUT,
    )
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202] * len(jobs), results
    return [r["job"]["jobId"] for r in results]


def history(stack: LocalStack, job_id: str, user: str) -> list[dict]:
    response = requests.get(
        f"{stack.api}/jobs/{job_id}/events", headers=stack.headers(user), timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.json()["events"]


def run_interval(stack: LocalStack, job_id: str, user: str) -> tuple[datetime, datetime]:
    """From the job's start to its end, as its history recorded them (the stream writes the
    history moments after the job's own write: wait for its end to be there)."""

    def ended() -> bool:
        return any(e["status"] in TERMINAL for e in history(stack, job_id, user))

    wait_for(ended, f"the end of job {job_id} in its history")
    events = history(stack, job_id, user)

    def at(event: dict) -> datetime:
        return datetime.fromisoformat(event["at"].replace("Z", "+00:00"))

    started = next(at(e) for e in events if e["status"] == "started")
    ended = next(at(e) for e in events if e["status"] in TERMINAL)
    return started, ended


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one moment (an end before a start at the same instant)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def all_finished(stack: LocalStack, job_ids: list[str], user: str) -> bool:
    return all(stack.get(job_id, user)["status"] in TERMINAL for job_id in job_ids)


def test_a_key_limit_of_2_runs_4_jobs_never_more_than_2_at_once_and_says_why_the_others_wait(
    limits_stack,
):
    user = "key-owner"
    job = {
        "type": "demo/sleep",
        "input": {"seconds": 3, "steps": 1},
        "concurrency": {"key": "customer-42", "limit": KEY_LIMIT},
    }
    jobs = submit_batch(limits_stack, [job] * 4, user)
    seen_waiting: set[str] = set()

    def two_wait_for_the_key() -> bool:
        for job_id in jobs:
            if limits_stack.get(job_id, user).get("waitingFor") == "key limit":
                seen_waiting.add(job_id)
        return len(seen_waiting) >= 2

    wait_for(two_wait_for_the_key, "two jobs whose document says they wait for the key limit")
    wait_for(lambda: all_finished(limits_stack, jobs, user), "the 4 jobs to finish")
    assert [limits_stack.get(j, user)["status"] for j in jobs] == ["completed"] * 4
    intervals = [run_interval(limits_stack, job_id, user) for job_id in jobs]
    assert most_at_once(intervals) == KEY_LIMIT
    for job_id in seen_waiting:  # the wait and its end are in the waiting jobs' history
        [first_version] = [e for e in history(limits_stack, job_id, user) if e["version"] == 1]
        flow = [(step["event"], step.get("reason")) for step in first_version["flow"]]
        assert flow == [("parked", "key limit"), ("admitted", None)]


def test_two_jobs_with_one_key_and_limit_1_never_run_at_once(limits_stack):
    user = "single-key-owner"
    job = {
        "type": "demo/sleep",
        "input": {"seconds": 2, "steps": 1},
        "concurrency": {"key": "invoice-sync", "limit": 1},
    }
    jobs = submit_batch(limits_stack, [job] * 2, user)
    wait_for(lambda: all_finished(limits_stack, jobs, user), "the 2 jobs to finish")
    assert [limits_stack.get(j, user)["status"] for j in jobs] == ["completed"] * 2
    first, second = sorted(run_interval(limits_stack, job_id, user) for job_id in jobs)
    assert first[1] <= second[0], f"the second started at {second[0]}, before {first[1]}"


def test_jobs_past_their_types_rate_wait_and_all_complete_none_failed(limits_stack):
    user = "rate-owner"
    spec = {"assets": {}, "timeline": [], "output": {"filename": "rate.mp4"}}
    count = TYPE_RATE_PER_MINUTE + 2
    jobs = submit_batch(limits_stack, [{"type": RATE_TYPE, "input": spec}] * count, user)
    waited: set[str] = set()

    def some_wait_for_the_rate() -> bool:
        for job_id in jobs:
            document = limits_stack.get(job_id, user)
            if document["waitingFor"] == "rate":
                assert document["status"] == "submitted" and document["attempt"] == 0
                waited.add(job_id)
        return bool(waited)

    wait_for(some_wait_for_the_rate, "a job whose document says it waits for the rate")
    wait_for(lambda: all_finished(limits_stack, jobs, user), "every job to finish", seconds=240)
    documents = [limits_stack.get(job_id, user) for job_id in jobs]
    assert [d["status"] for d in documents] == ["completed"] * count
    assert {d["attempt"] for d in documents} == {1}  # waiting never counted as an attempt
    assert all(d["waitingFor"] is None for d in documents)


def test_a_submit_past_the_rate_is_a_429_with_retry_after_and_passes_after_it(limits_stack):
    user = "submit-owner"
    job = {"type": "demo/sleep", "input": {"seconds": 0}}
    for _ in range(SUBMITS_PER_MINUTE):
        limits_stack.submit(job, user=user)
    refused = requests.post(
        f"{limits_stack.api}/jobs", json=job, headers=limits_stack.headers(user), timeout=30
    )
    assert refused.status_code == 429, refused.text
    assert refused.headers["RateLimit-Limit"] == str(SUBMITS_PER_MINUTE)
    assert refused.headers["RateLimit-Remaining"] == "0"
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 60 / SUBMITS_PER_MINUTE
    auto_vid = requests.post(
        f"{limits_stack.api}/submit", json=job, headers=limits_stack.headers(user), timeout=30
    )
    assert auto_vid.status_code == 429  # seed 002's submit takes from the same bucket
    assert set(auto_vid.json()) == {"error", "timestamp"}
    listed = requests.get(
        f"{limits_stack.api}/jobs?limit=100", headers=limits_stack.headers(user), timeout=30
    ).json()["jobs"]
    assert len(listed) == SUBMITS_PER_MINUTE  # nothing a 429 refused exists
    time.sleep(retry_after)  # what the 429 told the client to do: the behaviour under test
    assert limits_stack.submit(job, user=user)["status"] == "submitted"
