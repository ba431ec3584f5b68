"""`make bench`'s rows for batches, delayed runs and fair concurrency (issue 16)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import local.stack as fixtures
from bench import scale
from bench.bench import CallCounter, row, summarize


def batch_calls(client: Any, counter: CallCounter) -> None:
    headers = fixtures.auth("bench-batch")
    job = {"type": "demo/sleep", "input": {"seconds": 0}}
    plain = json.dumps({"jobs": [job] * 100})
    keyed = json.dumps({"jobs": [{**job, "idempotencyKey": f"b{n}"} for n in range(100)]})
    with counter.measure() as plain_calls:
        client.http.post("/jobs/batch", headers=headers, body=plain)
    with counter.measure() as keyed_calls:
        client.http.post("/jobs/batch", headers=headers, body=keyed)
    with counter.measure() as replay_calls:
        client.http.post("/jobs/batch", headers=headers, body=keyed)
    print("\nCalls per batch (POST /jobs/batch, 100 jobs; the stream then queues each job)")
    row("100 jobs", summarize(plain_calls))
    row("100 jobs with idempotencyKey", summarize(keyed_calls))
    row("100 replayed keys", summarize(replay_calls))


def sweep_calls(counter: CallCounter, due: int = 50) -> None:
    from chalicelib.bootstrap import container
    from chalicelib.model import Task, utcnow
    from chalicelib.store import READ_SHARDS

    service = container().service
    now = utcnow()
    for _ in range(due):
        service.store.create(
            Task.new(
                owner="bench-sweep",
                type="demo/sleep",
                ttl_seconds=86400,
                now=now,
                run_at=now + timedelta(hours=1),
            )
        )
    later = now + timedelta(hours=1, seconds=1)
    clock = service.clock
    service.clock = lambda: later
    try:
        with counter.measure() as calls:
            released = service.release_due()
    finally:
        service.clock = clock
    shards = len(READ_SHARDS)
    print(
        f"\nDelayed runs: the per-minute sweep ({shards} Queries on by_due per run, then per task)"
    )
    row(f"sweep of {len(released)} due tasks", summarize(calls, max(len(released), 1)))


def fairness(backlog: int = 300, limit: int = 2, task_seconds: float = 1.0) -> None:
    """Under `make dev`: how long one owner's task waits behind another's backlog."""
    import tempfile
    import time
    from pathlib import Path

    import requests

    from local.launcher import local_stack

    print(
        f"\nFair concurrency under make dev (4 workers): owner A queues {backlog} tasks of "
        f"{task_seconds:g} s, then owner B submits one"
    )
    for setting in (str(limit), "0"):
        scale.step(f"fair concurrency: {backlog} tasks ahead, MAX_RUNNING_PER_OWNER={setting}")
        env = {"MAX_RUNNING_PER_OWNER": setting, "WORKER_CONCURRENCY": "4"}
        with tempfile.TemporaryDirectory() as tmp, local_stack(Path(tmp) / "dev.log", env=env) as s:

            def post(path: str, body: Any, user: str) -> Any:
                headers = {"Authorization": f"Bearer {fixtures.token_for(user)}"}
                return requests.post(f"{s.api}{path}", json=body, headers=headers, timeout=30)

            job = {"type": "demo/sleep", "input": {"seconds": task_seconds, "steps": 1}}
            for first in range(0, backlog, 100):
                post("/jobs/batch", {"jobs": [job] * min(100, backlog - first)}, "bench-a")
            time.sleep(1)
            start = time.monotonic()
            job_id = post("/jobs", {"type": "demo/sleep"}, "bench-b").json()["jobId"]
            headers = {"Authorization": f"Bearer {fixtures.token_for('bench-b')}"}
            while True:
                found = requests.get(f"{s.api}/jobs/{job_id}", headers=headers, timeout=10)
                if found.json()["status"] == "completed" or time.monotonic() - start > 120:
                    break
                time.sleep(0.05)
            waited = time.monotonic() - start
        label = f"MAX_RUNNING_PER_OWNER={setting}" + (" (no limit)" if setting == "0" else "")
        row(label, f"B's task done {waited:.1f} s after its submit")
