"""The remote worker (`taskstatus worker`) against the app in-process: its own HTTP code runs
through the app (tests/app_transport.py), the processors come from a module outside the
repository."""

import io
import re
import sys
import threading
import time
import uuid

import pytest
import requests

from chalicelib.edge.service_keys import ServiceKeys
from chalicelib.model import utcnow
from taskstatus_client import Reporter
from taskstatus_client.remote import RemoteWorker
from taskstatus_client.worker import load_processors
from tests.app_transport import APP_LOCK, APP_URL, AppTransport
from tests.conftest import auth
from tests.unit.helpers import get, submit

TASKS = """
import threading

from taskstatus_client.worker import PermanentError, processor

GATE = threading.Event()  # a test opens it to let `acme/wait` finish


@processor("acme/count")
def count(task, ctx):
    for i in range(1, ctx.input["upto"] + 1):
        ctx.progress(i, ctx.input["upto"], f"counted {i}")
    return {"counted": ctx.input["upto"]}


@processor("acme/refuse")
def refuse(task, ctx):
    raise PermanentError("never")


RUNS: dict[str, int] = {}  # job id -> times `acme/once` ran it
RUNS_LOCK = threading.Lock()


@processor("acme/once")
def once(task, ctx):
    with RUNS_LOCK:
        RUNS[task["jobId"]] = RUNS.get(task["jobId"], 0) + 1
    return {"ran": True}


@processor("acme/wait")
def wait(task, ctx):
    while not GATE.wait(0.05):
        ctx.progress(0, 1, "waiting")
    return {"waited": True}
"""


@pytest.fixture
def tasks_module(tmp_path, monkeypatch):
    name = f"remote_tasks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def make_worker(client, stack, tasks_module):
    reporter = Reporter(
        APP_URL,
        api_key=service_key_secret(stack),
        transport=AppTransport(client),
        sleep=lambda s: None,
    )

    def make(**options):
        options = {"concurrency": 2, "claim_wait": 0, **options}
        return RemoteWorker(reporter, "remote", load_processors([tasks_module]), **options)

    return make


def pool_job(client, stack, type, input):
    response = submit(client, {"type": type, "input": input, "pool": "remote"})
    assert response.status_code == 202, response.json_body
    stack.settle()
    return response.json_body["jobId"]


def run_until(worker, condition, deadline=30.0):
    ends = time.monotonic() + deadline
    worker.run(until=lambda: condition() or time.monotonic() > ends)


def status(client, job_id):
    with APP_LOCK:  # the worker's threads may be in the app now
        return get(client, f"/jobs/{job_id}").json_body["status"]


def test_a_remote_worker_runs_pool_jobs_with_the_users_processors(client, stack, make_worker):
    ids = [pool_job(client, stack, "acme/count", {"upto": n}) for n in (1, 2, 3)]
    worker = make_worker()
    run_until(worker, lambda: worker.completed == 3)
    for n, job_id in zip((1, 2, 3), ids, strict=True):
        job = get(client, f"/jobs/{job_id}").json_body
        assert job["status"] == "completed", job
        assert job["result"] == {"counted": n}


def test_a_permanent_error_on_a_remote_worker_fails_the_job(client, stack, make_worker):
    job_id = pool_job(client, stack, "acme/refuse", {})
    worker = make_worker()
    run_until(worker, lambda: status(client, job_id) == "failed")
    assert get(client, f"/jobs/{job_id}").json_body["error"] == "never"


def test_stopping_hands_running_jobs_back_after_the_grace(client, stack, make_worker, tasks_module):
    job_id = pool_job(client, stack, "acme/wait", {})
    worker = make_worker(grace_seconds=0.2)
    run_until(worker, lambda: job_id in worker.running)  # stop() as SIGTERM does, mid-job
    assert status(client, job_id) == "retrying"
    assert "handed back" in get(client, f"/jobs/{job_id}").json_body["error"]
    sys.modules[tasks_module].GATE.set()
    again = make_worker()
    run_until(again, lambda: again.completed == 1)
    assert status(client, job_id) == "completed"


def test_a_job_that_finishes_within_the_grace_completes(client, stack, make_worker, tasks_module):
    job_id = pool_job(client, stack, "acme/wait", {})
    worker = make_worker(grace_seconds=10)
    opener = threading.Timer(0.5, sys.modules[tasks_module].GATE.set)
    opener.start()
    run_until(worker, lambda: job_id in worker.running)
    assert status(client, job_id) == "completed"


def test_a_cancel_stops_a_running_remote_job_at_its_next_report(
    client, stack, make_worker, tasks_module
):
    job_id = pool_job(client, stack, "acme/wait", {})
    worker = make_worker()
    cancelled = []

    def cancel_once_running() -> bool:
        if job_id in worker.running and not cancelled:
            with APP_LOCK:
                cancelled.append(client.http.delete(f"/jobs/{job_id}", headers=auth("alice")))
        return bool(cancelled) and job_id not in worker.running

    run_until(worker, cancel_once_running)
    assert status(client, job_id) == "cancelled"
    assert worker.completed == 0


