"""make bench: DynamoDB calls per admission, park and start under flow control
(chalicelib/fairness.py; docs/flow-control.md)."""

from __future__ import annotations

from typing import Any

from bench.bench import CallCounter, row, summarize


def admission_calls(counter: CallCounter, count: int = 20) -> None:
    """What flow control pays per task: a stream batch's tasks admitted together under one
    gate and under three (chalicelib/admission.py, as the stream does), a batch behind a full
    gate, tasks admitted from a line when slots free (the worker and the reaper), and a start
    under a type rate. The park's own writes are counted with the stream's, in the scale
    section (bench/throughput.py)."""
    from chalicelib import aws
    from chalicelib.admission import Admission
    from chalicelib.bootstrap import container
    from chalicelib.fairness import Slots, TokenBuckets, Waiting
    from chalicelib.flow import Rate
    from chalicelib.model import Task

    service = container().service
    ddb = aws.client("dynamodb")
    table = service.settings.records_table
    tasks = service.settings.tasks_table
    owner_only = Slots(table, count, tasks_table=tasks)
    three = Slots(table, count, (("bench/*", count),), tasks_table=tasks)

    def waiting(n: int, owner: str, key: str | None = None) -> Waiting:
        """A stored task (a park is written only while its task still waits at its version)."""
        task = Task.new(
            id=f"bench-{owner}-{n}",
            owner=owner,
            type="bench/x",
            ttl_seconds=3600,
            concurrency_key=key,
            concurrency_limit=count if key else None,
        )
        service.store.create(task)
        return Waiting.of(task)

    print("\nFlow control, per task (an admission from a line: its SQS send included)")
    measured: dict[str, Any] = {}
    first = [waiting(n, "one-gate") for n in range(count)]  # stored before the counting
    keyed = [waiting(n, "three-gates", key="k") for n in range(count)]
    later = [waiting(n, "one-gate") for n in range(count, 2 * count)]
    with counter.measure() as measured["one"]:
        admitted_now = Admission(owner_only).admit(first)
    with counter.measure() as measured["three"]:
        Admission(three).admit(keyed)
    with counter.measure() as measured["parked"]:
        behind = Admission(owner_only).admit(later)
    assert len(admitted_now.queued) == count and len(behind.parked) == count
    gate = owner_only.owner_gate("one-gate")
    for task in later:  # parked as the stream parks them (chalicelib/stream.py)
        owner_only.mark(task.task_id, gate.reason, task.version)
        ddb.put_item(TableName=table, Item=owner_only.line_item(gate, task))
    owner_only.list_gate(gate)
    for n in range(count):
        owner_only.release_gate(gate, f"bench-one-gate-{n}")
    with counter.measure() as measured["from_line"]:
        admitted = owner_only.admit_next(gate, service.send_waiting)
    buckets = TokenBuckets(table)
    with counter.measure() as measured["rate"]:
        for _ in range(count):
            buckets.take("type#bench/*", Rate(10 * count, 60))
    row(f"a batch of {count} admitted, one gate", summarize(measured["one"], count))
    row(f"a batch of {count} admitted, three gates", summarize(measured["three"], count))
    row(f"a batch of {count} behind a full gate", summarize(measured["parked"], count))
    row(f"admitted from a line ({len(admitted)})", summarize(measured["from_line"], len(admitted)))
    row("a start under TYPE_RATE", summarize(measured["rate"], count))
