"""`make bench`: what each operation costs, measured in this run.

Prints cold start per function kind as Lambda runs it (bench/cold.py), DynamoDB and SQS
calls per request (counted on the app's own boto3 clients against moto), and worker
throughput, a claim's calls and a remote worker's throughput against the worker Lambda's
(bench/workers.py), one Query's cost to `make dev`'s emulator as its table grows
(bench/emulator.py), WebSocket push latency and fairness under `make dev`. Quick by default,
`make bench FULL=1` for the figures of docs/performance.md (bench/scale.py);
BENCH_ONLY=cold stops after the cold starts, BENCH_COLD_RUNS and BENCH_WORKER_RUNS set those counts.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import local.stack as fixtures  # noqa: E402
from bench import scale  # noqa: E402

fixtures.use_in_process_env()  # the in-process moto environment the unit tests use too

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


class CallCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register(
            "before-call", lambda model, **_: self.calls.update([f"{service}:{model.name}"])
        )

    @contextmanager
    def measure(self) -> Iterator[Counter[str]]:
        before = Counter(self.calls)
        result: Counter[str] = Counter()
        yield result
        result.update(self.calls - before)


def summarize(calls: Counter[str], per: int = 1) -> str:
    ddb_reads = sum(
        n for k, n in calls.items() if k.split(":")[1] in READS and k.startswith("dynamodb")
    )
    ddb_writes = sum(n for k, n in calls.items() if k.split(":")[1] in WRITES)
    sqs = sum(n for k, n in calls.items() if k.startswith("sqs:"))
    detail = ", ".join(f"{k}={v / per:g}" for k, v in sorted(calls.items()))
    return (
        f"DynamoDB reads {ddb_reads / per:g}, writes {ddb_writes / per:g}, SQS calls {sqs / per:g}"
        f"  [{detail}]"
    )


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def per_request(client: Any, counter: CallCounter, stack: Any) -> None:
    headers = fixtures.auth("bench")
    body = json.dumps({"type": "demo/sleep", "input": {"seconds": 0}})
    n = 20
    ids = []
    with counter.measure() as submit_calls:
        start = time.perf_counter()
        for _ in range(n):
            ids.append(client.http.post("/jobs", headers=headers, body=body).json_body["jobId"])
        submit_s = time.perf_counter() - start
    with counter.measure() as keyed_calls:
        for i in range(n):
            client.http.post("/jobs", headers={**headers, "Idempotency-Key": f"k{i}"}, body=body)
    with counter.measure() as replay_calls:
        for i in range(n):
            client.http.post("/jobs", headers={**headers, "Idempotency-Key": f"k{i}"}, body=body)
    with counter.measure() as stream_calls:
        records = stack.run_stream()
    with counter.measure() as get_calls:
        start = time.perf_counter()
        for job_id in ids:
            client.http.get(f"/jobs/{job_id}", headers=headers)
        get_s = time.perf_counter() - start
    with counter.measure() as list_calls:
        for _ in range(n):
            client.http.get("/jobs?limit=20", headers=headers)
    print("\nCalls per request (REST, through the Chalice test client on moto)")
    row("POST /jobs", summarize(submit_calls, n), submit_s / n)
    row("POST /jobs + Idempotency-Key", summarize(keyed_calls, n))
    row("POST /jobs, replayed key", summarize(replay_calls, n))
    row("stream: new task (queue+push)", summarize(stream_calls, max(records, 1)))
    row("GET /jobs/{id}", summarize(get_calls, n), get_s / n)
    row("GET /jobs (one page)", summarize(list_calls, n))
    extra_surfaces(client, counter, ids, headers)


def operations_calls(client: Any, counter: CallCounter, stack: Any) -> None:
    """History, retry and redrive: calls per request, and per task for the bulk ones."""
    from chalicelib.bootstrap import container
    from chalicelib.model import Status, Task, utcnow

    service = container().service

    def failed_task() -> Task:
        now = utcnow()
        task = Task.new(owner="bench-ops", type="demo/sleep", ttl_seconds=3600, now=now)
        ended = {"status": Status.FAILED, "started_at": now, "completed_at": now, "error": "x"}
        task = task.replace(**ended)
        service.store.create(task)
        return task

    headers = fixtures.auth("bench-ops")
    n = 20
    failed = [failed_task() for _ in range(n)]
    keyed_tasks = [failed_task() for _ in range(n)]
    stack.run_stream()
    with counter.measure() as events_calls:
        for task in failed:
            client.http.get(f"/jobs/{task.id}/events", headers=headers)
    with counter.measure() as retry_calls:
        for task in failed:
            client.http.post(f"/jobs/{task.id}/retry", headers=headers, body="")
    with counter.measure() as keyed_calls:
        for i, task in enumerate(keyed_tasks):
            keyed = {**headers, "Idempotency-Key": f"r{i}"}
            client.http.post(f"/jobs/{task.id}/retry", headers=keyed, body="")
    with counter.measure() as requeue_calls:
        records = stack.run_stream()
    more = [failed_task() for _ in range(n)]
    body = json.dumps({"status": "failed"})
    with counter.measure() as dry_calls:
        dry = client.http.post(
            "/jobs/redrive", headers=headers, body=json.dumps({"status": "failed", "dryRun": True})
        ).json_body["count"]
    with counter.measure() as redrive_calls:
        moved = client.http.post("/jobs/redrive", headers=headers, body=body).json_body["count"]
    with counter.measure() as cancel_calls:
        cancelled = client.http.post("/jobs/cancel", headers=headers, body="{}").json_body["count"]
    assert dry == moved == len(more) and cancelled == len(more) + len(failed) + len(keyed_tasks)
    print("\nHistory, retry and redrive (per request; bulk: per task moved)")
    row("GET /jobs/{id}/events", summarize(events_calls, n))
    row("POST /jobs/{id}/retry", summarize(retry_calls, n))
    row("retry + Idempotency-Key", summarize(keyed_calls, n))
    row("stream: retry (history+queue)", summarize(requeue_calls, max(records, 1)))
    row(f"redrive dryRun ({dry} tasks)", summarize(dry_calls, dry))
    row(f"POST /jobs/redrive ({moved})", summarize(redrive_calls, moved))
    row(f"POST /jobs/cancel ({cancelled})", summarize(cancel_calls, cancelled))


def row(label: str, figures: str, seconds: float | None = None) -> None:
    timing = f"  ({seconds * 1000:.1f} ms each)" if seconds is not None else ""
    print(f"  {label:30} {figures}{timing}")


def extra_surfaces(
    client: Any, counter: CallCounter, ids: list[str], headers: dict[str, str]
) -> None:
    """Hook for the client contracts' surfaces (see bench_contracts)."""
    for name, request in CONTRACT_SURFACES:
        with counter.measure() as calls:
            for job_id in ids:
                request(client, job_id, headers)
        row(name, summarize(calls, len(ids)))