def test_the_worker_prints_a_live_line_per_job_claimed_progress_running_and_done(
    client, stack, make_worker, tasks_module
):
    job_id = pool_job(client, stack, "acme/wait", {})
    out = io.StringIO()
    worker = make_worker(out=out, status_every=0.2)
    gate = sys.modules[tasks_module].GATE

    def done_after_a_running_line() -> bool:
        if f"running acme/wait {job_id} 0/1 waiting" in out.getvalue():
            gate.set()
        return worker.completed == 1 and job_id not in worker.running

    run_until(worker, done_after_a_running_line)
    lines = out.getvalue().splitlines()

    def said(word: str) -> list[str]:
        return [line for line in lines if line.startswith(f"{word} acme/wait {job_id} ")]

    assert lines[0] == f"claimed acme/wait {job_id} (attempt 1)"
    assert said("progress")[0].startswith(f"progress acme/wait {job_id} 0/1 waiting ")
    assert any(line.startswith(f"running acme/wait {job_id} 0/1 waiting ") for line in lines)
    [done] = said("done")
    assert re.fullmatch(rf"done acme/wait {job_id} completed \d+\.\d s", done)


class Writes(io.StringIO):
    """An output that keeps each write() as it came: a line written in two calls (its text,
    then its newline, as print() does) can have another thread's line between them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def test_the_workers_threads_each_write_whole_lines_so_none_run_together(
    client, stack, make_worker
):
    ids = [pool_job(client, stack, "acme/once", {}) for _ in range(12)]
    out = Writes()
    worker = make_worker(concurrency=4, out=out)
    run_until(worker, lambda: worker.completed == 12)
    assert all(call.endswith("\n") and call.count("\n") == 1 for call in out.calls), out.calls
    done = [line.split()[2] for line in out.getvalue().splitlines() if line.startswith("done ")]
    assert sorted(done) == sorted(ids)


def test_two_hundred_jobs_over_four_worker_threads_each_run_and_complete_exactly_once(
    client, stack, service, make_worker, tasks_module
):
    ids = []
    for _ in range(200):
        response = submit(client, {"type": "acme/once", "input": {}, "pool": "remote"})
        assert response.status_code == 202, response.json_body
        ids.append(response.json_body["jobId"])
    stack.settle()
    worker = make_worker(concurrency=4)
    run_until(worker, lambda: worker.completed == 200, deadline=600)
    runs = sys.modules[tasks_module].RUNS
    assert runs == dict.fromkeys(ids, 1)
    for job_id in ids:
        task = service.find(job_id)
        assert (task.status.value, task.attempts) == ("completed", 1), job_id
    counts = stack.sqs.get_queue_attributes(
        QueueUrl=stack.outputs["RemotePoolQueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert set(counts.values()) == {"0"}  # every ending deleted its message


class ClaimAnswersLost(AppTransport):
    """The app handles each claim, and the answers of the first `losses` of them are lost (a
    read timeout, a dropped connection, API Gateway's 504; past the reporter's retries, a
    loaded service's 503): the worker sees an error and sends the claim again. `lost` holds
    the headers of each claim whose answer was lost."""

    def __init__(self, client, losses: int = 1) -> None:
        super().__init__(client)
        self.losses = losses
        self.lost: list[dict[str, str]] = []

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        if "/claim" in request.url and response.status_code == 200 and self.losses > 0:
            self.losses -= 1
            self.lost.append(dict(request.headers))
            raise requests.ConnectionError("the answer was lost on its way back")
        return response


def service_key_secret(stack) -> str:
    """A service key for alice's jobs in the remote pool, as `make service-key` issues."""
    return ServiceKeys(stack.outputs["RecordsTableName"]).create(
        "remote", ["alice"], ["jobs:report"], utcnow(), pools=("remote",)
    )[1]


def test_a_claim_whose_answer_was_lost_runs_the_job_it_took_as_its_first_attempt(
    client, stack, service, tasks_module
):
    transport = ClaimAnswersLost(client)
    reporter = Reporter(
        APP_URL, api_key=service_key_secret(stack), transport=transport, sleep=lambda s: None
    )
    worker = RemoteWorker(reporter, "remote", load_processors([tasks_module]), claim_wait=0)
    job_id = pool_job(client, stack, "acme/once", {})
    run_until(worker, lambda: worker.completed == 1)
    assert transport.lost[0]["Idempotency-Key"].startswith("claim-")
    runs = sys.modules[tasks_module].RUNS
    assert runs == {job_id: 1}
    task = service.find(job_id)
    assert (task.status.value, task.attempts) == ("completed", 1)


def test_a_claim_that_failed_for_good_is_sent_again_under_its_key_and_runs_the_job_it_took(
    client, stack, service, tasks_module
):
    transport = ClaimAnswersLost(client, losses=3)  # the first try and 2 retries
    reporter = Reporter(
        APP_URL,
        api_key=service_key_secret(stack),
        transport=transport,
        sleep=lambda s: None,
        max_retries=2,
    )
    worker = RemoteWorker(
        reporter, "remote", load_processors([tasks_module]), claim_wait=0, concurrency=1
    )
    job_id = pool_job(client, stack, "acme/once", {})
    run_until(worker, lambda: worker.completed == 1)
    keys = {headers["Idempotency-Key"] for headers in transport.lost}
    assert len(keys) == 1  # the loop's second claim kept the first one's key
    runs = sys.modules[tasks_module].RUNS
    assert runs == {job_id: 1}
    task = service.find(job_id)
    assert (task.status.value, task.attempts) == ("completed", 1)
