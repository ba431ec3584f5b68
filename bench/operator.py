"""`make bench`'s rows for the operator's console: DynamoDB and SQS calls per operator route."""

from __future__ import annotations

from typing import Any

import local.stack as fixtures
from bench.bench import CallCounter, row, summarize
from local.token import mint_token

ROUTES = (
    "/ops/tasks?limit=25",
    "/ops/tasks?limit=25&owner=bench-ops-0",
    "/ops/queues",
    "/ops/queues/pool-remote-dlq/messages",
    "/ops/stuck",
    "/ops/usage",
    "/ops/latency",
    "/ops/webhooks",
    "/metrics",
)


def operator_calls(client: Any, counter: CallCounter, stack: Any, jobs: int = 60) -> None:
    """Each operator route once, after `jobs` jobs of 3 owners went through the stream."""
    for n in range(jobs):
        headers = fixtures.auth(f"bench-ops-{n % 3}")
        client.http.post("/jobs", headers=headers, body='{"type": "demo/sleep", "input": {}}')
    stack.run_stream()
    token = mint_token("bench-operator", fixtures.JWT_SECRET, 3600, scope="taskstatus:operator")
    headers = {"Authorization": f"Bearer {token}"}
    print(f"\nCalls per operator route ({jobs} jobs of 3 owners, 16 shards of by_created)")
    for path in ROUTES:
        with counter.measure() as calls:
            response = client.http.get(path, headers=headers)
        assert response.status_code == 200, (path, response.body)
        row(path, summarize(calls))