def _invoke_status_lambda(client: Any, job_id: str, headers: dict[str, str]) -> Any:
    import app
    from local.events import LambdaContext

    return app.status({"assemblyId": job_id, "userId": "bench"}, LambdaContext("status"))


CONTRACT_SURFACES: list[tuple[str, Callable[[Any, str, dict[str, str]], Any]]] = [
    ("000/001 GET /task/{id}", lambda c, i, h: c.http.get(f"/task/{i}", headers=h)),
    ("004 GET /task-status/{id}", lambda c, i, h: c.http.get(f"/task-status/{i}", headers=h)),
    ("004 GET /task-status (page)", lambda c, i, h: c.http.get("/task-status?limit=20", headers=h)),
    (
        "004 GET /task-status?operation=",
        lambda c, i, h: c.http.get("/task-status?operation=demo/sleep&limit=20", headers=h),
    ),
    ("003 status Lambda invoke", _invoke_status_lambda),
    ("003 GET /assemblies/{id}", lambda c, i, h: c.http.get(f"/assemblies/{i}", headers=h)),
]


def worker_throughput(counter: CallCounter, stack: Any) -> None:
    """Tasks/s of the worker over several interleaved runs, against the two-write floor.

    The floor is the same tasks with only the two conditional writes a run cannot avoid
    (the claim and the final state), made on the same client: what the worker would do
    if its own code cost nothing.
    """
    from dataclasses import replace

    from chalicelib.bootstrap import Container, container
    from chalicelib.model import Task
    from chalicelib.processors import processor

    processor("bench/noop")(lambda task, ctx: None)
    # No owner limit: the worker alone is measured, and without the stream (which frees a
    # finished task's slot) a limit would park every task past the first three.
    unlimited = Container(replace(container().settings, max_running_per_owner=0))
    service = unlimited.service
    worker = unlimited.worker
    ddb = aws_client("dynamodb")
    runs = int(os.environ.get("BENCH_WORKER_RUNS", str(scale.chosen().worker_runs)))
    batches, per_batch = 5, 10

    def messages(tasks: list[Task]) -> list[dict[str, Any]]:
        return [
            {
                "messageId": t.id,
                "receiptHandle": "",
                "body": json.dumps({"taskId": t.id, "type": t.type, "owner": t.owner}),
                "attributes": {"ApproximateReceiveCount": "1"},
            }
            for t in tasks
        ]

    # Each floor replays the worker's own two requests (the claim and the final write) for
    # other tasks, captured from one run of that type: the same work for DynamoDB (moto's cost
    # grows with the expressions and the returned item), none of the worker's own code.
    def floor_of(task_type: str, task_input: dict[str, Any]) -> Callable[[list[Task]], None]:
        captured: list[dict[str, Any]] = []

        def capture(params: dict[str, Any], **_: Any) -> None:
            captured.append(copy.deepcopy(params))

        sample = Task.new(owner="bench", type=task_type, ttl_seconds=3600, input=task_input)
        service.store.create(sample)
        ddb.meta.events.register("provide-client-params.dynamodb.UpdateItem", capture)
        worker.handle_batch(messages([sample]))
        ddb.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", capture)
        assert len(captured) == 2, captured

        def two_writes(tasks: list[Task]) -> None:
            for task in tasks:
                for params in captured:
                    ddb.update_item(**{**params, "Key": {"id": {"S": task.id}}})

        return two_writes

    def run_worker(tasks: list[Task]) -> Any:
        return worker.handle_batch(messages(tasks))

    sleep, noop = ("demo/sleep", {"seconds": 0, "steps": 1}), ("bench/noop", {})
    progress, plain = "demo/sleep steps=1 (1 progress report)", "bench/noop (no progress report)"
    floors = {progress: "  its two-write floor", plain: "  its two-write floor "}
    variants: dict[str, tuple[str, dict[str, Any], Callable[[list[Task]], Any]]] = {
        progress: (*sleep, run_worker),
        floors[progress]: (*sleep, floor_of(*sleep)),
        plain: (*noop, run_worker),
        floors[plain]: (*noop, floor_of(*noop)),
    }
    rates: dict[str, list[float]] = {label: [] for label in variants}
    cpu_rates: dict[str, list[float]] = {label: [] for label in variants}
    per_task: dict[str, Counter[str]] = {label: Counter() for label in variants}
    for run_number in range(1, runs + 1):
        scale.step(f"worker throughput: run {run_number} of {runs}")
        for label, (task_type, task_input, run) in variants.items():
            elapsed = cpu = 0.0
            with counter.measure() as calls:
                for _ in range(batches):
                    tasks = [
                        Task.new(owner="bench", type=task_type, ttl_seconds=3600, input=task_input)
                        for _ in range(per_batch)
                    ]
                    for task in tasks:
                        service.store.create(task)
                    gc.collect()  # the collector's passes over moto's growing tables are
                    gc.disable()  # moto's cost, not the worker's: kept out of every variant
                    start, start_cpu = time.perf_counter(), time.process_time()
                    result = run(tasks)
                    elapsed += time.perf_counter() - start
                    cpu += time.process_time() - start_cpu
                    gc.enable()
                    assert result in (None, {"batchItemFailures": []}), result
            rates[label].append(batches * per_batch / elapsed)
            cpu_rates[label].append(batches * per_batch / cpu)
            per_task[label].update({k: v for k, v in calls.items() if k != "dynamodb:PutItem"})
    total = runs * batches * per_batch
    print(
        f"\nWorker (SQS handler, batches of {per_batch}, {runs} interleaved runs of "
        f"{batches * per_batch} tasks, moto in-process: median (min-max); CPU rates are tasks per"
        " CPU second of this process, steadier than wall time on a shared machine)"
    )
    for label in variants:
        floor = floors.get(label, label)
        wall, cpu_rate = statistics.median(rates[label]), statistics.median(cpu_rates[label])
        wall_floor = statistics.median(rates[floor])
        cpu_floor = statistics.median(cpu_rates[floor])
        print(
            f"  {label:40} wall {wall:5.1f}/s ({min(rates[label]):.1f}-{max(rates[label]):.1f})"
            f" {wall / wall_floor:.2f}x floor; CPU {cpu_rate:5.1f}/s"
            f" ({min(cpu_rates[label]):.1f}-{max(cpu_rates[label]):.1f})"
            f" {cpu_rate / cpu_floor:.2f}x floor"
        )
        if label in floors:
            print(f"  {'':40} per task {summarize(per_task[label], total)}")
    print("  target: 1 progress report per task >= 0.8x the two-write floor")


