"""`make bench`'s rows for batches, delayed runs and fair concurrency (issue 16)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import tests.conftest as fixtures
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
    from chalicelib.model import Task, utcnow
    from chalicelib.service import default_service

    service = default_service()
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
    print("\nDelayed runs: the per-minute sweep (16 Queries on by_due per run, then per task)")
    row(f"sweep of {len(released)} due tasks", summarize(calls, max(len(released), 1)))
