"""The stream's cost per task, counted: `make bench`'s scale section.

Tasks submitted in batches by several users run to the end on the in-process stack (moto):
the stream's readers are drained on their own, so every AWS call they make is counted
against them (the app's own boto3 clients, as AWS would bill them), with the CPU time of
the drain (moto's work included, so an upper bound). Two runs: with the default owner
limit (MAX_RUNNING_PER_OWNER, 3) and with none (0). Run alone:
`.venv/bin/python -m bench.throughput [TASKS] [USERS]`.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench import units

TASKS = 300
USERS = 5
SUBMIT_BATCH = 100  # POST /jobs/batch takes at most 100 jobs


@dataclass
class Drained:
    """What one handler did while the tasks ran."""

    calls: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)  # items written, by table
    cpu_seconds: float = 0.0
    records: int = 0


WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def items_written(operation: str, params: dict[str, Any]) -> Counter[str]:
    """The items a DynamoDB call writes, by table (a batch's and a transaction's each)."""
    written: Counter[str] = Counter()
    if operation in WRITES:
        written[params["TableName"]] += 1
    elif operation == "BatchWriteItem":
        for table, requests in params["RequestItems"].items():
            written[table] += len(requests)
    elif operation == "TransactWriteItems":
        for item in params["TransactItems"]:
            for kind, request in item.items():
                if kind != "ConditionCheck":
                    written[request["TableName"]] += 1
    return written


@contextmanager
def counted(calls: Counter[str], writes: Counter[str] | None = None) -> Iterator[None]:
    """Count every AWS call the app's clients make in the block, by service:operation, and
    the DynamoDB items written, by table."""
    from chalicelib import aws

    def count(model: Any, **_: Any) -> None:
        calls.update([f"{model.service_model.service_name}:{model.name}"])

    def count_writes(model: Any, params: dict[str, Any], **_: Any) -> None:
        if writes is not None:  # the call's own parameters, before botocore serializes them
            writes.update(items_written(model.name, params))

    clients = [aws.client(name) for name in ("dynamodb", "sqs", "s3")]
    for client in clients:
        client.meta.events.register("before-call", count, unique_id="bench-throughput")
    clients[0].meta.events.register(
        "before-parameter-build.dynamodb", count_writes, unique_id="bench-throughput-writes"
    )
    try:
        yield
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", unique_id="bench-throughput")
        clients[0].meta.events.unregister(
            "before-parameter-build.dynamodb", unique_id="bench-throughput-writes"
        )


def submit_all(client: Any, tasks: int, users: int, padding: int = 0) -> list[tuple[str, str]]:
    """Submit `tasks` quick jobs spread over `users`, in batches; (user, job id) of each.
    `padding`: characters of metadata each job carries, to make its item larger."""
    from local.stack import auth

    jobs: list[tuple[str, str]] = []
    per_user = [tasks // users + (1 if n < tasks % users else 0) for n in range(users)]
    job: dict[str, Any] = {"type": "demo/sleep", "input": {"seconds": 0}}
    if padding:
        job["metadata"] = {"pad": "x" * padding}
    for n, count in enumerate(per_user):
        user = f"bench-user-{n}"
        for start in range(0, count, SUBMIT_BATCH):
            size = min(SUBMIT_BATCH, count - start)
            body = {"jobs": [job] * size}
            answer = client.http.post("/jobs/batch", headers=auth(user), body=json.dumps(body))
            jobs += [(user, r["job"]["jobId"]) for r in answer.json_body["results"]]
    return jobs


def drain(pump: Any, into: Drained) -> int:
    with counted(into.calls, into.writes):
        started = time.process_time()
        handled = int(pump.drain())
        into.cpu_seconds += time.process_time() - started
    into.records += handled
    return handled


@dataclass
class WriteUnits:
    """The DynamoDB write units the tasks' changes cost, and the records table's largest item
    (its items are counted one unit each: see `report_units`)."""

    tasks_table: str
    by_name: Counter[str]  # the tasks table's and each index's (`<table>.<index>`)
    largest_record: int  # bytes
    largest_task: int  # bytes: the largest of the run's task items, as they ended


@dataclass
class Run:
    readers: dict[str, Drained]  # what each handler did
    units: WriteUnits


def run(client: Any, stack: Any, tasks: int = TASKS, users: int = USERS, padding: int = 0) -> Run:
    """Run the tasks to the end; what each handler did, and the write units it cost."""
    readers = {"api": Drained(), "stream": Drained(), "pushes": Drained(), "worker": Drained()}
    with counted(readers["api"].calls, readers["api"].writes):
        started = time.process_time()
        jobs = submit_all(client, tasks, users, padding)
        readers["api"].cpu_seconds = time.process_time() - started
        readers["api"].records = len(jobs)
    push_pump = getattr(stack, "push_pump", None)  # before the second reader there was none
    for _ in range(10_000):
        moved = drain(stack.stream_pump, readers["stream"])
        if push_pump is not None:
            drain(push_pump, readers["pushes"])
        moved += drain(stack.worker_pump, readers["worker"])
        if not moved and _all_ended(stack, jobs):
            break
    task_ids = {job for _, job in jobs}
    units_of_tasks = WriteUnits(
        stack.outputs["TasksTableName"],
        tasks_table_units(stack, task_ids),
        largest_item(stack, stack.outputs["RecordsTableName"]),
        largest_item(stack, stack.outputs["TasksTableName"], task_ids),
    )
    return Run(readers, units_of_tasks)


def largest_item(stack: Any, table: str, ids: set[str] | None = None) -> int:
    """The size of the table's largest item (of those ids, if given; a bench may Scan:
    in-process moto)."""
    pages = stack.ddb.get_paginator("scan").paginate(TableName=table)
    return max(
        (
            units.item_size(item)
            for page in pages
            for item in page["Items"]
            if ids is None or item["id"]["S"] in ids
        ),
        default=0,
    )


def tasks_table_units(stack: Any, task_ids: set[str]) -> Counter[str]:
    """Write units of these tasks' changes, from the stream's images (bench/units.py)."""
    from local.stack import streams_client

    table = stack.outputs["TasksTableName"]
    shape = units.TableShape(stack.ddb.describe_table(TableName=table)["Table"])
    changes = units.stream_changes(streams_client(), stack.outputs["TasksStreamArn"])
    found = units.task_write_units(shape, changes, task_ids)
    return Counter({name: found[name] for name in shape.names()})


def _all_ended(stack: Any, jobs: list[tuple[str, str]]) -> bool:
    ended = {"completed", "failed", "cancelled", "completed_with_errors"}
    table = stack.outputs["TasksTableName"]
    for _, job_id in jobs:
        item = stack.ddb.get_item(TableName=table, Key={"id": {"S": job_id}}).get("Item", {})
        if item.get("status", {}).get("S") not in ended:
            return False
    return True


@contextmanager
def owner_limit(limit: int) -> Iterator[None]:
    """The app runs with MAX_RUNNING_PER_OWNER at `limit` in the block."""
    from dataclasses import replace

    from chalicelib import bootstrap

    before = bootstrap.container()
    bootstrap.use(bootstrap.Container(replace(before.settings, max_running_per_owner=limit)))
    try:
        yield
    finally:
        bootstrap.use(before)


def scale_section(client: Any, stack: Any, tasks: int = TASKS, users: int = USERS) -> None:
    """The tasks run to the end three times: with the default owner limit, with none, and
    with none again, each task's item grown to just under 1 KB (the size the target of 12
    write units is set for: every write of an item up to 1 KB is one unit)."""
    from chalicelib.settings import DEFAULT_MAX_RUNNING_PER_OWNER

    for limit in (DEFAULT_MAX_RUNNING_PER_OWNER, 0):
        with owner_limit(limit):
            result = run(client, stack, tasks, users)
        report(result, tasks, users, f"MAX_RUNNING_PER_OWNER={limit}")
    padding = one_kb_padding(result.units.largest_task)
    with owner_limit(0):
        result = run(client, stack, tasks, users, padding)
    report(result, tasks, users, f"MAX_RUNNING_PER_OWNER=0, tasks padded to {ONE_KB_TASK} bytes")
    print("  target: <= 12 DynamoDB write units for a 1 KB task (this run)")


ONE_KB_TASK = units.KB - 24  # bytes: under 1 KB with room for the ids' and times' own spread
PADDING_OVERHEAD = len('{"pad":""}')  # the metadata attribute's JSON around the padding


def one_kb_padding(largest: int) -> int:
    """Characters of padding that grow the largest task item of a run from `largest` bytes
    to ONE_KB_TASK (a task without metadata stores none: the attribute's name counts too)."""
    return max(0, ONE_KB_TASK - largest - PADDING_OVERHEAD - len("metadata"))


def report(result: Run, tasks: int, users: int, setting: str = "") -> None:
    print(
        f"\nPer task, by handler ({tasks} tasks of {users} users, 100 a batch, run to the end"
        f"{', ' + setting if setting else ''})"
    )
    for name, drained in result.readers.items():
        if not drained.records:
            continue
        total = sum(drained.calls.values())
        detail = ", ".join(f"{k}={v / tasks:.3g}" for k, v in sorted(drained.calls.items()))
        written = ", ".join(f"{k}={v / tasks:.3g}" for k, v in sorted(drained.writes.items()))
        print(
            f"  {name:8} {total / tasks:5.2f} AWS calls/task, "
            f"CPU {drained.cpu_seconds * 1000 / tasks:.1f} ms/task (moto's included)"
        )
        print(f"  {'':8} calls: {detail}")
        print(f"  {'':8} items written: {written or 'none'}")
    report_units(result, tasks)
    print("  target: the stream (the reader that queues) <= 0.5 AWS calls per task")


def report_units(result: Run, tasks: int) -> None:
    """Write units per task on the tasks table and each index, and the items the handlers
    wrote to other tables (the records table's items are small: one unit an item)."""
    written = result.units.by_name
    others = sum(
        (Counter({t: n for t, n in d.writes.items() if t != result.units.tasks_table})
         for d in result.readers.values()),
        Counter(),
    )  # fmt: skip
    on_tasks = sum(written.values())
    detail = ", ".join(f"{name}={count / tasks:.3g}" for name, count in written.items())
    elsewhere = ", ".join(f"{name}={count / tasks:.3g}" for name, count in others.items())
    total = (on_tasks + sum(others.values())) / tasks
    print(f"  {'units':8} {on_tasks / tasks:5.2f} DynamoDB write units/task on the tasks table")
    print(f"  {'':8} by table and index: {detail}")
    print(
        f"  {'':8} items written elsewhere: {elsewhere or 'none'}; in all ~{total:.1f} units/task"
    )
    print(f"  {'':8} the records table's largest item: {result.units.largest_record} bytes")
    print(f"  {'':8} the tasks table's largest item of the run: {result.units.largest_task} bytes")


def main() -> None:
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib.observability import set_metrics_stream
    from local import stack as fixtures

    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else TASKS
    users = int(sys.argv[2]) if len(sys.argv) > 2 else USERS
    fixtures.use_in_process_env()
    set_metrics_stream(open("/dev/null", "w"))  # noqa: SIM115
    with mock_aws():
        fixtures.reset_caches()
        from local.resources import create_stack

        stack = fixtures.Stack(create_stack(boto3.client("cloudformation")))
        with Client(stack.app.app, stage_name="prod", project_dir=str(fixtures.ROOT)) as client:
            scale_section(client, stack, tasks, users)


if __name__ == "__main__":
    main()
