"""`make dev` as a runtime: concurrent handlers, state across restarts, a clean log."""

from __future__ import annotations

import signal
import time

import pytest
import requests

from local.launcher import local_stack as launch
from tests.e2e import HTTP_TIMEOUT
from tests.e2e.conftest import LocalStack
from tests.receiver import Receiver

BUCKET = "taskstatus-local-objects-123456789012"


def stack_of(endpoints) -> LocalStack:
    return LocalStack(
        api=endpoints.api, ws=endpoints.ws, emulator=endpoints.emulator, log=endpoints.log
    )


def wait_for_status(stack: LocalStack, job_id: str, wanted: set[str], timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stack.get(job_id)
        if job["status"] in wanted:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}; last: {job}")


def test_a_long_task_does_not_delay_a_short_one(local_stack):
    # Generous bounds: other tests may have left a backlog in the shared stack's queue.
    long = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 40, "steps": 2}})
    short = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 0.2, "steps": 1}})
    final = local_stack.wait_until_finished(short["jobId"], timeout=30)[-1]
    assert final["status"] == "completed"
    assert local_stack.get(long["jobId"])["status"] in {"submitted", "started", "processing"}


@pytest.mark.own_stack
def test_tasks_objects_and_a_task_in_flight_survive_a_restart(tmp_path):
    env = {"WORKER_LEASE_SECONDS": "3"}
    data = tmp_path / "data"
    with launch(tmp_path / "first.log", data_dir=data, env=env) as endpoints:
        first = stack_of(endpoints)
        done = first.submit({"type": "demo/sleep", "input": {"seconds": 0}})
        finished = first.wait_until_finished(done["jobId"])[-1]
        first.aws("s3").put_object(Bucket=BUCKET, Key="kept.txt", Body=b"kept")
        running = first.submit({"type": "demo/sleep", "input": {"seconds": 6, "steps": 6}})
        wait_for_status(first, running["jobId"], {"processing"})
    with launch(tmp_path / "second.log", data_dir=data, env=env) as endpoints:
        second = stack_of(endpoints)
        assert second.get(done["jobId"]) == finished
        body = second.aws("s3").get_object(Bucket=BUCKET, Key="kept.txt")["Body"].read()
        assert body == b"kept"
        resumed = second.wait_until_finished(running["jobId"], timeout=45)[-1]
        assert resumed["status"] == "completed"
        assert resumed["result"] == {"slept": 6.0, "steps": 6}


@pytest.mark.own_stack
def test_reset_starts_empty(tmp_path):
    data = tmp_path / "data"
    with launch(tmp_path / "first.log", data_dir=data) as endpoints:
        job = stack_of(endpoints).submit({"type": "demo/sleep", "input": {"seconds": 0}})
    with launch(tmp_path / "second.log", data_dir=data, args=("--reset",)) as endpoints:
        stack = stack_of(endpoints)
        # The new stack's first request also builds its clients: as long as the others' 10 s.
        response = requests.get(
            f"{stack.api}/jobs/{job['jobId']}", headers=stack.headers(), timeout=HTTP_TIMEOUT
        )
        assert response.status_code == 404


STALLED_SECONDS = 100  # demo/sleep's longest


@pytest.mark.own_stack
def test_a_typical_session_leaves_no_traceback_in_the_log(tmp_path):
    env = {"REAPER_INTERVAL_SECONDS": "1", "TASK_TIMEOUT_SECONDS": "3"}
    receiver = Receiver([500, 200])
    try:
        with launch(tmp_path / "dev.log", env=env) as endpoints:
            stack = stack_of(endpoints)
            with stack.websocket() as ws:
                ws.send('{"action":"subscribe"}')
                # progress, a webhook retried once, pushes over the WebSocket
                hooked = stack.submit(
                    {
                        "type": "demo/sleep",
                        "input": {"seconds": 1, "steps": 4},
                        "webhook": {"url": receiver.url},
                    }
                )
                states = stack.wait_until_finished(hooked["jobId"])
                assert any(s["progress"] for s in states)
                assert ws.recv(timeout=30)
            # a cancel while it runs
            cancelled = stack.submit({"type": "demo/sleep", "input": {"seconds": 2, "steps": 4}})
            wait_for_status(stack, cancelled["jobId"], {"processing"})
            response = requests.delete(
                f"{stack.api}/jobs/{cancelled['jobId']}", headers=stack.headers(), timeout=5
            )
            assert response.status_code == 200
            # a task the reaper fails: no status write for longer than TASK_TIMEOUT_SECONDS.
            # It sleeps the longest demo/sleep allows, silent: the reaper has 97 s past the
            # 3 s timeout to fail it (a run reads every shard of the deadline and due indexes;
            # 27 s was not enough on a machine at load 10).
            stalled = stack.submit({"type": "demo/sleep", "input": {"seconds": STALLED_SECONDS}})
            reaped = wait_for_status(stack, stalled["jobId"], {"failed"}, timeout=STALLED_SECONDS)
            assert reaped["error"]
            # bad requests are answered, not crashed on
            assert requests.get(f"{stack.api}/jobs", timeout=5).status_code == 401
            assert (
                requests.get(
                    f"{stack.api}/jobs/not~a~job~id", headers=stack.headers(), timeout=5
                ).status_code
                == 400
            )
            assert receiver.arrived.wait(30)
            # the stalled task's worker wakes up, finds it failed and stops: the log has it all
            stack.wait_for_log(f"stopped {stalled['jobId']}", timeout=STALLED_SECONDS + 60)
            log = endpoints.log.read_text()
    finally:
        receiver.close()
    assert "Traceback" not in log, log[-4000:]
    assert " ERROR " not in log, [line for line in log.splitlines() if " ERROR " in line]


@pytest.mark.own_stack
def test_ctrl_c_with_tasks_in_flight_stops_without_a_traceback(tmp_path):
    # As `make dev` runs by default: the reloader's process, the stack in its child.
    with launch(tmp_path / "dev.log", stop_signal=signal.SIGINT, env={"RELOAD": "1"}) as endpoints:
        stack = stack_of(endpoints)
        running = [
            stack.submit({"type": "demo/sleep", "input": {"seconds": 30, "steps": 30}})
            for _ in range(3)
        ]
        for job in running:
            wait_for_status(stack, job["jobId"], {"processing"})
        queued = stack.submit({"type": "demo/sleep", "input": {"seconds": 0.1, "steps": 1}})
        assert queued["jobId"]
    log = endpoints.log.read_text()
    assert "stopped." in log.splitlines()  # the shutdown ran to its end
    assert "Traceback" not in log, log[-6000:]
    assert " ERROR " not in log, [line for line in log.splitlines() if " ERROR " in line]
