"""Remote workers against `make dev`: real `taskstatus worker` processes, with a processor
module outside the repository, work the `remote` pool over HTTP. A job that outlives a
Lambda worker's timeout-sized lease completes while it heartbeats; `kill -9` of its worker
hands it to the other after the lease; SIGTERM hands a running job back within seconds; a
cancel stops a running job within one heartbeat."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from local.launcher import local_stack as launch
from taskstatus_client.remote import PROGRESS_MIN_INTERVAL_SECONDS
from tests.conftest import token_for
from tests.e2e import HTTP_TIMEOUT
from tests.e2e.conftest import ROOT

LEASE_SECONDS = 4
DEADLINE_SECONDS = 90
TASKS = """
import time
from pathlib import Path

from taskstatus_client.worker import processor

HERE = Path(__file__).parent


@processor("e2e/steps")
def steps(task, ctx):
    for step in range(1, ctx.input["steps"] + 1):
        (HERE / f"{task['jobId']}.step").write_text(str(step))  # the step it begins
        time.sleep(ctx.input["pause"])
        ctx.progress(step, ctx.input["steps"], f"step {step}")
    return {"steps": ctx.input["steps"]}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict]:
    """A short lease: a takeover after `kill -9` comes within seconds."""
    yield from _stack(tmp_path_factory, {"WORKER_LEASE_SECONDS": str(LEASE_SECONDS)})


@pytest.fixture(scope="module")
def roomy_stack(tmp_path_factory) -> Iterator[dict]:
    """The default lease (120 s): on a busy machine a heartbeat may come seconds late, which
    a 4 s lease would take for a dead worker and hand the job to another (rightly, but
    then a job is claimed twice, which the test of many jobs counts as a fault)."""
    yield from _stack(tmp_path_factory, {})


def _stack(tmp_path_factory, env: dict[str, str]) -> Iterator[dict]:
    log = tmp_path_factory.mktemp("workers") / "dev.log"
    env = {**env, "WORKER_POOLS": "remote"}
    with launch(log, env=env) as endpoints:
        key = _service_key(endpoints.emulator)
        package = log.parent / "userpkg"
        package.mkdir()
        (package / "e2e_tasks.py").write_text(TASKS)
        yield {"api": endpoints.api, "key": key, "package": package, "log": log.parent}


def _service_key(emulator: str, owners: str = "alice") -> str:
    """`make service-key ... POOLS=remote`, against this stack's emulator."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": emulator,
        "NAME": "e2e-worker",
        "OWNERS": owners,
        "POOLS": "remote",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tools.service_key", "create"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def start_worker(stack: dict, name: str, grace: float = 30) -> subprocess.Popen:
    env = {
        **os.environ,
        "TASKSTATUS_URL": stack["api"],
        "TASKSTATUS_API_KEY": stack["key"],
        "PYTHONPATH": f"{stack['package']}{os.pathsep}{ROOT}",
    }
    out = open(stack["log"] / f"{name}.log", "w")  # noqa: SIM115 (the process holds it)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskstatus_client.cli",
            "worker",
            "--pool",
            "remote",
            "--processors",
            "e2e_tasks",
            "--concurrency",
            "2",
            "--grace-seconds",
            str(grace),
        ],
        cwd=stack["package"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for('alice')}"}


def submit(stack: dict, steps: int, pause: float) -> str:
    body = {"type": "e2e/steps", "input": {"steps": steps, "pause": pause}, "pool": "remote"}
    response = requests.post(
        f"{stack['api']}/jobs", json=body, headers=headers(), timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 202, response.text
    return response.json()["jobId"]


def job(stack: dict, job_id: str) -> dict:
    return requests.get(
        f"{stack['api']}/jobs/{job_id}", headers=headers(), timeout=HTTP_TIMEOUT
    ).json()


def events(stack: dict, job_id: str) -> list[dict]:
    url = f"{stack['api']}/jobs/{job_id}/events?limit=100"
    return requests.get(url, headers=headers(), timeout=HTTP_TIMEOUT).json()["events"]


def statuses_of(stack: dict, job_id: str) -> list[str | None]:
    """The statuses of the job's history, oldest first (written by the stream)."""
    return [e.get("status") for e in events(stack, job_id)]


def wait_for(condition: Callable[[], bool], deadline: float = DEADLINE_SECONDS) -> None:
    ends = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < ends, "the condition did not hold before the deadline"
        time.sleep(0.3)


def running_on(stack: dict, name: str, job_id: str) -> bool:
    """Whether worker `name` says it started the job (a claim a killed worker left
    long-polling in the server may take a job too, for nobody, until its lease ends)."""
    return f"claimed e2e/steps {job_id}" in (stack["log"] / f"{name}.log").read_text()


