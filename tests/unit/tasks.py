"""Build stored tasks in any status, for contract tests."""

import itertools
from typing import Any

from chalicelib.model import ObjectRef, Progress, Status, Task, utcnow
from chalicelib.objects import owner_prefix

BUCKET = "taskstatus-local-objects-123456789012"


def stored_task(
    service, status: Status, owner: str = "alice", type: str = "demo/sleep", **fields: Any
) -> Task:
    now = utcnow()
    task = Task.new(owner=owner, type=type, ttl_seconds=3600, now=now)
    updates: dict[str, Any] = {"status": status, **fields}
    if status is not Status.SUBMITTED:
        updates.setdefault("started_at", now)
    if status in (Status.PROCESSING, Status.ERROR):
        updates.setdefault("progress", Progress(current=2, total=5, message="working"))
    if status.is_terminal:
        updates.setdefault("completed_at", now)
    if status in (Status.FAILED, Status.ERROR, Status.COMPLETED_WITH_ERRORS):
        updates.setdefault("error", "Failed to process document: insufficient memory")
    if status in (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS):
        updates.setdefault("result", {"pages": 3})
    task = task.replace(**updates)
    service.store.create(task)
    return task


def with_objects(owner: str = "alice", **fields: Any) -> dict[str, Any]:
    """A source and a target under the owner's own prefix, as the service requires."""
    prefix = owner_prefix(owner)
    return {
        "source": ObjectRef(bucket=BUCKET, key=f"{prefix}original/document.pdf"),
        "target": ObjectRef(bucket=BUCKET, key=f"{prefix}processed/document.png"),
        **fields,
    }


_sequence = itertools.count(1)


def submitted_record(service: Any, task: Task) -> dict[str, Any]:
    """The stream record of a task's INSERT, as Lambda hands it over (a fresh sequence number)."""
    return {
        "eventID": f"insert-{task.id}",
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"id": {"S": task.id}},
            "NewImage": service.store.attributes(task),
            "SequenceNumber": f"{next(_sequence):021d}",
        },
    }