def fan_out_calls(counter: CallCounter) -> None:
    """Stream fan-out for a task with 20 progress reports, with and without subscribers.

    The per-record lookup this replaced made one Query per record: 20 for such a task.
    """
    from chalicelib.bootstrap import container
    from chalicelib.model import Status, Task, utcnow
    from local.events import progress_records

    service = container().service
    realtime = container().realtime
    handler = container().push_handler
    counter.attach(aws_client("apigatewaymanagementapi", service.settings.ws_endpoint_url))
    reports = 20

    def task_of(owner: str) -> Task:
        task = Task.new(owner=owner, type="demo/sleep", ttl_seconds=3600)
        task = task.replace(status=Status.PROCESSING)
        service.store.create(task)
        return task

    print(f"\nWebSocket fan-out (the pushes reader, a task with {reports} progress reports)")
    for label, owner, batches in (
        ("no subscriber, 1 batch", "bench-quiet", 1),
        (f"no subscriber, {reports} batches", "bench-quiet", reports),
        ("2 connections, 1 batch", "bench-ws", 1),
        (f"2 connections, {reports} batches", "bench-ws", reports),
    ):
        if owner == "bench-ws":
            for connection in ("bench-a", "bench-b"):
                realtime.subscriptions.add_connection(connection, owner, utcnow())
        records = progress_records(service, task_of(owner), reports)
        size = reports // batches
        with counter.measure() as calls:
            for start in range(0, reports, size):
                handler.handle_batch(records[start : start + size])
        queries = calls["dynamodb:Query"]
        row(
            label,
            f"Query {queries} ({100 - queries * 100 / reports:.0f} % fewer than one per record), "
            f"BatchGetItem {calls['dynamodb:BatchGetItem']}, "
            f"PostToConnection {calls['apigatewaymanagementapi:PostToConnection']}",
        )


