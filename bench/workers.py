"""Remote workers in `make bench`: what a claim and a lease cost, and a remote worker's
throughput against the worker Lambda's, both measured in this run.

- Calls per request (in-process moto, the app's own boto3 clients counted): a claim that
  takes a job, a claim that finds none (`waitSeconds=0`), a lease heartbeat, a fenced final
  report, a release; with each one's latency through the Chalice test client.
- Throughput under `make dev`: the same no-op processor (a module given to the stack with
  PROCESSOR_MODULES, and to the remote worker with --processors) runs N jobs on the worker
  Lambda (the local SQS pump), then N pool jobs on a `taskstatus worker` (RemoteWorker, 4
  threads, real HTTP to the local API). Jobs/s is from the first submit to the last job
  completed; the ratio is the remote worker's over the Lambda's, from the same stack.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from local import stack as fixtures

NOOP_MODULE = """
from taskstatus_client.worker import processor


@processor("bench/remote-noop")
def noop(task, ctx):
    return None
"""
NOOP_TYPE = "bench/remote-noop"


def _service_key_headers(records_table: str, owners: list[str]) -> dict[str, str]:
    from chalicelib.edge.service_keys import ServiceKeys
    from chalicelib.model import utcnow

    _key, secret = ServiceKeys(records_table).create(
        "bench-worker", owners, ["jobs:report"], utcnow(), pools=("remote",)
    )
    return {"X-API-Key": secret, "Content-Type": "application/json"}


def claim_calls(client: Any, counter: Any, stack: Any, n: int = 20) -> None:
    """DynamoDB and SQS calls of a claim and of each lease operation, per request."""
    from bench.bench import row, summarize

    owner = fixtures.auth("bench-pool")
    worker = _service_key_headers(stack.outputs["RecordsTableName"], ["bench-pool"])
    body = json.dumps({"type": "video/render", "input": {}, "pool": "remote"})

    def post(path: str, payload: dict[str, Any] | None = None) -> Any:
        return client.http.post(path, headers=worker, body=json.dumps(payload or {}))

    for _ in range(2 * n):
        client.http.post("/jobs", headers=owner, body=body)
    stack.run_stream()  # queued on the pool's queue
    claimed = []
    with counter.measure() as claim_ops:
        start = time.perf_counter()
        for _ in range(n):
            claimed.append(post("/pools/remote/claim?waitSeconds=0").json_body)
        claim_s = time.perf_counter() - start
    assert all(c and c.get("leaseToken") for c in claimed), claimed[:2]
    with counter.measure() as keyed_ops:  # as `taskstatus worker` claims: a key per claim
        start = time.perf_counter()
        for number in range(n):
            keyed = {**worker, "Idempotency-Key": f"bench-claim-{number}"}
            answer = client.http.post("/pools/remote/claim?waitSeconds=0", headers=keyed, body="")
            assert answer.status_code == 200, answer.json_body
        keyed_s = time.perf_counter() - start
    with counter.measure() as empty_ops:
        start = time.perf_counter()
        for _ in range(n):
            assert post("/pools/remote/claim?waitSeconds=0").status_code == 204
        empty_s = time.perf_counter() - start
    with counter.measure() as beat_ops:
        start = time.perf_counter()
        for c in claimed:
            post(f"/jobs/{c['job']['jobId']}/heartbeat", {"leaseToken": c["leaseToken"]})
        beat_s = time.perf_counter() - start
    half = n // 2
    done = {"status": "completed", "result": {"ok": True}}
    with counter.measure() as report_ops:
        start = time.perf_counter()
        for c in claimed[:half]:
            post(f"/jobs/{c['job']['jobId']}/report", {**done, "leaseToken": c["leaseToken"]})
        report_s = time.perf_counter() - start
    with counter.measure() as release_ops:
        for c in claimed[half:]:
            post(f"/jobs/{c['job']['jobId']}/release", {"leaseToken": c["leaseToken"]})
    print("\nRemote workers: calls per request (a pool's jobs, a service key with POOLS=remote)")
    row("POST /pools/{pool}/claim", summarize(claim_ops, n), claim_s / n)
    row("claim with an Idempotency-Key", summarize(keyed_ops, n), keyed_s / n)
    row("claim, nothing queued (204)", summarize(empty_ops, n), empty_s / n)
    row("POST /jobs/{id}/heartbeat", summarize(beat_ops, n), beat_s / n)
    row("report completed (fenced)", summarize(report_ops, half), report_s / half)
    row("POST /jobs/{id}/release", summarize(release_ops, n - half))


def remote_throughput(jobs: int) -> None:
    """Jobs/s of the worker Lambda and of a remote worker, one no-op processor, one stack."""
    from local.launcher import local_stack

    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "package"
        package.mkdir()
        (package / "bench_noop.py").write_text(NOOP_MODULE)
        sys.path.insert(0, str(package))
        env = {
            "PROCESSOR_MODULES": "bench_noop",
            "PYTHONPATH": os.pathsep.join([str(package), os.environ.get("PYTHONPATH", "")]),
            "MAX_RUNNING_PER_OWNER": "0",  # the Lambda's jobs are not held to an owner's slots
        }
        try:
            with local_stack(Path(tmp) / "dev.log", env=env) as stack:
                lambda_rate = _lambda_rate(stack.api, jobs)
                remote_rate = _remote_rate(stack.api, stack.emulator, jobs)
        finally:
            sys.path.remove(str(package))
    print(f"\nRemote worker against the worker Lambda under make dev ({jobs} no-op jobs each)")
    print(f"  worker Lambda (local SQS pump)        {lambda_rate:6.1f} jobs/s")
    print(
        f"  taskstatus worker, 4 threads, HTTP   {remote_rate:6.1f} jobs/s "
        f"({remote_rate / lambda_rate:.2f}x the worker Lambda's)"
    )


def _submit(api: str, owner: str, jobs: int, pool: str | None) -> list[str]:
    import requests

    headers = {"Authorization": f"Bearer {fixtures.token_for(owner)}"}
    body: dict[str, Any] = {"type": NOOP_TYPE, "input": {}}
    if pool is not None:
        body["pool"] = pool
    ids = []
    for _ in range(jobs):
        answer = requests.post(f"{api}/jobs", json=body, headers=headers, timeout=30)
        answer.raise_for_status()
        ids.append(answer.json()["jobId"])
    return ids


def _all_completed(api: str, owner: str, jobs: int, deadline: float = 600) -> None:
    import requests

    headers = {"Authorization": f"Bearer {fixtures.token_for(owner)}"}
    ends = time.monotonic() + deadline
    while time.monotonic() < ends:
        page = requests.get(f"{api}/jobs?limit=100", headers=headers, timeout=30).json()
        statuses = [job["status"] for job in page["jobs"]]
        if len(statuses) >= jobs and all(s == "completed" for s in statuses):
            return
        if any(s in ("failed", "cancelled") for s in statuses):
            raise SystemExit(f"bench: a no-op job did not complete: {statuses}")
        time.sleep(0.1)
    raise SystemExit(f"bench: {jobs} no-op jobs of {owner} did not complete in {deadline} s")


def _lambda_rate(api: str, jobs: int) -> float:
    start = time.perf_counter()
    _submit(api, "bench-lambda", jobs, pool=None)
    _all_completed(api, "bench-lambda", jobs)
    return jobs / (time.perf_counter() - start)


def _remote_rate(api: str, emulator: str, jobs: int) -> float:
    from chalicelib.bootstrap import container
    from taskstatus_client.remote import RemoteWorker
    from taskstatus_client.reporter import Reporter
    from taskstatus_client.worker import load_processors

    os.environ["AWS_ENDPOINT_URL"] = emulator
    fixtures.reset_caches()
    try:
        headers = _service_key_headers(container().settings.records_table, ["bench-remote"])
    finally:
        del os.environ["AWS_ENDPOINT_URL"]
        fixtures.reset_caches()
    reporter = Reporter(api, api_key=headers["X-API-Key"])
    worker = RemoteWorker(
        reporter, "remote", load_processors(["bench_noop"]), concurrency=4, claim_wait=1
    )
    # Working before the first submit, as the local pump is for the Lambda's jobs.
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    try:
        start = time.perf_counter()
        _submit(api, "bench-remote", jobs, pool="remote")
        _all_completed(api, "bench-remote", jobs)
        return jobs / (time.perf_counter() - start)
    finally:
        worker.stop()
        running.join(timeout=60)
