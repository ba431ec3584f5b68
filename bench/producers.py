"""Producers in `make bench`: the calls of an external job's create, reports and heartbeats.

Target (issue: producers): one conditional write per report and per heartbeat, none for a
repeated report.
"""

from __future__ import annotations

import json
from typing import Any

from local import stack as fixtures


def producer_calls(client: Any, counter: Any, stack: Any) -> None:
    from bench.bench import row, summarize

    headers = {**fixtures.auth("bench-producer"), "Content-Type": "application/json"}
    n = 20
    create = json.dumps({"type": "daily_sales", "runner": "external"})

    def post(path: str, body: dict[str, Any] | None = None) -> Any:
        return client.http.post(path, headers=headers, body=json.dumps(body) if body else "")

    with counter.measure() as create_calls:
        ids = [
            client.http.post("/jobs", headers=headers, body=create).json_body["jobId"]
            for _ in range(n)
        ]
    stack.run_stream()
    for job_id in ids:
        post(f"/jobs/{job_id}/report", {"status": "started"})
    stack.run_stream()
    progress = {"status": "processing", "progress": {"current": 1, "total": 2}}
    with counter.measure() as report_calls:
        for job_id in ids:
            post(f"/jobs/{job_id}/report", progress)
    with counter.measure() as report_stream:
        records = stack.run_stream()
    with counter.measure() as repeat_calls:
        for job_id in ids:
            post(f"/jobs/{job_id}/report", progress)
    with counter.measure() as heartbeat_calls:
        for job_id in ids:
            post(f"/jobs/{job_id}/heartbeat")
    with counter.measure() as heartbeat_stream:
        beats = stack.run_stream()
    print("\nProducers (per request; stream: per record)")
    row("POST /jobs (external)", summarize(create_calls, n))
    row("POST /jobs/{id}/report", summarize(report_calls, n))
    row("report, a repeat", summarize(repeat_calls, n))
    row("stream: a report", summarize(report_stream, max(records, 1)))
    row("POST /jobs/{id}/heartbeat", summarize(heartbeat_calls, n))
    row(f"stream: a heartbeat ({beats})", summarize(heartbeat_stream, max(beats, 1)))