def stop(process: subprocess.Popen) -> None:
    """As Fargate stops a task: SIGTERM, then SIGKILL if it outstays (a worker killed while
    its claims long-poll would leave them taking jobs for nobody)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=HTTP_TIMEOUT)


def test_a_job_longer_than_its_lease_completes_on_a_remote_worker(stack):
    worker = start_worker(stack, "long")
    try:
        job_id = submit(stack, steps=4, pause=LEASE_SECONDS / 2)  # twice the lease in all
        wait_for(lambda: job(stack, job_id)["status"] == "completed")
        assert job(stack, job_id)["result"] == {"steps": 4}
    finally:
        stop(worker)


def test_kill_9_of_the_worker_lets_the_other_take_over_and_complete_once(stack):
    first = start_worker(stack, "first")
    second = None
    try:
        job_id = submit(stack, steps=6, pause=1)
        wait_for(lambda: running_on(stack, "first", job_id))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=HTTP_TIMEOUT)
        second = start_worker(stack, "second")
        # the history is written by the stream, moments after the job's own write
        wait_for(lambda: "completed" in statuses_of(stack, job_id))
        statuses = statuses_of(stack, job_id)
        assert statuses.count("completed") == 1
        assert statuses.count("started") >= 2  # the first attempt, and the takeover
    finally:
        stop(first)
        if second is not None:
            stop(second)


def handed_back(stack: dict, job_id: str) -> bool:
    """The job's own document says its worker handed it back (its history, written by the
    stream a moment later, is not what "back in its pool within seconds" is about)."""
    document = job(stack, job_id)
    return document["status"] == "retrying" and "handed back" in (document.get("error") or "")


def test_sigterm_hands_a_running_job_back_after_the_grace_not_at_its_end(stack):
    """A minute-long job is stopped by the worker's SIGTERM after its 1 s grace and handed
    back. Told by the events, not by a wall clock (a busy machine stretches every request):
    the job is back in its pool, and the worker's own line says it stopped it early."""
    worker = start_worker(stack, "term", grace=1)
    try:
        job_id = submit(stack, steps=60, pause=1)
        wait_for(lambda: running_on(stack, "term", job_id))
        worker.send_signal(signal.SIGTERM)
        wait_for(lambda: handed_back(stack, job_id))
        assert worker.wait(timeout=60) == 0  # after its claims in flight came back
        stopped = re.search(
            rf"^done e2e/steps {job_id} stopped \(the worker stopped\) (\d+\.\d) s$",
            (stack["log"] / "term.log").read_text(),
            re.MULTILINE,
        )
        assert stopped is not None
        assert float(stopped.group(1)) < 30  # its run, by the worker's clock: not the minute
    finally:
        stop(worker)


def said(stack: dict, name: str, line: str) -> bool:
    return line in (stack["log"] / f"{name}.log").read_text()


def test_a_cancel_stops_a_running_remote_job_at_its_next_report(stack):
    """Told by the steps, not by a wall clock (a busy machine stretches every request): the
    worker's first report after the cancel is refused, or its heartbeat learns of it first,
    and the job stops there. A step takes at least its pause (0.1 s) and a report goes at
    most once a second, so a job stopped at its next report begins at most 11 steps past the
    last report the service took. (A job that reports nothing is stopped at its heartbeat:
    test_remote_worker.py, in-process.)"""
    worker = start_worker(stack, "cancel")
    try:
        pause = 0.1
        job_id = submit(stack, steps=600, pause=pause)  # a minute, a ctx.progress every step
        wait_for(lambda: job(stack, job_id)["status"] == "processing")
        url = f"{stack['api']}/jobs/{job_id}"
        answer = requests.delete(url, headers=headers(), timeout=HTTP_TIMEOUT)
        assert answer.status_code in (200, 202), answer.text
        taken = job(stack, job_id)["progress"]["current"]  # no report is taken after a cancel
        wait_for(lambda: said(stack, "cancel", f"done e2e/steps {job_id} stopped (cancelled)"))
        last_begun = int((stack["package"] / f"{job_id}.step").read_text())
        assert last_begun <= taken + round(PROGRESS_MIN_INTERVAL_SECONDS / pause) + 1
        final = job(stack, job_id)
        assert (final["status"], final["result"]) == ("cancelled", None)
    finally:
        stop(worker)


def worker_lines(stack: dict, names: list[str], word: str) -> list[str]:
    """Each `<word> e2e/steps <id>` line of these workers' logs: the ids, repeats kept."""
    found = []
    for name in names:
        for line in (stack["log"] / f"{name}.log").read_text().splitlines():
            parts = line.split()
            if word in parts and parts.index(word) + 2 < len(parts):
                at = parts.index(word)
                if parts[at + 1] == "e2e/steps":
                    found.append(parts[at + 2])
    return found


def submit_batch(stack: dict, count: int) -> list[str]:
    one = {"type": "e2e/steps", "input": {"steps": 1, "pause": 0}, "pool": "remote"}
    response = requests.post(
        f"{stack['api']}/jobs/batch",
        json={"jobs": [one] * count},
        headers=headers(),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 207, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202] * count, results
    return [r["job"]["jobId"] for r in results]


def test_two_hundred_jobs_over_four_worker_threads_each_complete_exactly_once(roomy_stack):
    stack = roomy_stack
    names = ["many-a", "many-b"]  # two processes of two threads each
    workers = [start_worker(stack, name) for name in names]
    try:
        ids = submit_batch(stack, 100) + submit_batch(stack, 100)
        wanted = set(ids)
        wait_for(
            lambda: wanted <= set(worker_lines(stack, names, "done")), deadline=DEADLINE_SECONDS * 6
        )
    finally:
        for worker in workers:
            stop(worker)
    claimed = [job_id for job_id in worker_lines(stack, names, "claimed") if job_id in wanted]
    assert sorted(claimed) == sorted(ids)  # each claimed once, none twice
    for job_id in ids:
        wait_for(lambda job_id=job_id: "completed" in statuses_of(stack, job_id))
        statuses = statuses_of(stack, job_id)
        assert statuses.count("completed") == 1 and statuses.count("started") == 1, statuses
