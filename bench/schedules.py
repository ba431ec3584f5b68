"""make bench: DynamoDB calls per schedule create and per fire (chalicelib/schedules.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import local.stack as fixtures
from bench.bench import CallCounter, row, summarize


def schedule_calls(client: Any, counter: CallCounter, count: int = 20) -> None:
    """`count` schedules of each overlap mode, due at once: what one sweep pays per fire."""
    from chalicelib.bootstrap import container
    from chalicelib.schedules import fire_due

    service = container().service
    headers = fixtures.auth("bench-schedules")
    measured: dict[str, Any] = {}
    for overlap in ("allow", "skip"):
        body = json.dumps({"rate": "1 minute", "type": "demo/sleep", "overlap": overlap})
        with counter.measure() as created:
            for _ in range(count):
                client.http.post("/schedules", headers=headers, body=body)
        measured[f"create_{overlap}"] = created
    clock = service.clock
    later = clock() + timedelta(minutes=1, seconds=5)
    service.clock = lambda: later
    try:
        with counter.measure() as fired_calls:
            fired = fire_due(service, container().schedule_store, lambda: 900.0)
    finally:
        service.clock = clock
    print("\nSchedules (16 Queries on the due index per sweep, shared by all schedules)")
    row("POST /schedules", summarize(measured["create_allow"], count))
    row(f"sweep: {fired} fires", summarize(fired_calls, max(fired, 1)))
