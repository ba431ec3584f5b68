"""The first hour: the client and CLI find the running stack by themselves, on any ports."""

import io
import json
import os
import signal
import socket
import time

import pytest

from local.launcher import local_stack as launch
from taskstatus_client import TaskStatusClient
from taskstatus_client.cli import main
from taskstatus_client.models import JobDocument
from tests.e2e.conftest import LocalStack


@pytest.fixture
def in_checkout(local_stack, monkeypatch):
    """Working in the stack's checkout, with no TASKSTATUS_* variables set."""
    for name in ("TASKSTATUS_URL", "TASKSTATUS_TOKEN", "TASKSTATUS_WS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(local_stack.log.parent)
    return local_stack


def test_the_client_finds_the_stack_and_waits_over_its_websocket(in_checkout, monkeypatch):
    client = TaskStatusClient()
    assert (client.url, client.ws_url) == (in_checkout.api, in_checkout.ws)

    def no_polling(*args):
        raise AssertionError("polled instead of using the WebSocket")

    monkeypatch.setattr(client, "_wait_polling", no_polling)
    job = client.submit("demo/sleep", {"seconds": 0.5, "steps": 2})
    assert client.wait(job.jobId, timeout=20).status.value == "completed"


def test_cli_watch_json_prints_job_documents_with_the_subcommands_flag(in_checkout):
    out = io.StringIO()
    code = main(
        ["submit", "demo/sleep", "--input", '{"seconds": 0.5, "steps": 2}', "--watch", "--json"],
        out,
    )
    assert code == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) >= 2
    for line in lines:
        JobDocument.model_validate(line)
    assert lines[-1]["status"] == "completed"


# -- restarts with kept state: parked, interrupted and new work ---------------------------------

RUNNING = {"started", "processing"}
FINISHED = {"completed", "completed_with_errors", "failed", "cancelled"}


def stack_of(endpoints) -> LocalStack:
    return LocalStack(
        api=endpoints.api, ws=endpoints.ws, emulator=endpoints.emulator, log=endpoints.log
    )


def wait_for(stack: LocalStack, job_ids: list[str], wanted: set[str], timeout: float) -> float:
    """Seconds until every job is in `wanted` (polled); fails with their states at the deadline."""
    start = time.monotonic()
    while True:
        states = {job_id: stack.get(job_id)["status"] for job_id in job_ids}
        if set(states.values()) <= wanted:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"not all {wanted} in {timeout} s: {states}"
        time.sleep(0.2)


def wait_until_parked(stack: LocalStack, job_ids: list[str], timeout: float) -> None:
    """Until every job's document says it waits for its owner's limit (the stream parked it)."""
    start = time.monotonic()
    while True:
        waiting = {job_id: stack.get(job_id).get("waitingFor") for job_id in job_ids}
        if set(waiting.values()) == {"owner limit"}:
            return
        assert time.monotonic() - start < timeout, f"not all parked in {timeout} s: {waiting}"
        time.sleep(0.2)


def crash(endpoints) -> None:
    """`make dev` killed with no chance to stop in order (a closed terminal, kill -9); its
    emulator notices, saves the state and exits."""
    pid = json.loads((endpoints.data_dir / "local.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    port = int(endpoints.emulator.rsplit(":", 1)[1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.2)
    raise AssertionError("the emulator did not stop after make dev was killed")


@pytest.mark.own_stack
def test_tasks_parked_under_a_limit_run_after_a_restart_without_it(tmp_path):
    data = tmp_path / "data"
    with launch(tmp_path / "first.log", data_dir=data, env={"MAX_RUNNING_PER_OWNER": "1"}) as e:
        first = stack_of(e)
        holder = first.submit({"type": "demo/sleep", "input": {"seconds": 60, "steps": 60}})
        wait_for(first, [holder["jobId"]], RUNNING, timeout=30)
        parked = [first.submit({"type": "demo/sleep", "input": {"seconds": 0}}) for _ in range(5)]
        # the stream has seen them: each parked behind the limit, still submitted
        wait_until_parked(first, [job["jobId"] for job in parked], timeout=60)
        assert {first.get(job["jobId"])["status"] for job in parked} == {"submitted"}
    env = {"MAX_RUNNING_PER_OWNER": "0", "REAPER_INTERVAL_SECONDS": "2"}
    with launch(tmp_path / "second.log", data_dir=data, env=env) as e:
        wait_for(stack_of(e), [job["jobId"] for job in parked], {"completed"}, timeout=30)


@pytest.mark.own_stack
@pytest.mark.parametrize("stop", ["stopped", "crashed"])
def test_a_restart_delays_no_new_work_and_the_interrupted_tasks_start_again_at_once(tmp_path, stop):
    """The owner's running tasks hold all its slots (the default limit) when make dev stops."""
    from chalicelib.settings import DEFAULT_MAX_RUNNING_PER_OWNER

    data = tmp_path / "data"
    job = {"type": "demo/sleep", "input": {"seconds": 8, "steps": 8}}
    with launch(tmp_path / "first.log", data_dir=data) as endpoints:
        first = stack_of(endpoints)
        interrupted = [first.submit(job)["jobId"] for _ in range(DEFAULT_MAX_RUNNING_PER_OWNER)]
        wait_for(first, interrupted, {"processing"}, timeout=30)
        if stop == "crashed":
            crash(endpoints)
    with launch(tmp_path / "second.log", data_dir=data) as endpoints:
        second = stack_of(endpoints)
        new = second.submit({"type": "demo/sleep", "input": {"seconds": 0}})["jobId"]
        # Not behind the last run's leases (120 s) or its messages' visibility (720 s); the
        # bound leaves a loaded machine room and is still half a lease.
        assert wait_for(second, [new], {"completed"}, timeout=60) < 60
        wait_for(second, interrupted, {"completed"}, timeout=45)
        results = [second.get(job_id)["result"] for job_id in interrupted]
        assert results == [{"slept": 8.0, "steps": 8}] * len(interrupted)