def aws_client(service: str, endpoint_url: str | None = None) -> Any:
    from chalicelib import aws

    return aws.client(service, endpoint_url)


def websocket_latency(changes: int) -> None:
    import tempfile

    from websockets.sync.client import connect

    from local.launcher import local_stack

    with tempfile.TemporaryDirectory() as tmp, local_stack(Path(tmp) / "dev.log") as stack:
        os.environ["AWS_ENDPOINT_URL"] = stack.emulator
        fixtures.reset_caches()
        from chalicelib.bootstrap import container
        from chalicelib.model import Status, Task

        service = container().service
        token = fixtures.token_for("bench-latency")
        samples: list[float] = []
        with connect(f"{stack.ws}/?token={token}", proxy=None) as ws:
            ws.send(json.dumps({"action": "subscribe"}))
            ws.recv(timeout=10)
            while len(samples) < changes:
                task = Task.new(owner="bench-latency", type="demo/sleep", ttl_seconds=3600)
                task = task.replace(status=Status.STARTED)
                service.store.create(task)
                ws.recv(timeout=10)  # version 1
                for step in range(1, 11):
                    start = time.perf_counter()
                    task = service.report_progress(task, step, 10, "bench")
                    while True:
                        payload = json.loads(ws.recv(timeout=10))["payload"]
                        if payload["task_id"] == task.id and payload["version"] == task.version:
                            break
                    samples.append(time.perf_counter() - start)
        del os.environ["AWS_ENDPOINT_URL"]
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(f"\nWebSocket push latency under make dev ({len(samples)} status writes -> a client)")
    print(
        f"  median {statistics.median(samples) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
        f"(target: median < 250 ms)"
    )


def main() -> None:
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    size = scale.chosen()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # piped too
    more = "" if size is scale.FULL else "; `make bench FULL=1` for the full one"
    print(f"taskstatus bench, {size.name} run{more}:")
    print("figures from this run on this machine. DynamoDB and SQS are moto, so times are relative")
    print("(moto is slower than AWS); call counts are what AWS would bill.")
    from bench import cold
    from infra import package

    scale.step("building the Lambda package (make package's zip)")
    package.main("prod", str(ROOT / "build" / "bench" / "package"))
    cold.sizing(*cold.measure(ROOT / "build" / "bench" / "package" / "deployment.zip"))
    if os.environ.get("BENCH_ONLY") == "cold":
        return
    from chalicelib.observability import set_metrics_stream

    set_metrics_stream(open(os.devnull, "w"))  # noqa: SIM115
    with mock_aws():
        fixtures.reset_caches()
        from chalicelib import aws
        from local.resources import create_stack

        scale.step("calls per request: the stack in an in-process moto")
        outputs = create_stack(boto3.client("cloudformation"))
        stack = fixtures.Stack(outputs)
        counter = CallCounter()
        for service in ("dynamodb", "sqs", "s3"):
            counter.attach(aws.client(service))
        with Client(stack.app.app, stage_name="prod", project_dir=str(ROOT)) as client:
            per_request(client, counter, stack)
            operations_calls(client, counter, stack)
            from bench import operations

            scale.step("calls per batch and per delayed-run sweep")
            operations.batch_calls(client, counter)
            from bench.producers import producer_calls

            producer_calls(client, counter, stack)
            from bench.workers import claim_calls

            scale.step("remote workers: calls of a claim and its lease")
            claim_calls(client, counter, stack)
            operations.sweep_calls(counter)
            from bench.schedules import schedule_calls

            schedule_calls(client, counter)
            from bench.operator import operator_calls

            operator_calls(client, counter, stack)
            from bench.flow import admission_calls

            admission_calls(counter)
            worker_throughput(counter, stack)
            scale.step("WebSocket fan-out calls")
            fan_out_calls(counter)
            from bench import throughput

            scale.step(f"scale: the stream's readers, {size.stream_tasks} tasks run to the end")
            throughput.scale_section(client, stack, size.stream_tasks)
    set_metrics_stream(open(os.devnull, "w"))  # noqa: SIM115
    from bench.emulator import query_cost

    scale.step("the emulator's Query as its table grows")
    query_cost()
    scale.step(f"WebSocket push latency: make dev, {size.push_changes} status writes")
    websocket_latency(size.push_changes)
    from bench.workers import remote_throughput

    scale.step(f"remote worker against the worker Lambda: make dev, {size.remote_jobs} jobs each")
    remote_throughput(size.remote_jobs)
    from bench import operations as issue16

    issue16.fairness(backlog=size.fairness_backlog)
    scale.step("done")


if __name__ == "__main__":
    main()
